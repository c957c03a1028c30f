import CagentEvents
import CagentStore
import Foundation
import Testing

/// Hostile strings through every command that prints: the store keeps them intact, the terminal never
/// sees a raw control character, bidi override or invalid UTF-8, and --json decodes back to the original.
@Suite struct CLIOutputTests {
    static let hostileSession = "s\u{1B}[31m\u{202E}"

    /// Raw bytes a terminal must never receive from cagent's output.
    static func assertSafe(_ data: Data, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = [UInt8](data)
        #expect(String(validating: bytes, as: UTF8.self) != nil, "\(what): output is not valid UTF-8", sourceLocation: sourceLocation)
        let text = String(decoding: bytes, as: UTF8.self)
        for scalar in text.unicodeScalars {
            let v = scalar.value
            let bad = (v < 0x20 && v != 0x0A) || (0x7F...0x9F).contains(v) || (0x202A...0x202E).contains(v)
                || (0x2066...0x2069).contains(v) || v == 0x200F || v == 0x200E
            if bad {
                Issue.record("\(what): raw U+\(String(v, radix: 16)) reached the terminal", sourceLocation: sourceLocation)
                return
            }
        }
    }

    func prepare(_ scratch: Scratch) throws -> String {
        let db = scratch.file("h.db")
        let store = try Store(path: db)
        let recorder = try Recorder(store: store, session: SessionInfo(id: "direct", kind: "test", command: Hostile.argv,
                                                                        gate: "10.0.0.1"),
                                    rules: FindingRules(secretPaths: ["~/.ssh"], gateAddress: "10.0.0.1"))
        for (index, path) in Hostile.paths.enumerated() {
            recorder.record(.file(FileAccess(time: Int64(index), program: Hostile.program, path: path, operation: .read, result: 13)))
        }
        recorder.record(.file(FileAccess(time: 9, program: Hostile.program,
                                         path: RawText("/home/u/.ssh/\(Hostile.escape)"), operation: .read, result: 2)))
        recorder.record(.exec(ProcessExec(time: 1, pid: 9, ppid: 1, executable: Hostile.paths[3], argv: Hostile.argv,
                                          program: Hostile.program)))
        recorder.record(.dns(DNSObservation(time: 2, program: Hostile.program, question: Hostile.longName, type: "A\u{1B}",
                                            isResponse: true, rcode: "NO\u{9B}ERROR",
                                            answers: [DNSAnswer(name: Hostile.longName, type: "CNAME", data: Hostile.paths[1], ttl: 5)],
                                            resolver: "8.8.8.8\u{1B}[K", source: .pcap)))
        recorder.record(.flow(FlowObservation(time: 3, program: Hostile.program, proto: "tcp\u{7}", address: "203.0.113.5\u{202E}",
                                              port: 443, name: Hostile.paths[0])))
        recorder.record(.flow(FlowObservation(time: 3, program: Hostile.program, proto: "tcp", address: "198.51.100.1", port: 80)))
        recorder.record(.flow(FlowObservation(time: 4, proto: "tcp", address: "198.51.100.1", port: 80, name: Hostile.paths[2],
                                              nameSource: .sni, connections: 0)))
        recorder.record(.bind(BindObservation(time: 5, program: Hostile.program, proto: "udp\u{1B}[K", address: "::\u{202E}1", port: 53)))
        try recorder.close()

        // And through the importer: hostile JSON strings, an unknown event with an escape in its name, a
        // malformed line, a hostile session id.
        let trace = scratch.file("hostile.jsonl")
        let lines = [
            #"{"timestamp":1,"processId":7,"processName":"\u001b[2Jx","eventName":"security_file_open","args":[{"name":"pathname","value":"/tmp/\u001b]0;title\u0007\u202eevil\"quote"},{"name":"flags","value":"O_RDONLY"}]}"#,
            #"{"timestamp":2,"processId":7,"processName":"p","eventName":"evil\u001b[31m\u202eevent","args":[]}"#,
            "{\"broken\u{1B}[31m",
            #"{"timestamp":3,"processId":7,"processName":"p","eventName":"sched_process_exec","args":[{"name":"pathname","value":"/bin/\u009b31m"},{"name":"argv","value":["a\nb","\u2066x\u2069"]}]}"#,
        ]
        try lines.joined(separator: "\n").write(toFile: trace, atomically: true, encoding: .utf8)
        let imported = try runCagent(["import", "tracee", trace, "--db", db, "--session", Self.hostileSession])
        #expect(imported.status == 0, "import failed: \(imported.err)")
        Self.assertSafe(imported.stdout, "import stdout")
        Self.assertSafe(imported.stderr, "import stderr")
        #expect(imported.err.contains("line 3 skipped"))
        #expect(imported.out.contains("evil\\x1B[31m\\u{202E}event ×1"))
        #expect(imported.out.contains("s\\x1B[31m\\u{202E}"))
        let importedJSON = try runCagent(["import", "tracee", trace, "--db", db, "--session", "again", "--json"])
        Self.assertSafe(importedJSON.stdout, "import --json stdout")
        return db
    }

    @Test func everyPrintingCommandEscapes() throws {
        try requireCagentBuilt()
        let scratch = try Scratch()
        let db = try prepare(scratch)

        let sessions = try runCagent(["sessions", "--db", db])
        #expect(sessions.status == 0)
        Self.assertSafe(sessions.stdout, "sessions")
        #expect(sessions.out.contains("s\\x1B[31m\\u{202E}"))

        let sessionsJSON = try runCagent(["sessions", "--db", db, "--json"])
        Self.assertSafe(sessionsJSON.stdout, "sessions --json")
        let list = try JSONSerialization.jsonObject(with: sessionsJSON.stdout) as? [[String: Any]]
        #expect(list?.contains { $0["id"] as? String == Self.hostileSession } == true)

        for session in ["direct", Self.hostileSession] {
            let report = try runCagent(["report", session, "--db", db, "--limit", "0"])
            #expect(report.status == 0, "report failed: \(report.err)")
            Self.assertSafe(report.stdout, "report \(session)")
            let reportJSON = try runCagent(["report", session, "--db", db, "--json"])
            #expect(reportJSON.status == 0)
            Self.assertSafe(reportJSON.stdout, "report --json \(session)")
            #expect(try JSONSerialization.jsonObject(with: reportJSON.stdout) is [String: Any])
        }

        let text = try runCagent(["report", "direct", "--db", db, "--limit", "0"]).out
        #expect(text.contains("\\x1B[2J\\x1B]0;pwned\\x07clear"))      // escape sequences shown, not run
        #expect(text.contains("invoice\\u{202E}fdp.exe"))              // bidi override visible
        #expect(text.contains("bad-\\xFF\\xFE\\xC3(-utf8"))            // invalid UTF-8 byte by byte
        #expect(text.contains(String(repeating: "n", count: 255)))     // a 255-byte name whole
        #expect(text.contains("c1\\u{9B}31mred\\r\\nnewline\\ttab\\x7F"))
        #expect(text.contains("evil\\x1B[31m\\x80"))                   // program name with a stray byte
        #expect(text.contains("secret-access"))

        // JSON keeps valid strings exact (they decode to the original) and shows invalid UTF-8 escaped.
        let json = try runCagent(["report", "direct", "--db", db, "--json"]).stdout
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let groups = try #require(object["files"] as? [[String: Any]])
        let paths = Set(groups.flatMap { ($0["files"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String } })
        for path in Hostile.paths {
            if let valid = path.validString { #expect(paths.contains(valid), "\(valid.debugDescription) not exact in JSON") }
        }
        #expect(paths.contains("/tmp/bad-\\xFF\\xFE\\xC3(-utf8"))

        // Missing session and missing database: errors, escaped too.
        let missing = try runCagent(["report", "nope\u{1B}[2J", "--db", db])
        #expect(missing.status != 0)
        Self.assertSafe(missing.stderr, "report of a missing session")
        let noDB = try runCagent(["sessions", "--db", scratch.file("none.db")])
        #expect(noDB.status != 0 && noDB.err.contains("no database"))
    }
}

struct CagentNotBuilt: Error, CustomStringConvertible {
    var description: String { "\(Fixtures.cagent) is missing: run swift build --build-tests" }
}

/// The CLI tests run the built executable; a missing one fails the test with the reason.
func requireCagentBuilt() throws {
    if !FileManager.default.isExecutableFile(atPath: Fixtures.cagent) { throw CagentNotBuilt() }
}
