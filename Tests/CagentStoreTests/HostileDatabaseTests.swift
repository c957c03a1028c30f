import CagentCore
import CagentEvents
import CagentStore
import Foundation
import GRDB
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `report` and `sessions` read a database that anyone may have edited: every read decodes defensively and
/// fails with the usual error shape (stage, message, hint), never a crash; read commands never create,
/// migrate or write the file they are pointed at.
@Suite("hostile databases")
struct HostileDatabaseTests {
    /// A valid database with two sessions' worth of rows (flows, DNS through a bypassing resolver, files in one
    /// directory, findings), so that every decoder and every sum runs.
    static func makeValid(_ path: String) throws {
        let store = try Store(path: path)
        let recorder = try Recorder(store: store, session: SessionInfo(id: "victim", kind: "test", command: [RawText("true")],
                                                                        gate: "10.0.0.1"),
                                    rules: FindingRules(secretPaths: ["~/.ssh"], gateAddress: "10.0.0.1"))
        for (index, name) in ["a", "b"].enumerated() {
            recorder.record(.file(FileAccess(time: Int64(index), program: RawText("cat"), path: RawText("/home/u/.ssh/\(name)"),
                                             operation: .read, result: 0)))
            recorder.record(.dns(DNSObservation(time: Int64(index), program: RawText("dig"), question: RawText("x.test"),
                                                type: index == 0 ? "A" : "AAAA", isResponse: true, rcode: "NOERROR", answers: [],
                                                resolver: "8.8.8.8", source: .pcap)))
            recorder.record(.flow(FlowObservation(time: Int64(index), program: RawText("curl"), proto: "tcp",
                                                  address: "203.0.113.\(index + 5)", port: 443)))
        }
        recorder.record(.exec(ProcessExec(time: 1, pid: 9, ppid: 1, executable: RawText("/bin/true"), argv: [RawText("true")],
                                          program: RawText("true"))))
        try recorder.close()
    }

    static func mutate(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in try db.execute(sql: sql) }
        try queue.close()
    }

    /// The usual error shape: `cagent: <stage> failed: <message>` and a hint; exit status 1 (not a signal).
    static func expectCleanFailure(_ result: CommandResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 125, "\(what): status \(result.status): \(result.err)", sourceLocation: sourceLocation)
        #expect(result.err.hasPrefix("cagent: ") && result.err.contains(" failed: ") && result.err.contains("hint: "),
                "\(what): \(result.err)", sourceLocation: sourceLocation)
    }

    static let commands: [[String]] = [["report"], ["report", "--json"], ["sessions"], ["sessions", "--json"]]

    /// The label, the SQL that damages the database, and whether it must make a command fail: values that
    /// are only huge are shown saturated (sums stop at Int64.max) rather than refused.
    @Test("wrong-typed, huge, negative and NULL values, a dropped table, a newer schema: a clean error, no crash",
          arguments: [
            ("TEXT in an INTEGER count", "UPDATE sessions SET events = 'lots'", true),
            ("TEXT in a timestamp", "UPDATE sessions SET started_at = 'yesterday'", true),
            ("huge DNS counts (sum overflows)", "UPDATE dns SET queries = 9223372036854775807, responses = 9223372036854775807", false),
            ("huge file counts (sum overflows)", "UPDATE files SET count = 9223372036854775807", false),
            ("huge flow byte counts", "UPDATE flows SET bytes_out = 9223372036854775807, connections = 9223372036854775807", false),
            ("the most negative count", "UPDATE findings SET count = -9223372036854775808; UPDATE flows SET connections = -9223372036854775808", true),
            ("REAL out of range", "UPDATE flows SET port = 1e300", true),
            ("NULL in NOT NULL columns", """
                CREATE TABLE f2 AS SELECT * FROM files; DROP TABLE files; ALTER TABLE f2 RENAME TO files;
                UPDATE files SET count = NULL, path = NULL
                """, true),
            ("NULL session kind", """
                CREATE TABLE s2 AS SELECT * FROM sessions; DROP TABLE sessions; ALTER TABLE s2 RENAME TO sessions;
                UPDATE sessions SET kind = NULL, events = NULL
                """, true),
            ("a dropped table", "DROP TABLE flows", true),
            ("a table without its columns", """
                CREATE TABLE f2 AS SELECT id, session_id FROM flows; DROP TABLE flows; ALTER TABLE f2 RENAME TO flows
                """, true),
            ("an integer migration identifier", "UPDATE grdb_migrations SET identifier = 42 WHERE identifier = 'v2'", true),
            ("a newer schema", "INSERT INTO grdb_migrations VALUES ('v99')", true),
          ])
    func hostileValues(_ label: String, _ sql: String, _ mustFail: Bool) throws {
        let scratch = try Scratch()
        let db = scratch.file("h.db")
        try Self.makeValid(db)
        // Positive control: the untouched database reports.
        for command in Self.commands {
            let fine = try runCagent(command + ["--db", db])
            #expect(fine.status == 0, "\(command) on the valid database: \(fine.err)")
        }
        try Self.mutate(db, sql)
        var failed = 0
        for command in Self.commands {
            let result = try runCagent(command + ["--db", db])
            #expect(result.status == 0 || result.status == 125, "\(label): \(command) crashed: status \(result.status) \(result.err)")
            if result.status != 0 {
                failed += 1
                Self.expectCleanFailure(result, "\(label): \(command)")
            }
        }
        if mustFail { #expect(failed > 0, "\(label): no command noticed") }
    }

    @Test("a recording command refuses a database of a newer schema rather than migrate over it")
    func recordingRefusesNewer() throws {
        let scratch = try Scratch()
        let db = scratch.file("h.db")
        try Self.makeValid(db)
        let trace = scratch.file("t.jsonl")
        try Data(#"{"timestamp":1,"processId":7,"processName":"cat","eventName":"security_file_open","args":[{"name":"pathname","value":"/x"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: trace))
        // Positive control: the current schema takes the import.
        #expect(try runCagent(["import", "tracee", trace, "--db", db]).status == 0)
        try Self.mutate(db, "INSERT INTO grdb_migrations VALUES ('v99')")
        let refused = try runCagent(["import", "tracee", trace, "--db", db])
        Self.expectCleanFailure(refused, "import into a newer schema")
        #expect(refused.err.contains("written by a newer cagent (schema v99)"), "\(refused.err)")
    }

    @Test("a 0-byte file, a non-SQLite file, a missing file: a clean error, the file untouched")
    func notADatabase() throws {
        let scratch = try Scratch()
        let empty = scratch.file("empty.db")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        let text = scratch.file("notes.db")
        let notes = Data(String(repeating: "these are my notes, not a database\n", count: 200).utf8)
        #expect(FileManager.default.createFile(atPath: text, contents: notes))
        let missing = scratch.file("missing.db")
        for command in Self.commands {
            Self.expectCleanFailure(try runCagent(command + ["--db", empty]), "\(command) on a 0-byte file")
            Self.expectCleanFailure(try runCagent(command + ["--db", text]), "\(command) on a text file")
            Self.expectCleanFailure(try runCagent(command + ["--db", missing]), "\(command) on a missing file")
        }
        #expect((try FileManager.default.attributesOfItem(atPath: empty)[.size] as? Int) == 0, "the empty file was written")
        #expect(FileManager.default.contents(atPath: text) == notes)
        #expect(!FileManager.default.fileExists(atPath: missing))
        #expect(!FileManager.default.fileExists(atPath: empty + "-wal") && !FileManager.default.fileExists(atPath: empty + "-shm"))
    }

    @Test("--db naming a root-only database under sudo: not read; the user's own database is",
          .enabled(if: Requirements.mayRun(root: true, tools: ["useradd", "userdel"]), "needs root and useradd"))
    func rootOnlyDatabase() throws {
        try Requirements.root()
        let scratch = try Scratch()
        let user = try TestUser()
        // The user's own directory (SQLite creates the -shm and -wal files next to the database).
        chown(scratch.path, user.uid, user.gid)
        let db = scratch.file("root.db")
        let marker = "MARKER\(UInt32.random(in: 0...UInt32.max))"
        do {  // closed at the end of the scope: no -wal/-shm of root's left next to it
            let store = try Store(path: db)
            try store.createSession(SessionInfo(id: marker, kind: "test", command: [RawText(marker)]))
        }
        chmod(db, 0o600)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid), "SUDO_GID": String(user.gid),
                           "SUDO_USER": user.name]
        for command in Self.commands {
            chown(db, 0, 0)
            let denied = try runCagent(command + ["--db", db], environment: environment)
            #expect(!(denied.out + denied.err).contains(marker), "\(command): root's database was read: \(denied.out)")
            Self.expectCleanFailure(denied, "\(command)")
            #expect(denied.err.contains("as user \(user.name): Permission denied"), "\(command): \(denied.err)")
            // Positive control: the same database, the user's own, is read.
            chown(db, user.uid, user.gid)
            let own = try runCagent(command + ["--db", db], environment: environment)
            #expect(own.status == 0 && own.out.contains(marker), "\(command): \(own.status) \(own.err)")
        }
    }
}
