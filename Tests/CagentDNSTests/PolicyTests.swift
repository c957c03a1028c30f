import Testing
import CagentNetwork
@testable import CagentDNS

@Suite struct DomainPatternTests {
    func name(_ text: String) -> DNSName { DNSName(text)! }

    @Test func oneLabelWildcardMatchesOnLabelBoundaries() {
        let pattern = DomainPattern("*.allowed.test")!
        #expect(pattern.matches(name("a.allowed.test")))
        #expect(pattern.matches(name("A.ALLOWED.Test")))
        #expect(!pattern.matches(name("allowed.test")))
        #expect(!pattern.matches(name("evilallowed.test")))
        #expect(!pattern.matches(name("a.evilallowed.test")))
        #expect(!pattern.matches(name("b.a.allowed.test")))
    }

    @Test func anyDepthAndExact() {
        #expect(DomainPattern("**.allowed.test")!.matches(name("b.a.allowed.test")))
        #expect(!DomainPattern("**.allowed.test")!.matches(name("allowed.test")))
        #expect(DomainPattern("allowed.test.")!.matches(name("ALLOWED.test")))
        #expect(!DomainPattern("allowed.test")!.matches(name("a.allowed.test")))
    }

    @Test func aDotInsideALabelIsNotABoundary() {
        // The wire label "evil.allowed" followed by "test" is two labels, not three.
        let tricky = DNSName(labels: [Array("x".utf8), Array("evil.allowed".utf8), Array("test".utf8)])
        #expect(!DomainPattern("**.allowed.test")!.matches(tricky))
    }

    @Test func rejectsBadPatterns() {
        for text in ["", "*", "a.*.test", "**", "a..test", "*.", "x\u{0}.test"] { #expect(DomainPattern(text) == nil, "\(text)") }
    }
}

@Suite struct GatePolicyTests {
    let policy = GatePolicy(patterns: [DomainPattern("**.allowed.test")!, DomainPattern("allowed.test")!], ipv6: false)

    func query(_ name: DNSName, type: UInt16 = DNSType.a) -> DNSMessage {
        DNSMessage(id: 9, flags: 0x0100, questions: [DNSQuestion(name: name, type: type)])
    }

    @Test func allowedAResolvesWithALowercasedFreshQuestion() {
        #expect(policy.decide(query(DNSName("WwW.AlLoWeD.TeSt")!)) == .resolve(DNSQuestion(name: DNSName("www.allowed.test")!, type: DNSType.a), ports: PinPort.webDefaults))
    }

    @Test func otherTypesAndAAAAWithoutIPv6AreNoData() {
        for type in [DNSType.txt, DNSType.null, DNSType.any, DNSType.svcb, DNSType.https, DNSType.mx, DNSType.aaaa] {
            #expect(policy.decide(query(DNSName("a.allowed.test")!, type: type)) == .noData)
        }
        var withV6 = policy
        withV6.ipv6 = true
        #expect(withV6.decide(query(DNSName("a.allowed.test")!, type: DNSType.aaaa)) == .resolve(DNSQuestion(name: DNSName("a.allowed.test")!, type: DNSType.aaaa), ports: PinPort.webDefaults))
    }

    @Test func unknownNamesAreNotAllowedWhateverTheType() {
        for type in [DNSType.a, DNSType.aaaa, DNSType.txt, DNSType.any] {
            #expect(policy.decide(query(DNSName("x.attacker.test")!, type: type)) == .notAllowed)
        }
        #expect(policy.decide(query(DNSName("evilallowed.test")!)) == .notAllowed)
    }

    @Test func refusesOddQueries() {
        var two = query(DNSName("a.allowed.test")!)
        two.questions.append(DNSQuestion(name: DNSName("x.attacker.test")!, type: 1))
        #expect(policy.decide(two) == .refuse(rcode: DNSRcode.refused, reason: "2 questions"))
        let nul = DNSName(labels: [[0x61, 0x00, 0x62], Array("allowed".utf8), Array("test".utf8)])
        #expect(policy.decide(query(nul)) == .refuse(rcode: DNSRcode.refused, reason: "NUL or dot inside a label"))
        let dotted = DNSName(labels: [Array("x.attacker".utf8), Array("allowed".utf8), Array("test".utf8)])
        #expect(policy.decide(query(dotted)) == .refuse(rcode: DNSRcode.refused, reason: "NUL or dot inside a label"))
        var response = query(DNSName("a.allowed.test")!)
        response.flags |= 0x8000
        #expect(policy.decide(response) == .drop)
    }

    @Test func endpointsByNameOpenTheirOwnPortOnly() throws {
        let policy = try GatePolicy(domains: ["**.allowed.test"], endpoints: [(host: "github.test", port: PinPort(.tcp, 22)),
                                                                              (host: "api.allowed.test", port: PinPort(.tcp, 8443))], ipv6: false)
        #expect(policy.ports(for: DNSName("github.test")!) == [PinPort(.tcp, 22)])
        #expect(policy.ports(for: DNSName("API.allowed.test")!) == PinPort.webDefaults + [PinPort(.tcp, 8443)])
        #expect(policy.ports(for: DNSName("x.github.test")!).isEmpty)
        #expect(throws: GatePolicyError.self) { try GatePolicy(domains: ["a..test"], ipv6: false) }
    }

    @Test func specialUseAnswersAreRefusedUnlessAllowed() {
        for text in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.100.100.200",
                     "168.63.129.16", "::1", "fe80::1", "fd00:ec2::254", "fc00::1", "::ffff:127.0.0.1", "0.0.0.0"] {
            #expect(policy.refusal(for: IPAddress(text)!) != nil, "\(text)")
        }
        #expect(policy.refusal(for: IPAddress("203.0.113.9")!) == nil)
        #expect(policy.refusal(for: IPAddress("2001:db8::1")!) == nil)
        let lan = GatePolicy(patterns: [], ipv6: false, allowedSpecial: [IPNetwork("10.0.0.0/8")!])
        #expect(lan.refusal(for: IPAddress("10.9.8.7")!) == nil)
        #expect(lan.refusal(for: IPAddress("127.0.0.1")!) == "loopback")
        #expect(policy.refusal(for: IPAddress("169.254.169.254")!) == "cloud metadata")
    }
}

@Suite struct GateAnswerTests {
    let question = DNSQuestion(name: DNSName("www.allowed.test")!, type: DNSType.a)

    func record(_ owner: String, _ data: DNSRData, type: UInt16 = DNSType.a, ttl: UInt32 = 30) -> DNSRecord {
        DNSRecord(name: DNSName(owner)!, type: type, ttl: ttl, data: data)
    }

    @Test func followsTheChainAndIgnoresOffChainRecords() {
        let response = DNSMessage(id: 5, flags: 0x8180, questions: [question], answers: [
            record("www.allowed.test", .cname(DNSName("edge.cdn.test")!), type: DNSType.cname),
            record("other.test", .a([198, 51, 100, 66])),                 // not on the chain
            record("EDGE.cdn.test", .a([203, 0, 113, 9]), ttl: 5),
        ], authority: [record("edge.cdn.test", .a([198, 51, 100, 1]))],
           additional: [record("edge.cdn.test", .a([198, 51, 100, 2]))])
        let walk = GateAnswer.walk(response, id: 5, question: question)!
        #expect(walk.chain.count == 1)
        #expect(walk.finalName == DNSName("edge.cdn.test")!)
        #expect(walk.addresses.map(\.address) == [IPAddress("203.0.113.9")!])
        #expect(walk.addresses[0].ttl == 5)
    }

    @Test func refusesMismatchedResponses() {
        let response = DNSMessage(id: 5, flags: 0x8180, questions: [question], answers: [record("www.allowed.test", .a([1, 2, 3, 4]))])
        #expect(GateAnswer.walk(response, id: 6, question: question) == nil)
        #expect(GateAnswer.walk(response, id: 5, question: DNSQuestion(name: DNSName("x.allowed.test")!, type: 1)) == nil)
        var notResponse = response
        notResponse.flags = 0x0100
        #expect(GateAnswer.walk(notResponse, id: 5, question: question) == nil)
    }

    @Test func chainLoopsStop() {
        let response = DNSMessage(id: 1, flags: 0x8180, questions: [question], answers: [
            record("www.allowed.test", .cname(DNSName("b.test")!), type: DNSType.cname),
            record("b.test", .cname(DNSName("www.allowed.test")!), type: DNSType.cname),
        ])
        let walk = GateAnswer.walk(response, id: 1, question: question)!
        #expect(walk.chain.count == 1)
        #expect(walk.addresses.isEmpty)
    }

    @Test func clampKeepsTheClientWithinThePin() {
        let clamp = GateAnswer.Clamp(floor: 30, cap: 300)
        #expect(clamp.pin(5) == 30)
        #expect(clamp.client(5) == 5)
        #expect(clamp.pin(86400) == 300)
        #expect(clamp.client(86400) == 300)
    }

    @Test func freshUpstreamQueryCarriesNothingOfTheClient() throws {
        let built = try DNSWire.build(GateAnswer.upstreamQuery(DNSQuestion(name: DNSName("WwW.Allowed.TEST")!, type: 1), id: 77))
        #expect(built == Bytes.query("www.allowed.test", type: 1, id: 77))
    }

    @Test func oversizedUDPRepliesAreTruncated() throws {
        let query = DNSMessage(id: 3, flags: 0x0100, questions: [question])
        let many = (0..<60).map { i in record("www.allowed.test", .a([203, 0, 113, UInt8(i)])) }
        let bytes = GateAnswer.encode(GateAnswer.reply(to: query, rcode: 0, answers: many), limit: 512)
        let reply = try DNSWire.parse(bytes)
        #expect(reply.truncated && reply.answers.isEmpty && bytes.count <= 512)
    }
}

@Suite struct UpstreamConfigTests {
    @Test func readsResolvConf() {
        let text = "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\noptions edns0\n"
        #expect(UpstreamConfig.nameservers(resolvConf: text) == [IPAddress("127.0.0.53")!, IPAddress("2001:db8::53")!])
    }

    @Test func overrideAcceptsPorts() throws {
        let config = try UpstreamConfig(override: ["192.0.2.53", "198.18.0.2:5353", "[2001:db8::1]:5300", "2001:db8::2"])
        #expect(config.servers.map(\.port) == [53, 5353, 5300, 53])
        #expect(throws: UpstreamConfigError.self) { try UpstreamConfig(override: ["example.test"]) }
        #expect(throws: UpstreamConfigError.self) { try UpstreamConfig(override: []) }
    }
}
