import CagentCore
import Foundation
@testable import CagentProfile

/// A throwaway tree for one test: a bundled directory, the user's config, a workspace; removed on deinit.
final class ProfileSandbox {
    let root: String
    var bundled: String { root + "/bundled" }
    var config: String { root + "/config" }
    var userProfiles: String { config + "/profiles" }
    var workspace: String { root + "/ws" }
    var paths: CagentPaths { CagentPaths(runtime: root + "/run", data: root + "/data", config: config) }

    init() throws {
        var template = Array((NSTemporaryDirectory() + "cagent-profile-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CagentError(stage: "test", "mkdtemp failed") }
        root = FileSystem.realPath(String(cString: made))!
        for dir in [bundled, userProfiles, workspace + "/.cagent", root + "/data"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes `text` at `relative` (to the sandbox root) and returns the absolute path.
    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// A resolver whose messages show files relative to the sandbox root.
    func resolver(policy: ProfileResolver.TrustPolicy = .refuse, bundled: [String]? = nil) -> ProfileResolver {
        var resolver = ProfileResolver(paths: paths, workspace: workspace, bundledDirectories: bundled ?? [self.bundled],
                                       environment: ["HOME": root + "/home"], currentDirectory: root)
        resolver.trustPolicy = policy
        return resolver
    }
}

/// The repository's bundled profiles directory.
func repositoryProfiles(file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path + "/profiles"
}
