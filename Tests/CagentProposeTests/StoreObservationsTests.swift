import CagentCore
@testable import CagentPropose
import CagentEvents
import CagentStore
import Foundation
import GRDB
import Testing

/// The adapter: a session recorded through the store's Recorder reads back as Observations; rows of the wrong
/// type are skipped, never a trap.
@Suite struct StoreObservationsTests {
    func temporaryDatabase() -> String {
        NSTemporaryDirectory() + "cagent-propose-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).db"
    }

    func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }

    @Test func recordedSessionReadsBack() throws {
        let path = temporaryDatabase()
        defer { remove(path) }
        let store = try Store(path: path)
        let recorder = try Recorder(store: store, session: SessionInfo(id: "s1", kind: "learn", gate: "10.77.0.1"),
                                    rules: FindingRules(secretPaths: ["~/.ssh"], gateAddress: "10.77.0.1"))
        let t: Nanoseconds = 1_796_000_000_000_000_000
        recorder.record(.dns(DNSObservation(time: t, question: RawText("www.example.com"), type: "A", isResponse: true,
                                            rcode: "NOERROR", answers: [DNSAnswer(name: RawText("www.example.com"), type: "A",
                                                                                  data: RawText("192.0.2.1"), ttl: 60)],
                                            resolver: "10.77.0.1", source: .gate)))
        recorder.record(.dns(DNSObservation(time: t, question: RawText("lookup.example.net"), type: "A", isResponse: false,
                                            rcode: "", answers: [], resolver: "10.77.0.1", source: .gate)))
        // The tracer's connects: TCP that the network saw (packets from the end-of-session merge), and a UDP
        // connect that sent nothing.
        recorder.record(.flow(FlowObservation(time: t + 1, pid: 5, program: RawText("curl"), proto: "tcp", address: "192.0.2.1", port: 443)))
        recorder.record(.flow(FlowObservation(time: t + 2, pid: 5, program: RawText("curl"), proto: "tcp", address: "192.0.2.1", port: 443,
                                              packets: 1, connections: 0)))
        recorder.record(.flow(FlowObservation(time: t + 1, pid: 5, program: RawText("curl"), proto: "udp", address: "192.0.2.1", port: 80)))
        recorder.record(.file(FileAccess(time: t, pid: 5, program: RawText("cat"), path: RawText("/home/dev/.ssh/id_rsa"),
                                         operation: .read, result: 2, flags: 0)))
        recorder.record(.file(FileAccess(time: t, pid: 5, program: RawText("cat"), path: RawText("/opt/x/y"), operation: .read,
                                         result: 0, flags: 0)))
        try recorder.close()

        #expect(try Observations.latestLearnSession(in: store) == "s1")
        let observations = try Observations.load(from: store, sessions: ["s1"])
        #expect(observations.gates == ["10.77.0.1"])
        #expect(observations.lookups.map { String(decoding: $0.name, as: UTF8.self) } == ["lookup.example.net", "www.example.com"])
        let tcp = observations.flows.first { $0.proto == "tcp" }!
        #expect(tcp.trafficSeen == true && tcp.name == Array("www.example.com".utf8) && tcp.evidence.count == 1)
        let udp = observations.flows.first { $0.proto == "udp" }!
        #expect(udp.trafficSeen == false)
        #expect(observations.findings.contains { $0.kind == "secret-access" })

        var options = ProposalOptions(home: "/home/dev")
        options.workspace = "/work/p"
        let proposal = Proposer(options: options, suffixes: systemSuffixes).propose(observations)
        #expect(values(proposal.domains) == ["www.example.com"])
        #expect(values(proposal.read) == ["/opt/x/y"])
        #expect(throws: CagentError.self) { try Observations.load(from: store, sessions: ["missing"]) }
    }

    /// A database edited by hand (or by another version): a value of the wrong type skips its row.
    @Test func wrongTypesAreSkippedNotTrapped() throws {
        let path = temporaryDatabase()
        defer { remove(path) }
        let store = try Store(path: path)
        try store.createSession(SessionInfo(id: "s", kind: "learn"))
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO flows (session_id, proto, address, port, verdict, program, result, connections, bytes_out, bytes_in,
                  packets, first_seen, last_seen) VALUES ('s', 'tcp', '192.0.2.9', 'not-a-port', 'observed', 'x', 0, 1, 0, 0, 0, 1, 1);
                INSERT INTO flows (session_id, proto, address, port, verdict, program, result, connections, bytes_out, bytes_in,
                  packets, first_seen, last_seen) VALUES ('s', 'tcp', '192.0.2.10', 443, 'observed', x'ff00', 'odd', 'many', 0, 0, 0, 1, 1);
                INSERT INTO files (session_id, path, operation, result, program, flags, count, first_seen, last_seen)
                  VALUES ('s', x'2f6f70742fff', 'read', 0, 'cat', 'flags?', 1, 'then', 2);
                INSERT INTO dns (session_id, name, type, resolver, source, program, queries, responses, first_seen, last_seen)
                  VALUES ('s', 42, 'A', '', 'gate', '', 'x', 1, 1, 1);
                """)
        }
        try queue.close()
        let observations = try Observations.load(from: store, sessions: ["s"])
        #expect(observations.flows.map(\.address) == ["192.0.2.10"])
        #expect(observations.files.isEmpty)
        _ = Proposer(options: ProposalOptions(home: "/h"), suffixes: systemSuffixes).propose(observations)
    }
}
