import Netlab
import CagentEvents
import CagentStore
@testable import CagentTrace
import Foundation
import GRDB
import Testing

@Suite struct TraceeImportTests {
    @Test func dnsResponseWithCNAMEChainBecomesTwoAnswers() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let summary = try importTracee([Fixtures.tracee("legacy-net_packet_dns.jsonl")], into: store)[0]
        #expect(summary.events == 1 && summary.malformedCount == 0 && summary.unknown.isEmpty)
        let rows = try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM dns") }
        #expect(rows.count == 1)
        #expect(rows.first?.s("name") == "www.zip.net")
        #expect(rows.first?.s("type") == "A")
        #expect(rows.first?.s("rcode") == "NOERROR")
        #expect(rows.first?.s("resolver") == "8.8.8.8")  // a response: the resolver is its source
        #expect(rows.first?.s("source") == "tracee")
        #expect(rows.first?.s("program") == "systemd-resolve")
        let answers = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT name, type, data, ttl FROM dns_answers ORDER BY id")
        }
        #expect(answers.count == 2)
        #expect(answers.map { $0["type"] as String } == ["CNAME", "A"])
        #expect(answers.map { $0["data"] as String } == ["amazonas.uol.com.br", "200.147.100.53"])
        #expect(answers.map { $0["name"] as String } == ["www.zip.net", "amazonas.uol.com.br"])
        #expect(answers.map { $0["ttl"] as Int64 } == [300, 60])
    }

    @Test func deprecatedDNSEventsImport() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        _ = try importTracee([Fixtures.tracee("legacy-net_packet_dns_request.jsonl"),
                              Fixtures.tracee("legacy-net_packet_dns_response.jsonl")], into: store)
        let rows = try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM dns ORDER BY first_seen") }
        #expect(rows.count == 2)
        #expect(rows[0].s("type") == "AAAA" && rows[0].s("resolver") == "8.8.8.8" && rows[0].i("queries") == 1)
        #expect(rows[1].s("type") == "A" && rows[1].s("resolver") == "1.1.1.1" && rows[1].i("responses") == 1)
        let answers = try store.read { db in try Row.fetchAll(db, sql: "SELECT name, type, data FROM dns_answers ORDER BY id") }
        // The deprecated event gives no owner names; they follow the CNAME chain.
        #expect(answers.map { $0["name"] as String } == ["www.zip.net", "amazonas.uol.com.br"])
        #expect(answers.map { $0["data"] as String } == ["amazonas.uol.com.br", "200.147.100.53"])
    }

    @Test func execKeepsArgv() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        _ = try importTracee([Fixtures.tracee("legacy-sched_process_exec.jsonl")], into: store)
        let report = try #require(try store.report(session: "t", rules: testRules))
        #expect(report.processTree.count == 1)
        let process = try #require(report.processTree.first)
        #expect(process.executable == RawText("/usr/bin/exa"))
        #expect(process.argv == [RawText("exa"), RawText("--color=auto")])
        #expect(process.program == RawText("exa"))
        #expect(try store.count("SELECT last_pid FROM processes") == 2578324)
    }

    @Test func fileOpenKeepsPathAndFlags() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        _ = try importTracee([Fixtures.tracee("legacy-security_file_open.jsonl"),
                              Fixtures.tracee("constructed-legacy-security_file_open-intflags.jsonl")], into: store)
        let rows = try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM files ORDER BY first_seen") }
        #expect(rows.count == 4)
        // String flags ("O_RDONLY|O_LARGEFILE", parse-arguments) and integer flags both keep the value.
        #expect(rows[0].s("path") == "/proc/meminfo" && rows[0].s("operation") == "read" && rows[0].i("flags") == 0o100000)
        #expect(rows[0].s("program") == "systemd-oomd" && rows[0].i("result") == 0)
        #expect(rows[1].s("path") == "/etc/hosts" && rows[1].i("flags") == 32768)
        // openat failing with -ENOENT on a hidden path: recorded with its errno, and a finding.
        #expect(rows[2].s("path") == "/home/user/.aws/credentials" && rows[2].i("result") == 2)
        // O_WRONLY|O_CREAT|O_TRUNC = 577: a create.
        #expect(rows[3].s("path") == "/home/user/work/out.txt" && rows[3].s("operation") == "create" && rows[3].i("flags") == 577)
        #expect(try store.count("SELECT count(*) FROM findings WHERE kind = 'secret-access' AND subject = '~/.aws'") == 1)
        #expect(OpenFlags.names(0o100000) == "O_RDONLY|O_LARGEFILE")
    }

    @Test func socketConnectMapsAddressesAndSkipsUnix() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let summary = try importTracee([Fixtures.tracee("constructed-legacy-security_socket_connect.jsonl")], into: store)[0]
        #expect(summary.lines == 3 && summary.malformedCount == 0)
        let flows = try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM flows ORDER BY first_seen") }
        #expect(flows.count == 2)
        #expect(flows[0].s("address") == "203.0.113.9" && flows[0].i("port") == 443 && flows[0].s("proto") == "tcp")
        #expect(flows[1].s("address") == "2001:db8::1" && flows[1].i("port") == 8443)
        // Neither address was named by DNS: both are direct-IP findings.
        let report = try #require(try store.report(session: "t", rules: testRules))
        #expect(report.directIPFlows.count == 2)
        #expect(report.findings.filter { $0.kind == .directIP }.count == 2)
    }

    @Test func socketBindBecomesABind() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let summary = try importTracee([Fixtures.tracee("constructed-legacy-security_socket_bind.jsonl")], into: store)[0]
        #expect(summary.lines == 3 && summary.malformedCount == 0 && summary.unknown.isEmpty)
        let report = try #require(try store.report(session: "t", rules: testRules))
        #expect(report.binds.count == 2, "\(report.binds)")
        let v4 = try #require(report.binds.first)
        #expect(v4.family == "ipv4" && v4.address == "127.0.0.1" && v4.port == 8080 && v4.result == 0)
        #expect(v4.program == RawText("python3") && v4.proto == "unknown")   // the event carries no socket type
        #expect(report.binds[1].family == "ipv6" && report.binds[1].address == "::" && report.binds[1].result == 98)
        #expect(report.flows.isEmpty)
    }

    @Test func v1beta1ShapeImports() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let summary = try importTracee([Fixtures.tracee("constructed-v1beta1.jsonl")], into: store)[0]
        #expect(summary.malformedCount == 0 && summary.unknown.isEmpty)
        #expect(summary.events == 6)
        let file = try store.read { db in try Row.fetchOne(db, sql: "SELECT * FROM files") }
        #expect(file?.s("path") == "/home/user/.ssh/id_ed25519" && file?.i("flags") == 0 && file?.s("program") == "cat")
        let report = try #require(try store.report(session: "t", rules: testRules))
        let git = try #require(report.processTree.first)
        #expect(git.argv == ["git", "clone", "https://github.com/example/repo"].map { RawText($0) })
        #expect(git.lastExit == 0)
        // The connect happened after the DNS answer (by time it comes first in the file, but the answer is
        // recorded before: the flow takes the name when the answer was seen earlier in the stream).
        #expect(report.flows.count == 1)
        #expect(report.flows.first?.name == RawText("github.com") && report.directIPFlows.isEmpty)
        #expect(report.domains.contains { $0.name == RawText("github.com") && $0.answers.first?.data == RawText("140.82.121.4") })
        #expect(report.findings.contains { $0.kind == .secretAccess && $0.subject == RawText("~/.ssh") })
        #expect(report.findings.contains { $0.kind == .dnsExfiltration && $0.subject == RawText("x.attacker.test") })
        #expect(report.domains.contains { $0.name == RawText("dGhpc2lzYXNlY3JldHRva2VuZm9yZXhmaWw.x.attacker.test") && $0.types == ["TXT"] })
        #expect(report.findings.first?.kind == .secretAccess)  // findings first, most serious first
    }

    @Test func brokenLineIsNamedAndTheRestImports() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let summary = try importTracee([Fixtures.tracee("constructed-broken-line.jsonl")], into: store)[0]
        #expect(summary.lines == 4)
        #expect(summary.malformedCount == 1)
        #expect(summary.malformed.first?.line == 2)
        #expect(summary.unknown == ["cgroup_mkdir": 1])
        let paths = try store.read { db in try String.fetchAll(db, sql: "SELECT path FROM files ORDER BY first_seen") }
        #expect(paths == ["/etc/passwd", "/etc/shadow"])
        #expect(try store.count("SELECT result FROM files WHERE path = '/etc/shadow'") == 13)  // EACCES
        #expect(try store.count("SELECT count(*) FROM findings WHERE kind = 'secret-access'") == 1)
    }

    @Test func gzipAndPlainImportTheSame() throws {
        let scratch = try Scratch()
        let plain = Fixtures.tracee("constructed-v1beta1.jsonl")
        let gzipped = scratch.file("trace.jsonl.gz")
        let gzip = try Netlab.execute(["/bin/sh", "-c", "gzip -c < '\(plain)' > '\(gzipped)'"], timeout: 60)
        #expect(gzip.status == 0)
        let a = try importTracee([plain], into: Store(path: scratch.file("a.db")))[0]
        let b = try importTracee([gzipped], into: Store(path: scratch.file("b.db")))[0]
        #expect(a.events == b.events && a.lines == b.lines && b.malformedCount == 0)
    }

    @Test func truncatedGzipKeepsWhatWasRead() throws {
        let scratch = try Scratch()
        let gzipped = scratch.file("trace.gz")
        // Many lines, then cut the compressed stream in the middle.
        _ = try Netlab.execute(["/bin/sh", "-c", "for i in $(seq 2000); do cat '\(Fixtures.tracee("legacy-security_file_open.jsonl"))'; done | gzip -c | head -c 3000 > '\(gzipped)'"], timeout: 60)
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "t", kind: "import"), rules: testRules)
        #expect(throws: (any Error).self) { _ = try TraceeImporter().importFile(gzipped, into: recorder) }
        try recorder.close()
        #expect(try store.count("SELECT events FROM sessions") > 0)
    }

    @Test func fuzzFindingsStayFixed() throws {
        // Tests/Fuzz/tracee: every finding of scripts/fuzz.sh (tracee).
        let directory = Fixtures.directory + "/../../Fuzz/tracee"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(names.contains("rfc3339-year-overflow.jsonl"), "the replay found its files")
        for name in names {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            for line in data.split(separator: 0x0A) { _ = TraceeParser.parse(line: line) }
        }
        #expect(TraceeParser.rfc3339("9897-05-01T10:40:02.5Z") == nil)
        #expect(TraceeParser.rfc3339("2024-05-01T10:40:02.5Z") == 1_714_560_002_500_000_000)
    }

    @Test func hostileLinesNeverCrash() {
        let lines = [
            "", "   ", "null", "[]", "42", "\"x\"", "{", "{\"eventName\":5}", "{\"eventName\":\"security_file_open\"}",
            "{\"eventName\":\"security_file_open\",\"args\":5}",
            "{\"eventName\":\"security_file_open\",\"args\":[{\"name\":\"flags\",\"value\":1e300},{\"name\":\"pathname\",\"value\":[]}]}",
            "{\"eventName\":\"openat\",\"returnValue\":-9223372036854775808,\"args\":[{\"name\":\"pathname\",\"value\":\"/x\"}]}",
            "{\"eventName\":\"net_packet_dns\",\"args\":[{\"name\":\"proto_dns\",\"value\":{\"QR\":1,\"questions\":[{}],\"answers\":[{\"TTL\":-5,\"type\":99}]}}]}",
            "{\"name\":\"sched_process_exec\",\"timestamp\":{\"seconds\":\"9223372036854775807\",\"nanos\":\"9223372036854775807\"},\"data\":[{\"name\":\"argv\",\"str_array\":{\"value\":[1,null,\"a\"]}}]}",
            "{\"name\":\"security_socket_connect\",\"data\":[{\"name\":\"remote_addr\",\"sockaddr\":{\"sa_family\":10,\"sin6_addr\":\"::1\",\"sin6_port\":99999999999}}]}",
        ]
        for line in lines { _ = TraceeParser.parse(line: Array(line.utf8)) }
        #expect(TraceeParser.parse(line: Array("{".utf8)).isMalformed)
        #expect(TraceeParser.parse(line: Array("{\"eventName\":\"cgroup_mkdir\"}".utf8)).unknownName == "cgroup_mkdir")
    }
}

extension TraceeLine {
    var isMalformed: Bool { if case .malformed = self { return true } else { return false } }
    var unknownName: String? { if case .unknown(let name) = self { return name } else { return nil } }
}

extension Row {
    func s(_ column: String) -> String? { self[column] }
    func i(_ column: String) -> Int64? { self[column] }
}
