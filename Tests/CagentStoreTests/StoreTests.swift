import Netlab
import CagentCore
import CagentEvents
import CagentStore
import Foundation
import GRDB
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct StoreTests {
    @Test func rowsGrowWithDistinctKeysNotEvents() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "s", kind: "synthetic"), rules: testRules,
                                    batchEvents: 7_000)
        recorder.record(contentsOf: SyntheticSession(events: 50_000, distinctKeys: 200))
        try recorder.close()
        let rows = try store.count("""
            SELECT (SELECT count(*) FROM files) + (SELECT count(*) FROM dns) + (SELECT count(*) FROM flows)
                 + (SELECT count(*) FROM processes)
            """)
        // 200 distinct keys: 140 file, 30 DNS, 20 flow and 10 exec rows (all drawn in 50k events).
        #expect(rows == 200)
        // Every event is counted exactly once somewhere.
        let counted = try store.count("""
            SELECT (SELECT sum(count) FROM files) + (SELECT sum(queries + responses) FROM dns)
                 + (SELECT sum(connections) FROM flows) + (SELECT sum(count) FROM processes)
            """)
        #expect(counted == 50_000)
        #expect(try store.count("SELECT events FROM sessions WHERE id = 's'") == 50_000)
    }

    @Test func databaseFileIsPrivateAndWAL() throws {
        let scratch = try Scratch()
        let path = scratch.file("sub/dir/cagent.db")
        let store = try Store(path: path)
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat(scratch.file("sub/dir"), &info) == 0 && info.st_mode & 0o777 == 0o700)
        let mode = try store.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        #expect(throws: (any Error).self) { _ = try Store(path: scratch.file("missing.db"), create: false) }
    }

    @Test func hostileStringsAreStoredIntact() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "h", kind: "test"), rules: testRules)
        for (index, path) in Hostile.paths.enumerated() {
            recorder.record(.file(FileAccess(time: Int64(index), program: Hostile.program, path: path, operation: .read)))
        }
        recorder.record(.exec(ProcessExec(time: 1, pid: 9, ppid: 1, executable: Hostile.paths[3], argv: Hostile.argv,
                                          program: Hostile.program)))
        recorder.record(.dns(DNSObservation(time: 2, question: Hostile.longName, type: "A", isResponse: true,
                                            rcode: "NOERROR", answers: [DNSAnswer(name: Hostile.longName, type: "A",
                                                                                  data: RawText("192.0.2.9"), ttl: 5)],
                                            resolver: "10.0.0.1", source: .pcap)))
        try recorder.close()
        let paths = try store.read { db in try RawText.fetchAll(db, sql: "SELECT path FROM files") }
        #expect(Set(paths) == Set(Hostile.paths))
        let report = try #require(try store.report(session: "h", rules: testRules))
        #expect(report.processTree.first?.argv == Hostile.argv)
        #expect(report.processTree.first?.program == Hostile.program)
        #expect(report.domains.first?.name == Hostile.longName)
        #expect(report.domains.first?.name.bytes.count == 253)
    }

    @Test func findingsFromRules() {
        let rules = FindingRules(secretPaths: ["~/.ssh", "~/.config/gh", "/etc/shadow"])
        #expect(rules.secret(RawText("/home/alice/.ssh/id_rsa")) == "~/.ssh")
        #expect(rules.secret(RawText("/root/.config/gh/hosts.yml")) == "~/.config/gh")
        #expect(rules.secret(RawText("/etc/shadow")) == "/etc/shadow")
        #expect(rules.secret(RawText("/etc/shadowx")) == nil)
        #expect(rules.secret(RawText("/home/alice/.sshx")) == nil)
        #expect(rules.secret(RawText("etc/shadow")) == nil)
        #expect(FindingRules.exfiltrationParent(RawText("api.anthropic.com")) == nil)
        #expect(FindingRules.exfiltrationParent(RawText("statsig.anthropic.com")) == nil)
        #expect(FindingRules.exfiltrationParent(RawText("objects.githubusercontent.com")) == nil)
        #expect(FindingRules.exfiltrationParent(RawText("mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpi.x.attacker.test")) == "x.attacker.test")
        #expect(FindingRules.exfiltrationParent(RawText("a1b2c3d4e5f6a7b8c9d0.evil.test")) == "evil.test")
        #expect(rules.isDoHName(RawText("Cloudflare-DNS.com.")))
        #expect(rules.isDoHFlow(address: "1.1.1.1", port: 443) && !rules.isDoHFlow(address: "1.1.1.1", port: 80))
    }

    @Test func directIPAndNamedFlows() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "f", kind: "test", gate: "10.0.0.1"),
                                    rules: FindingRules(secretPaths: [], gateAddress: "10.0.0.1"))
        let name = RawText("api.example.test")
        recorder.record(.dns(DNSObservation(time: 1, question: name, type: "A", isResponse: true, rcode: "NOERROR",
                                            answers: [DNSAnswer(name: name, type: "A", data: RawText("192.0.2.10"), ttl: 60)],
                                            resolver: "10.0.0.1", source: .gate)))
        recorder.record(.flow(FlowObservation(time: 2, program: RawText("curl"), proto: "tcp", address: "192.0.2.10", port: 443)))
        recorder.record(.flow(FlowObservation(time: 3, program: RawText("curl"), proto: "tcp", address: "198.51.100.7", port: 443)))
        recorder.record(.flow(FlowObservation(time: 4, program: RawText("curl"), proto: "tcp", address: "1.1.1.1", port: 443)))
        recorder.record(.dns(DNSObservation(time: 5, question: RawText("x.test"), type: "A", isResponse: false,
                                            resolver: "8.8.8.8", source: .pcap)))
        try recorder.close()
        let report = try #require(try store.report(session: "f", rules: testRules))
        #expect(report.flows.first { $0.address == "192.0.2.10" }?.name == name)
        #expect(report.directIPFlows.map(\.address).sorted() == ["1.1.1.1", "198.51.100.7"])
        #expect(report.domains.first { $0.name == name }?.connections == 1)
        #expect(report.gateBypass.map(\.resolver) == ["8.8.8.8"])
        let kinds = Set(report.findings.map(\.kind))
        #expect(kinds == [.directIP, .dohEndpoint, .dnsBypass])
    }

    /// A writer killed with SIGKILL while it streams batches (no pause: a transaction is usually open when
    /// the signal lands; three kill delays vary the moment): the file opens, passes integrity_check, and holds
    /// exactly a whole number of committed batches, at least as many as the writer had reported.
    @Test(arguments: [0, 3, 11])
    func killedWriterKeepsCommittedBatches(delayMs: Int) throws {
        try requireCagentBuilt()
        let scratch = try Scratch()
        let db = scratch.file("crash.db")
        let batch = 20_000
        let progress = scratch.file("progress.txt")
        let process = try SpawnedProcess.start([Fixtures.cagent, "synthetic", "--db", db, "--session", "crash",
                                                "--events", "50000000", "--keys", "20000", "--batch", String(batch),
                                                "--progress"], stdout: progress)
        var reported = 0
        let deadline = Date().addingTimeInterval(120)
        while reported < 3 * batch && process.isRunning && Date() < deadline {
            let text = FileSystem.readText(progress) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("committed ") {
                reported = max(reported, Int(line.dropFirst("committed ".count)) ?? 0)
            }
            usleep(2_000)
        }
        usleep(UInt32(delayMs * 1000))
        kill(process.pid, SIGKILL)
        let status = process.wait(timeout: 30)
        #expect(status == 128 + SIGKILL, "the writer ended before the kill")
        #expect(reported >= 3 * batch, "the writer reported \(reported) events before the kill")

        let store = try Store(path: db, create: false)
        let integrity = try store.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
        let events = try store.count("SELECT events FROM sessions WHERE id = 'crash'")
        #expect(events >= Int64(reported))
        #expect(events % Int64(batch) == 0, "a partial batch was visible: \(events)")
        let counted = try store.count("""
            SELECT (SELECT sum(count) FROM files) + (SELECT sum(queries + responses) FROM dns)
                 + (SELECT sum(connections) FROM flows) + (SELECT sum(count) FROM processes)
            """)
        #expect(counted == events)
        #expect(try store.count("SELECT count(*) FROM sessions WHERE ended_at IS NULL") == 1)
    }
}

/// Strings a hostile agent would choose.
enum Hostile {
    static let escape = "\u{1B}[2J\u{1B}]0;pwned\u{07}"
    static let bidi = "invoice\u{202E}fdp.exe"
    static let paths: [RawText] = [
        RawText("/tmp/\(escape)clear"),
        RawText("/tmp/\(bidi)"),
        RawText("/tmp/quote'\"`$(id)`;DROP TABLE files;--"),
        RawText(bytes: Array("/tmp/bad-".utf8) + [0xFF, 0xFE, 0xC3, 0x28] + Array("-utf8".utf8)),
        RawText("/tmp/" + String(repeating: "n", count: 255)),
        RawText("/tmp/c1\u{9B}31mred\r\nnewline\ttab\u{7F}"),
    ]
    static let program = RawText(bytes: Array("evil\u{1B}[31m".utf8) + [0x80])
    static let argv: [RawText] = [RawText("sh"), RawText("-c"), RawText("echo \(escape) \(bidi)"),
                                  RawText(bytes: [0x41, 0xFF, 0x42])]
    /// 253 bytes: the longest presentation-form DNS name, with escape sequences in its labels.
    static let longName: RawText = {
        var labels = ["\u{1B}[31mred", String(repeating: "a", count: 63), String(repeating: "b", count: 63),
                      String(repeating: "c", count: 63)]
        let used = labels.map(\.utf8.count).reduce(0, +) + labels.count
        labels.append(String(repeating: "d", count: 253 - used))
        return RawText(labels.joined(separator: "."))
    }()
}

@Suite struct StoreOwnershipTests {
    /// Under sudo the database belongs to the real user: root creates it, then hands it (and the directories
    /// it made, and SQLite's -wal/-shm) to that user.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root to chown"))
    func rootCreatesTheFileForTheInvokingUser() throws {
        try Requirements.root()
        let scratch = try Scratch()
        let user = InvokingUser(uid: 54321, gid: 54322, name: "cgtest", home: scratch.path)
        let path = scratch.file("data/cagent/cagent.db")
        let store = try Store(path: path, owner: user)
        let recorder = try Recorder(store: store, session: SessionInfo(id: "o", kind: "test"), rules: testRules)
        recorder.record(.file(FileAccess(time: 1, path: RawText("/x"), operation: .read)))
        try recorder.flush()
        var info = stat()
        for file in [path, path + "-wal", scratch.file("data/cagent"), scratch.file("data")] {
            #expect(stat(file, &info) == 0, "\(file) missing")
            #expect(info.st_uid == 54321 && info.st_gid == 54322, "\(file) owned by \(info.st_uid):\(info.st_gid)")
        }
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        try recorder.close()
    }
}

@Suite struct RecorderConcurrencyTests {
    /// Several sources recording into one session at once lose nothing.
    @Test func concurrentSourcesAreAllCounted() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "c", kind: "test"), rules: testRules,
                                    batchEvents: 3_000)
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            for event in SyntheticSession(events: 10_000, distinctKeys: 500, seed: UInt64(worker + 1)) {
                recorder.record(event)
            }
        }
        try recorder.close()
        #expect(try store.count("SELECT events FROM sessions WHERE id = 'c'") == 40_000)
        let counted = try store.count("""
            SELECT (SELECT sum(count) FROM files) + (SELECT sum(queries + responses) FROM dns)
                 + (SELECT sum(connections) FROM flows) + (SELECT sum(count) FROM processes)
            """)
        #expect(counted == 40_000)
    }
}
