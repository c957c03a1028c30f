import CagentEvents
@testable import CagentStore
import CagentCore
import Foundation
import GRDB
import Testing

/// A flow seen by the tracer (which program) and by the network (verdict, name) is one fact; binds are events.
@Suite struct FlowAndBindTests {
    static func row(_ address: String, _ port: Int64, verdict: String = "observed", program: String = "", result: Int64 = 0,
                    name: String? = nil, source: String? = nil, connections: Int64 = 1, first: Int64 = 1, last: Int64 = 1,
                    proto: String = "tcp") -> SessionReport.FlowRow {
        SessionReport.FlowRow(proto: proto, address: address, port: port, verdict: verdict, program: RawText(program),
                              result: result, name: name.map { RawText($0) }, nameSource: source, connections: connections,
                              firstSeen: first, lastSeen: last)
    }

    @Test func mergeFlowsIsOneEntryPerEndpoint() {
        let merged = Store.mergeFlows([
            Self.row("192.0.2.10", 443, program: "curl", connections: 3, first: 5, last: 9),
            Self.row("192.0.2.10", 443, name: "api.example.test", source: "dns", connections: 2, first: 4, last: 8),
            Self.row("192.0.2.10", 443, program: "wget", result: 111, connections: 1, first: 7, last: 7),
            // The same address from a dual-stack socket: the same flow.
            Self.row("::ffff:192.0.2.10", 443, program: "node", connections: 1, first: 6, last: 10),
            // A name of each source: dns wins over sni, whatever the order.
            Self.row("192.0.2.20", 443, program: "python3", name: "sni.example.test", source: "sni", first: 2),
            Self.row("192.0.2.20", 443, name: "dns.example.test", source: "dns", first: 3),
            // Blocked by the network, seen by the tracer: blocked.
            Self.row("169.254.169.254", 80, program: "curl", result: 110, first: 11),
            Self.row("169.254.169.254", 80, verdict: "blocked", first: 12),
            // Another port or protocol is another flow.
            Self.row("192.0.2.10", 80, program: "curl", first: 13),
            Self.row("192.0.2.10", 443, program: "dig", first: 14, proto: "udp"),
        ])
        #expect(merged.count == 5)
        let api = merged[1]
        #expect(merged[0].address == "192.0.2.20" && merged[0].name == RawText("dns.example.test") && merged[0].nameSource == "dns")
        #expect(merged[0].programs == [RawText("python3")])
        #expect(api.address == "192.0.2.10" && api.port == 443 && api.proto == "tcp")
        #expect(api.programs == [RawText("curl"), RawText("node"), RawText("wget")])
        #expect(api.results == [0, 111] && api.verdict == "observed")
        #expect(api.name == RawText("api.example.test") && api.nameSource == "dns")
        // Tracer rows count 5 connects, the network 2 flows: the better-informed count, not the sum.
        #expect(api.connections == 5)
        #expect(api.firstSeen == 4 && api.lastSeen == 10)
        #expect(merged[2].address == "169.254.169.254" && merged[2].verdict == "blocked" && merged[2].programs == [RawText("curl")])
        #expect(merged[2].results == [110, 0] && merged[2].connections == 1 && merged[2].name == nil)
        #expect(merged[3].port == 80 && merged[4].proto == "udp")
        #expect(FlowObservation.canonicalAddress("::FFFF:10.0.0.1") == "10.0.0.1")
        #expect(FlowObservation.canonicalAddress("::ffff:1.2.3") == "::ffff:1.2.3")
        #expect(FlowObservation.canonicalAddress("2001:db8::1") == "2001:db8::1")
    }

    /// What `cagent learn` records for a session, through the Recorder: each flow is one report entry with its
    /// name source; the counts of `cagent sessions` agree.
    @Test func tracerAndNetworkRowsAreOneFlowInTheReport() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "m", kind: "learn", gate: "10.0.0.1"),
                                    rules: FindingRules(secretPaths: [], gateAddress: "10.0.0.1"))
        let name = RawText("api.example.test")
        recorder.record(.dns(DNSObservation(time: 1, question: name, type: "A", isResponse: true, rcode: "NOERROR",
                                            answers: [DNSAnswer(name: name, type: "A", data: RawText("192.0.2.10"), ttl: 60)],
                                            resolver: "10.0.0.1", source: .gate)))
        // The tracer's connects, live.
        let curl = RawText("curl"), python = RawText("python3")
        recorder.record(.flow(FlowObservation(time: 2, pid: 7, program: curl, proto: "tcp", address: "192.0.2.10", port: 80)))
        recorder.record(.flow(FlowObservation(time: 3, pid: 8, program: python, proto: "tcp", address: "192.0.2.20", port: 443)))
        recorder.record(.flow(FlowObservation(time: 4, pid: 7, program: curl, proto: "tcp", address: "198.51.100.7", port: 80)))
        recorder.record(.flow(FlowObservation(time: 5, pid: 7, program: curl, proto: "tcp", address: "169.254.169.254", port: 80,
                                              result: 110)))
        recorder.record(.flow(FlowObservation(time: 6, pid: 9, program: RawText("dig"), proto: "udp", address: "10.0.0.1", port: 53)))
        // The end of the session: the attribution merged in (what LearnFlowMerge emits).
        recorder.record(.flow(FlowObservation(time: 2, pid: 7, program: curl, proto: "tcp", address: "192.0.2.10", port: 80,
                                              name: name, nameSource: .dns, connections: 0)))
        recorder.record(.flow(FlowObservation(time: 3, pid: 8, program: python, proto: "tcp", address: "192.0.2.20", port: 443,
                                              name: RawText("sni-only.test"), nameSource: .sni, connections: 0)))
        recorder.record(.flow(FlowObservation(time: 5, proto: "tcp", address: "169.254.169.254", port: 80, verdict: .blocked)))
        try recorder.close()

        #expect(try store.count("SELECT count(*) FROM flows WHERE session_id = 'm'") == 6)
        #expect(try store.count("SELECT events FROM sessions WHERE id = 'm'") == 7)   // evidence rows are not events
        let report = try #require(try store.report(session: "m", rules: testRules))
        func flow(_ address: String) -> [SessionReport.Flow] { report.flows.filter { $0.address == address } }
        #expect(report.flows.count == 5)
        #expect(flow("192.0.2.10").count == 1 && flow("192.0.2.10").first?.nameSource == "dns")
        #expect(flow("192.0.2.10").first?.name == name && flow("192.0.2.10").first?.programs == [curl])
        #expect(flow("192.0.2.10").first?.connections == 1)
        #expect(flow("192.0.2.20").first?.name == RawText("sni-only.test") && flow("192.0.2.20").first?.nameSource == "sni")
        #expect(flow("198.51.100.7").first?.name == nil && flow("198.51.100.7").first?.programs == [curl])
        #expect(flow("169.254.169.254").first?.verdict == "blocked" && flow("169.254.169.254").first?.programs == [curl])
        #expect(flow("169.254.169.254").first?.connections == 1)
        #expect(report.directIPFlows.map(\.address) == ["198.51.100.7", "169.254.169.254"])
        let summary = try #require(try store.sessions().first { $0.id == "m" })
        #expect(summary.flows == 5)
        #expect(summary.findings == Int64(report.findings.count), "\(report.findings.map(\.subject))")
    }

    /// A flow is named by the answer before its connect: 50 later lookups answering the same address (a
    /// wildcard) rename neither the row (in one batch or across batches) nor the report; an address first
    /// answered after the connect does not name it (a direct IP). Both gate addresses are the gate; the tracer's
    /// row of a dropped flow becomes the one blocked row.
    @Test func flowsKeepTheNameOfTheLookupBeforeThem() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let gate = "100.72.0.1,fd63:6167:656e::1"
        let recorder = try Recorder(store: store, session: SessionInfo(id: "a", kind: "learn", gate: gate),
                                    rules: FindingRules(secretPaths: [], gateAddress: gate), batchEvents: 4)
        func answer(_ name: String, at time: Nanoseconds, _ address: String = "203.0.113.13", resolver: String = "100.72.0.1",
                    source: DNSSource = .gate) -> ObservedEvent {
            .dns(DNSObservation(time: time, question: RawText(name), type: "A", isResponse: true, rcode: "NOERROR",
                                answers: [DNSAnswer(name: RawText(name), type: "A", data: RawText(address), ttl: 30)],
                                resolver: resolver, source: source))
        }
        let curl = RawText("curl")
        recorder.record(answer("git.allowed.test", at: 10))
        recorder.record(.flow(FlowObservation(time: 20, pid: 7, program: curl, proto: "tcp", address: "203.0.113.13", port: 9418)))
        for index in 0..<50 { recorder.record(answer("r\(index).spray.test", at: 30 + Nanoseconds(index))) }
        recorder.record(.flow(FlowObservation(time: 90, pid: 8, program: curl, proto: "tcp", address: "203.0.113.13", port: 9418)))
        // The attribution at the end names it too, from the first flow's time.
        recorder.record(.flow(FlowObservation(time: 21, pid: 8, program: curl, proto: "tcp", address: "203.0.113.13", port: 9418,
                                              name: RawText("git.allowed.test"), nameSource: .dns, connections: 0)))
        // The gate's answer reaches the recorder after the connect it led to (threads): the row's later connect,
        // after a spray of other names, is named by the answer before the row's first connect.
        recorder.record(.flow(FlowObservation(time: 60, pid: 9, program: curl, proto: "tcp", address: "203.0.113.15", port: 443)))
        recorder.record(answer("api.allowed.test", at: 59, "203.0.113.15"))
        for index in 0..<5 { recorder.record(answer("s\(index).spray.test", at: 61 + Nanoseconds(index), "203.0.113.15")) }
        recorder.record(.flow(FlowObservation(time: 70, pid: 9, program: curl, proto: "tcp", address: "203.0.113.15", port: 443)))
        // Connected before any lookup of it: a direct IP, even if a lookup answers it later.
        recorder.record(.flow(FlowObservation(time: 100, pid: 7, program: curl, proto: "tcp", address: "203.0.113.14", port: 80)))
        recorder.record(answer("later.allowed.test", at: 110, "203.0.113.14"))
        // glibc's retry on the gate's IPv6 address after a SERVFAIL, as the capture saw it: the gate.
        recorder.record(.dns(DNSObservation(time: 120, question: RawText("x.fail.test"), type: "A", isResponse: true, rcode: "SERVFAIL",
                                            answers: [], resolver: "fd63:6167:656e::1", source: .pcap)))
        // A LAN drop the tracer saw connect: its row, marked blocked at the end (no second row).
        recorder.record(.flow(FlowObservation(time: 130, pid: 7, program: curl, proto: "tcp", address: "10.9.8.7", port: 8080, result: 110)))
        try recorder.flush()
        try store.markFlowsBlocked(session: "a", [("tcp", "10.9.8.7", 8080, curl, 110)])
        try recorder.close()

        let names = try store.read { db in
            try String.fetchAll(db, sql: "SELECT coalesce(name, '-') FROM flows WHERE session_id = 'a' ORDER BY address, port")
        }
        #expect(names == ["-", "git.allowed.test", "-", "api.allowed.test"], "\(names)")
        let report = try #require(try store.report(session: "a", rules: testRules))
        #expect(report.flows.first { $0.port == 9418 }?.name == RawText("git.allowed.test"))
        #expect(report.flows.first { $0.port == 9418 }?.connections == 2)
        #expect(report.directIPFlows.map(\.address).sorted() == ["10.9.8.7", "203.0.113.14"], "\(report.directIPFlows.map(\.address))")
        #expect(!report.findings.contains { $0.kind == .dnsBypass }, "\(report.findings.map(\.subject))")
        #expect(report.gateBypass.isEmpty)
        let lan = try store.read { db in
            try String.fetchAll(db, sql: "SELECT verdict || ' ' || CAST(program AS TEXT) FROM flows WHERE address = '10.9.8.7'")
        }
        #expect(lan == ["blocked curl"], "\(lan)")
        // A resolver that is not the gate still is a bypass (the control).
        let other = try Recorder(store: store, session: SessionInfo(id: "b2", kind: "learn", gate: gate),
                                 rules: FindingRules(secretPaths: [], gateAddress: gate))
        other.record(answer("x.allowed.test", at: 1, resolver: "198.51.100.8", source: .pcap))
        try other.close()
        #expect(try store.report(session: "b2", rules: testRules)?.findings.contains { $0.kind == .dnsBypass } == true)
        let summary = try #require(try store.sessions().first { $0.id == "a" })
        #expect(summary.findings == Int64(report.findings.count), "\(report.findings.map(\.subject))")
    }

    @Test func bindsAreStoredAndReported() throws {
        let scratch = try Scratch()
        let store = try Store(path: scratch.file("t.db"))
        let recorder = try Recorder(store: store, session: SessionInfo(id: "b", kind: "learn"), rules: testRules)
        let python = RawText("python3")
        recorder.record(.bind(BindObservation(time: 1, pid: 5, program: python, proto: "tcp", address: "127.0.0.1", port: 8080)))
        recorder.record(.bind(BindObservation(time: 2, pid: 6, program: python, proto: "tcp", address: "127.0.0.1", port: 8080)))
        recorder.record(.bind(BindObservation(time: 3, pid: 6, program: python, proto: "tcp", address: "127.0.0.1", port: 8080,
                                              result: 98)))
        recorder.record(.bind(BindObservation(time: 4, program: RawText("dig"), proto: "udp", address: "::", port: 0)))
        try recorder.close()
        let report = try #require(try store.report(session: "b", rules: testRules))
        #expect(report.binds.count == 3)
        let listening = try #require(report.binds.first)
        #expect(listening.family == "ipv4" && listening.proto == "tcp" && listening.address == "127.0.0.1" && listening.port == 8080)
        #expect(listening.program == python && listening.count == 2 && listening.result == 0)
        #expect(listening.firstSeen == 1 && listening.lastSeen == 2)
        #expect(report.binds[1].result == 98)
        #expect(report.binds[2].family == "ipv6" && report.binds[2].proto == "udp")
        #expect(try store.count("SELECT last_pid FROM binds WHERE port = 8080 AND result = 0") == 6)
        #expect(try store.count("SELECT events FROM sessions WHERE id = 'b'") == 4)
        #expect(try store.sessions().first?.binds == 3)
    }

    /// A database written before binds existed (migration v1 only) opens, gains the table, keeps its rows.
    @Test func aVersionOneDatabaseMigrates() throws {
        let scratch = try Scratch()
        let path = scratch.file("old.db")
        do {
            let queue = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(queue, upTo: "v1")
            try queue.write { db in
                try db.execute(sql: "INSERT INTO sessions (id, kind, started_at) VALUES ('old', 'learn', 1)")
                try db.execute(sql: """
                    INSERT INTO flows (session_id, proto, address, port, verdict, program, result, name, name_source,
                      connections, bytes_out, bytes_in, packets, first_seen, last_seen)
                    VALUES ('old', 'tcp', '192.0.2.1', 443, 'observed', 'curl', 0, 'a.test', 'sni', 1, 0, 0, 0, 1, 1)
                    """)
            }
            #expect(try queue.read { db in try db.tableExists("binds") } == false)
        }
        let store = try Store(path: path, create: false)
        #expect(try store.read { db in try db.tableExists("binds") })
        let applied = try store.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") }
        #expect(applied == ["v1", "v2"])
        let report = try #require(try store.report(session: "old", rules: testRules))
        #expect(report.flows.count == 1 && report.flows.first?.name == RawText("a.test") && report.binds.isEmpty)
        let recorder = try Recorder(store: store, session: SessionInfo(id: "old", kind: "learn"), rules: testRules)
        recorder.record(.bind(BindObservation(time: 2, proto: "tcp", address: "0.0.0.0", port: 22)))
        try recorder.close()
        #expect(try store.report(session: "old", rules: testRules)?.binds.count == 1)
    }
}
