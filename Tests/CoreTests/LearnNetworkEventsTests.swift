import Testing
import CagentCapture
import CagentDNS
import CagentNetwork
import CagentStore
@testable import CagentCLI

/// The bridge from learn mode's network observations to the store's events.
@Suite struct LearnNetworkEventsTests {
    @Test func dnsAndFlowsBecomeStoreEvents() throws {
        let seen = DNSMessageSeen(source: .pcap, time: 2.5, isResponse: true, transport: "udp", resolver: IPAddress("198.51.100.8"),
                                  name: "assets.allowed.test", type: DNSType.a, rcode: 0, answers: [
                                      .init(name: "assets.allowed.test", type: DNSType.cname, ttl: 5, value: "edge.cdn.test"),
                                      .init(name: "edge.cdn.test", type: DNSType.a, ttl: 5, value: "203.0.113.12")])
        guard case .dns(let dns) = seen.observedEvent else { Issue.record("not dns"); return }
        #expect(dns.time == 2_500_000_000 && dns.question == RawText("assets.allowed.test") && dns.type == "A")
        #expect(dns.rcode == "NOERROR" && dns.resolver == "198.51.100.8" && dns.source == .pcap && dns.isResponse)
        #expect(dns.answers.map(\.type) == ["CNAME", "A"] && dns.answers[1].data == RawText("203.0.113.12"))

        var attributor = FlowAttributor()
        attributor.add(seen)
        attributor.add(FlowSeen(time: 3, proto: 6, destination: IPAddress("203.0.113.12")!, port: 443, verdict: .accepted))
        attributor.add(FlowSeen(time: 4, proto: 6, destination: IPAddress("10.1.2.3")!, port: 22, verdict: .dropped))
        let events = attributor.findings().map(\.observedEvent)
        guard case .flow(let named) = events[0], case .flow(let lan) = events[1] else { Issue.record("not flows"); return }
        #expect(named.name == RawText("assets.allowed.test") && named.verdict == .observed && named.proto == "tcp" && named.port == 443)
        #expect(lan.name == nil && lan.verdict == .blocked && lan.address == "10.1.2.3")
    }
}
