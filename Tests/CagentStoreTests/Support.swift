import CagentCore
import Netlab
import CagentStore
import CagentTrace
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory per test, removed at the end.
final class Scratch {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "cagent-store-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func tracee(_ name: String) -> String { directory + "/tracee/" + name }

    /// The cagent executable built beside the tests (`swift build --build-tests` builds it).
    static var cagent: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [beside.appendingPathComponent("cagent").path,
                          beside.deletingLastPathComponent().appendingPathComponent("cagent").path,
                          root.appendingPathComponent(".build/debug/cagent").path]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return root.appendingPathComponent(".build/debug/cagent").path
    }
}

struct CommandResult {
    var status: Int32
    var stdout: Data
    var stderr: Data
    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs the cagent executable (posix_spawn, output through files: see Netlab's TestProcess) and collects
/// its output byte for byte.
func runCagent(_ arguments: [String], environment: [String: String]? = nil, timeout: Double = 600) throws -> CommandResult {
    let base = NSTemporaryDirectory() + "cgt-store-\(UUID().uuidString)"
    defer { unlink(base + ".out"); unlink(base + ".err") }
    let process = try SpawnedProcess.start([Fixtures.cagent] + arguments, stdout: base + ".out", stderr: base + ".err",
                                           environment: environment)
    let status = process.wait(timeout: timeout)
    return CommandResult(status: status, stdout: Data(FileSystem.read(base + ".out") ?? []),
                         stderr: Data(FileSystem.read(base + ".err") ?? []))
}

extension Store {
    func count(_ sql: String, _ arguments: StatementArguments = []) throws -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
    }
}

let testRules = FindingRules(secretPaths: ["~/.ssh", "~/.aws", "~/.config/gh", "/etc/shadow"])

/// Imports fixture files into one session of a store; returns the summaries.
func importTracee(_ paths: [String], into store: Store, session: String = "t", gate: String? = nil)
    throws -> [TraceeImporter.Summary] {
    var rules = testRules
    rules.gateAddress = gate
    let recorder = try Recorder(store: store, session: SessionInfo(id: session, kind: "import", gate: gate), rules: rules)
    let summaries = try paths.map { try TraceeImporter().importFile($0, into: recorder) }
    try recorder.close()
    return summaries
}
