import Testing
import CagentNetwork
@testable import CagentCapture
@testable import CagentDNS

/// Learn mode's pure parts: the observing policy, the TLS ClientHello parser, the capture's stream state
/// (DNS over UDP and TCP), the flow log's prefixes and the attribution of flows to names.
@Suite struct LearnTests {
    static func query(_ name: String, type: UInt16 = DNSType.a, id: UInt16 = 7) -> DNSMessage {
        DNSMessage(id: id, flags: 0x0100, questions: [DNSQuestion(name: DNSName(name)!, type: type)])
    }

    @Test func observingPolicyForwardsEveryNameAndTypeFreshButStillRefusesMalformedQueries() {
        let policy = GatePolicy.observing(ipv6: false)
        #expect(policy.decide(Self.query("WWW.Anything.Example")) == .resolve(DNSQuestion(name: DNSName("www.anything.example")!, type: DNSType.a), ports: []))
        #expect(policy.decide(Self.query("x.test", type: DNSType.txt)) == .resolve(DNSQuestion(name: DNSName("x.test")!, type: DNSType.txt), ports: []))
        #expect(policy.decide(Self.query("x.test", type: DNSType.aaaa)) == .resolve(DNSQuestion(name: DNSName("x.test")!, type: DNSType.aaaa), ports: []))
        if case .refuse = policy.decide(Self.query("x.test", type: 252)) {} else { Issue.record("AXFR forwarded") }
        var two = Self.query("a.test")
        two.questions.append(DNSQuestion(name: DNSName("b.test")!, type: DNSType.a))
        if case .refuse = policy.decide(two) {} else { Issue.record("two questions forwarded") }
        let dotted = DNSMessage(id: 1, flags: 0, questions: [DNSQuestion(name: DNSName(labels: [Array("a.b".utf8), Array("test".utf8)]), type: DNSType.a)])
        if case .refuse = policy.decide(dotted) {} else { Issue.record("a dot inside a label forwarded") }
        // Enforce mode is unchanged: a name outside the profile is never forwarded.
        #expect(try! GatePolicy(domains: ["allowed.test"], ipv6: false).decide(Self.query("x.test")) == .notAllowed)
    }

    @Test func answerWalkKeepsOtherTypesForLearnMode() throws {
        let question = DNSQuestion(name: DNSName("t.test")!, type: DNSType.txt)
        let response = DNSMessage(id: 9, flags: 0x8180, questions: [question], answers: [
            DNSRecord(name: DNSName("t.test")!, type: DNSType.cname, ttl: 30, data: .cname(DNSName("u.test")!)),
            DNSRecord(name: DNSName("u.test")!, type: DNSType.txt, ttl: 30, data: .other([3, 0x61, 0x62, 0x63])),
            DNSRecord(name: DNSName("v.test")!, type: DNSType.txt, ttl: 30, data: .other([1, 0x7a])),   // off the chain
        ])
        let walk = try #require(GateAnswer.walk(response, id: 9, question: question))
        #expect(walk.chain.count == 1 && walk.others.count == 1 && walk.others[0].name == DNSName("u.test")!)
        // A/AAAA questions never carry other records.
        let a = DNSQuestion(name: DNSName("t.test")!, type: DNSType.a)
        #expect(GateAnswer.walk(DNSMessage(id: 9, flags: 0x8180, questions: [a], answers: response.answers), id: 9, question: a)?.others.isEmpty == true)
        #expect(GateAnswer.mayHoldCompressedNames(DNSType.mx) && GateAnswer.mayHoldCompressedNames(12) && !GateAnswer.mayHoldCompressedNames(DNSType.txt))
    }

    @Test func clientHelloServerName() throws {
        let hello13 = Corpus.read(Corpus.directory + "/tls/hello13.bin")
        let hello12 = Corpus.read(Corpus.directory + "/tls/hello12.bin")
        #expect(TLSClientHello.serverName(hello13) == "api.allowed.test")
        #expect(TLSClientHello.serverName(hello12) == "mixed.case.example")
        // Cut anywhere before the extension ends: nil, never a trap or a partial name.
        for length in stride(from: 0, to: hello12.count - 1, by: 1) {
            let name = TLSClientHello.serverName(Array(hello12.prefix(length)))
            #expect(name == nil || name == "mixed.case.example")
        }
        #expect(TLSClientHello.serverName(Array("GET / HTTP/1.1\r\n".utf8)) == nil)
        // A hostile name cannot reach a terminal raw: ESC and other bytes show as \DDD.
        #expect(TLSClientHello.display([0x41, 0x1b, 0x5b, 0x32, 0x4a, 0x2e, 0x62]) == "a\\027\\0912j.b")
    }

    // MARK: capture stream state

    static let sandbox = IPAddress("100.72.0.2")!, resolver = IPAddress("198.51.100.8")!

    static func udp(_ message: DNSMessage, response: Bool = false) -> Segment {
        Segment(proto: 17, source: response ? resolver : sandbox, destination: response ? sandbox : resolver,
                sourcePort: response ? 53 : 40000, destinationPort: response ? 40000 : 53, sequence: 0, flags: 0,
                payload: try! DNSWire.build(message))
    }

    static func tcp(_ payload: [UInt8], seq: UInt32, flags: UInt8 = 0x18, dport: UInt16 = 53, to: IPAddress = resolver) -> Segment {
        Segment(proto: 6, source: sandbox, destination: to, sourcePort: 40001, destinationPort: dport, sequence: seq,
                flags: flags, payload: payload)
    }

    @Test func udpQueryAndAnswerKeepTheOriginalResolver() {
        var state = StreamState()
        let events = state.handle(Self.udp(Self.query("x.allowed.test")), time: 1)
        guard case .dns(let query)? = events.first else { Issue.record("no event"); return }
        #expect(!query.isResponse && query.resolver == Self.resolver && query.client == Self.sandbox && query.name == "x.allowed.test" && query.rcode == nil)
        var answer = Self.query("x.allowed.test")
        answer.flags = 0x8183
        guard case .dns(let response)? = state.handle(Self.udp(answer, response: true), time: 2).first else { Issue.record("no answer"); return }
        #expect(response.isResponse && response.rcode == 3 && response.resolver == Self.resolver && response.client == Self.sandbox)
        // Not DNS on port 53: nothing.
        var junk = Self.udp(Self.query("a.test"))
        junk.payload = [1, 2, 3]
        #expect(state.handle(junk, time: 3).isEmpty)
    }

    @Test func tcpMessagesAreReassembledAcrossSegmentsAndRetransmissionsIgnored() throws {
        var state = StreamState()
        let one = try DNSWire.build(Self.query("one.test")), two = try DNSWire.build(Self.query("two.test", id: 8))
        let stream = [UInt8(one.count >> 8), UInt8(one.count & 0xff)] + one + [UInt8(two.count >> 8), UInt8(two.count & 0xff)] + two
        #expect(state.handle(Self.tcp([], seq: 999, flags: 0x02), time: 0).isEmpty)                  // SYN
        let cut = 5
        #expect(state.handle(Self.tcp(Array(stream.prefix(cut)), seq: 1000), time: 1).isEmpty)
        #expect(state.handle(Self.tcp(Array(stream.prefix(cut)), seq: 1000), time: 1).isEmpty)      // retransmitted
        let events = state.handle(Self.tcp(Array(stream.dropFirst(cut)), seq: 1000 + UInt32(cut)), time: 2)
        let names = events.compactMap { if case .dns(let o) = $0 { o.name } else { nil } }
        #expect(names == ["one.test", "two.test"])
        #expect(events.allSatisfy { if case .dns(let o) = $0 { o.transport == "tcp" } else { false } })
        // Garbage lengths never trap and never grow without bound.
        for seq in 0..<3000 { _ = state.handle(Self.tcp([0xff, 0xff, 1, 2, 3], seq: UInt32(seq * 100_000)), time: 3) }
        #expect(state.streams.count <= StreamState.maxStreams)
    }

    /// A ClientHello grown past one segment, as post-quantum key shares make it: `padding` bytes of a padding
    /// extension (21) appended after the server_name one.
    static func bigHello(_ hello: [UInt8], padding: Int) -> [UInt8] {
        var out = hello
        var offset = 5 + 4 + 2 + 32
        offset += 1 + Int(out[offset])
        offset += 2 + (Int(out[offset]) << 8 | Int(out[offset + 1]))
        offset += 1 + Int(out[offset])
        let extensions = Int(out[offset]) << 8 | Int(out[offset + 1])
        out += [0, 21, UInt8(padding >> 8), UInt8(padding & 0xff)] + [UInt8](repeating: 0, count: padding)
        func put16(_ at: Int, _ value: Int) { out[at] = UInt8(value >> 8); out[at + 1] = UInt8(value & 0xff) }
        put16(offset, extensions + 4 + padding)
        put16(3, out.count - 5)
        out[6] = 0; put16(7, out.count - 9)
        return out
    }

    @Test func aClientHelloSplitOverSegmentsIsReassembled() throws {
        // The name moved to the end: it is only whole once the second segment arrived.
        let original = Corpus.read(Corpus.directory + "/tls/hello13.bin")
        let big = Self.bigHello(original, padding: 2000)
        #expect(TLSClientHello.serverName(big) == "api.allowed.test")
        let web = IPAddress("203.0.113.11")!
        var state = StreamState()
        // Cut inside the padding (after the name): found at once. Cut before the name: after the second segment.
        #expect(state.handle(Self.tcp(Array(big.prefix(1400)), seq: 1, dport: 443, to: web), time: 1).count == 1)
        var early = StreamState()
        #expect(early.handle(Self.tcp(Array(big.prefix(100)), seq: 1, dport: 443, to: web), time: 1).isEmpty)
        #expect(early.handle(Self.tcp(Array(big.dropFirst(100)), seq: 101, dport: 443, to: web), time: 2).count == 1)
        // A gap gives up on the connection, never guesses.
        var gap = StreamState()
        #expect(gap.handle(Self.tcp(Array(big.prefix(100)), seq: 1, dport: 443, to: web), time: 1).isEmpty)
        #expect(gap.handle(Self.tcp(Array(big.dropFirst(200)), seq: 201, dport: 443, to: web), time: 2).isEmpty)
        #expect(gap.hellos.isEmpty)
    }

    @Test func firstTLSDataSegmentGivesTheSNIOncePerConnection() {
        var state = StreamState()
        let hello = Corpus.read(Corpus.directory + "/tls/hello13.bin")
        let web = IPAddress("203.0.113.11")!
        let events = state.handle(Self.tcp(hello, seq: 1, dport: 443, to: web), time: 1)
        #expect(events == [.tls(ServerNameSeen(time: 1, client: Self.sandbox, destination: web, port: 443, serverName: "api.allowed.test"))])
        #expect(state.handle(Self.tcp(hello, seq: 600, dport: 443, to: web), time: 2).isEmpty)
        _ = state.handle(Self.tcp([], seq: 700, flags: 0x11, dport: 443, to: web), time: 3)           // FIN: next connection
        #expect(state.handle(Self.tcp(hello, seq: 1, dport: 443, to: web), time: 4).count == 1)
    }

    @Test func ethernetFramesDecode() {
        let ip: [UInt8] = [0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0] + Self.sandbox.bytes + Self.resolver.bytes + [0x9c, 0x40, 0, 53, 0, 8, 0, 0]
        let frame = [UInt8](repeating: 0, count: 12) + [0x08, 0x00] + ip
        let segment = PacketDecoder.ethernet(frame)
        #expect(segment?.destinationPort == 53 && segment?.destination == Self.resolver && segment?.payload.isEmpty == true)
        #expect(PacketDecoder.ethernet(Array(frame.prefix(30))) == nil)
        var fragment = frame
        fragment[14 + 7] = 1
        #expect(PacketDecoder.ethernet(fragment) == nil)
    }

    // MARK: flows

    @Test func flowLogPrefixes() {
        let address = IPAddress("203.0.113.13")!
        #expect(FlowLog.observation(DeniedPacket(proto: 6, destination: address, port: 80, prefix: Array("cagent-flow ".utf8)), time: 1)?.verdict == .accepted)
        #expect(FlowLog.observation(DeniedPacket(proto: 6, destination: address, port: 80, prefix: Array("cagent-deny ".utf8)), time: 1)?.verdict == .dropped)
        #expect(FlowLog.observation(DeniedPacket(proto: 6, destination: address, port: 80, prefix: Array("other".utf8)), time: 1) == nil)
    }

    static func answer(_ name: String, _ records: [(String, UInt16, String)], time: Double) -> DNSMessageSeen {
        DNSMessageSeen(source: .gate, time: time, isResponse: true, transport: "udp", resolver: nil, name: name, type: DNSType.a,
                       rcode: 0, answers: records.map { DNSMessageSeen.Answer(name: $0.0, type: $0.1, ttl: 5, value: $0.2) })
    }

    static func flow(_ address: String, _ port: UInt16, time: Double = 10) -> FlowSeen {
        FlowSeen(time: time, proto: 6, destination: IPAddress(address)!, port: port, verdict: .accepted)
    }

    @Test func flowsAreNamedByAnswersThenSNIElseDirectIP() {
        var attributor = FlowAttributor()
        attributor.add(Self.answer("assets.allowed.test", [("assets.allowed.test", DNSType.cname, "edge.cdn.test"),
                                                           ("edge.cdn.test", DNSType.cname, "node7.edge.cdn.test"),
                                                           ("node7.edge.cdn.test", DNSType.a, "203.0.113.12")], time: 1))
        attributor.add(Self.answer("old.test", [("old.test", DNSType.a, "203.0.113.10")], time: 1))
        attributor.add(Self.answer("new.test", [("new.test", DNSType.a, "203.0.113.10")], time: 2))
        attributor.add(Self.answer("older.test", [("older.test", DNSType.a, "203.0.113.10")], time: 0))    // arrives late, older
        attributor.add(ServerNameSeen(time: 3, client: Self.sandbox, destination: IPAddress("203.0.113.66")!, port: 443, serverName: "sni.test"))
        for flow in [Self.flow("203.0.113.12", 443), Self.flow("203.0.113.10", 80), Self.flow("203.0.113.66", 443),
                     Self.flow("203.0.113.13", 80), Self.flow("203.0.113.13", 80, time: 11)] {
            attributor.add(flow)
        }
        let findings = attributor.findings()
        #expect(findings.count == 4)                   // the repeated flow counted once
        #expect(findings[0].basis == .dns && findings[0].name == "assets.allowed.test" && findings[0].chain == ["edge.cdn.test", "node7.edge.cdn.test"])
        #expect(findings[1].name == "new.test")
        #expect(findings[2].basis == .sni && findings[2].name == "sni.test" && findings[2].serverName == "sni.test")
        #expect(findings[3].basis == .directIP && findings[3].name == nil)
        // Failed answers name nothing.
        var failed = FlowAttributor()
        var nx = Self.answer("gone.test", [("gone.test", DNSType.a, "203.0.113.13")], time: 1)
        nx.rcode = 2
        failed.add(nx)
        #expect(failed.attribute(Self.flow("203.0.113.13", 80)).basis == .directIP)
    }
}
