import CagentCore
import CagentNetwork
import Foundation
import Netlab

enum ExportSupport {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let validator = testsDirectory + "/validate-policies.py"
    static var repository: String {
        URL(fileURLWithPath: testsDirectory).deletingLastPathComponent().deletingLastPathComponent().path
    }
    static var bundledProfiles: String { repository + "/profiles" }
    static var executable: String { repository + "/.build/debug/cagent" }

    /// The schema tests need python3 with jsonschema and PyYAML (scripts/install-deps.sh installs them);
    /// under CI they always run, and fail when those are missing.
    static var mayValidate: Bool {
        if Requirements.isCI { return true }
        guard Requirements.mayRun(tools: ["python3"]) else { return false }
        return (try? Netlab.execute(["python3", "-c", "import jsonschema, yaml"], timeout: 30).status) == 0
    }

    static func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "cagent-export-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CagentError(stage: "test", "mkdtemp failed") }
        return String(cString: made)
    }

    /// Runs the validator on files; returns its status and output.
    static func validate(_ kind: String, _ files: [String]) throws -> Netlab.Output {
        try Netlab.execute(["python3", validator, kind] + files, timeout: 120)
    }

    static func address(_ text: String) -> IPAddress { IPAddress(text)! }
}
