import Testing
import CagentCapture
import CagentDNS
import CagentNetwork
import CagentEvents
import CagentStore
@testable import CagentLearn

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

    /// The flow log's attribution merged with the tracer's connects: each flow one fact, its name source kept.
    @Test func attributedFlowsMergeWithTracedConnects() throws {
        var attributor = FlowAttributor()
        attributor.add(DNSMessageSeen(source: .gate, time: 1, isResponse: true, transport: "udp", resolver: IPAddress("10.0.0.1"),
                                      name: "www.allowed.test", type: DNSType.a, rcode: 0,
                                      answers: [.init(name: "www.allowed.test", type: DNSType.a, ttl: 60, value: "203.0.113.10")]))
        attributor.add(ServerNameSeen(time: 2, client: IPAddress("10.0.0.2")!, destination: IPAddress("203.0.113.13")!, port: 443,
                                      serverName: "sni-only.test"))
        let web = IPAddress("203.0.113.10")!, bare = IPAddress("203.0.113.13")!
        attributor.add(FlowSeen(time: 3, proto: 6, destination: web, port: 80, verdict: .accepted))
        attributor.add(FlowSeen(time: 3.5, proto: 6, destination: web, port: 80, verdict: .accepted))
        attributor.add(FlowSeen(time: 4, proto: 6, destination: bare, port: 443, verdict: .accepted))
        attributor.add(FlowSeen(time: 5, proto: 6, destination: bare, port: 80, verdict: .accepted))
        attributor.add(FlowSeen(time: 6, proto: 6, destination: IPAddress("169.254.169.254")!, port: 80, verdict: .dropped))
        attributor.add(FlowSeen(time: 7, proto: 17, destination: IPAddress("198.51.100.9")!, port: 4000, verdict: .accepted))
        let findings = attributor.findings()
        #expect(findings.count == 5 && findings[0].flows == 2 && findings[1].flows == 1)

        var connects = TracedConnects()
        let curl = RawText("curl"), python = RawText("python3")
        connects.add(FlowObservation(time: 3, pid: 10, program: curl, proto: "tcp", address: "203.0.113.10", port: 80))
        connects.add(FlowObservation(time: 3, pid: 11, program: curl, proto: "tcp", address: "203.0.113.10", port: 80))
        // A dual-stack socket's connect is the same flow; its row keeps its own address.
        connects.add(FlowObservation(time: 4, pid: 12, program: python, proto: "tcp", address: "::ffff:203.0.113.13", port: 443))
        connects.add(FlowObservation(time: 5, pid: 13, program: curl, proto: "tcp", address: "203.0.113.13", port: 80))
        connects.add(FlowObservation(time: 6, pid: 14, program: curl, proto: "tcp", address: "169.254.169.254", port: 80, result: 110))
        #expect(connects.byEndpoint[FlowEndpoint(proto: "tcp", address: "203.0.113.10", port: 80)]?.map(\.pid) == [11])

        let merged = LearnFlowMerge.merge(findings: findings, connects: connects)
        let flows = merged.events.compactMap { event -> FlowObservation? in
            if case .flow(let flow) = event { return flow }
            return nil
        }
        // www: the name goes onto curl's row (no extra connection), source dns, and the two logged flows as packets.
        #expect(flows.count == 5, "\(flows)")
        #expect(flows[0].program == curl && flows[0].address == "203.0.113.10" && flows[0].name == RawText("www.allowed.test"))
        #expect(flows[0].nameSource == .dns && flows[0].connections == 0 && flows[0].pid == 11 && flows[0].verdict == .observed)
        #expect(flows[0].packets == 2)
        // SNI only, onto python's row under the address it recorded.
        #expect(flows[1].program == python && flows[1].address == "::ffff:203.0.113.13" && flows[1].port == 443)
        #expect(flows[1].name == RawText("sni-only.test") && flows[1].nameSource == .sni && flows[1].connections == 0)
        // The bare IP: onto curl's row, no name, only the traffic (the network saw it: not a silent UDP probe).
        #expect(flows[2].program == curl && flows[2].address == "203.0.113.13" && flows[2].port == 80)
        #expect(flows[2].name == nil && flows[2].connections == 0 && flows[2].packets == 1)
        // The metadata drop: onto curl's row too, which the store then marks blocked (one row, not two).
        #expect(flows[3].address == "169.254.169.254" && flows[3].program == curl && flows[3].result == 110)
        #expect(flows[3].name == nil && flows[3].nameSource == nil && flows[3].connections == 0)
        #expect(merged.blocked == [BlockedConnect(proto: "tcp", address: "169.254.169.254", port: 80, program: curl, result: 110)])
        // No connect seen (a sendto): the network's row, a direct IP.
        #expect(flows[4].proto == "udp" && flows[4].address == "198.51.100.9" && flows[4].program.isEmpty && flows[4].name == nil)
    }

    /// A later lookup answering the same address (a wildcard) never renames an earlier flow; an answer after
    /// the flow does not name it at all.
    @Test func aFlowIsNamedByTheAnswerBeforeIt() throws {
        func answer(_ name: String, at time: Double, _ address: String = "203.0.113.13") -> DNSMessageSeen {
            DNSMessageSeen(source: .gate, time: time, isResponse: true, transport: "udp", resolver: IPAddress("10.0.0.1"),
                           name: name, type: DNSType.a, rcode: 0, answers: [.init(name: name, type: DNSType.a, ttl: 30, value: address)])
        }
        let git = IPAddress("203.0.113.13")!, late = IPAddress("203.0.113.14")!
        var attributor = FlowAttributor()
        attributor.add(answer("git.allowed.test", at: 1))
        attributor.add(FlowSeen(time: 2, proto: 6, destination: git, port: 9418, verdict: .accepted))
        for index in 0..<50 { attributor.add(answer("r\(index).spray.test", at: 3 + Double(index) / 100)) }
        attributor.add(FlowSeen(time: 4, proto: 6, destination: git, port: 9418, verdict: .accepted))
        // A connect to a new port after the spray: named by the latest answer before it.
        attributor.add(FlowSeen(time: 4.5, proto: 6, destination: git, port: 443, verdict: .accepted))
        // An address first answered after its flow (fed out of order, as the threads may).
        attributor.add(FlowSeen(time: 5, proto: 6, destination: late, port: 80, verdict: .accepted))
        attributor.add(answer("after.allowed.test", at: 6, "203.0.113.14"))
        let findings = attributor.findings()
        #expect(findings.count == 3)
        #expect(findings[0].name == "git.allowed.test" && findings[0].basis == .dns && findings[0].flows == 2, "\(findings[0])")
        #expect(findings[1].name == "r49.spray.test", "\(findings[1])")
        #expect(findings[2].basis == .directIP && findings[2].name == nil, "\(findings[2])")
        // The same, flow by flow: the second connect alone is named by the latest answer before it.
        #expect(attributor.attribute(FlowSeen(time: 4, proto: 6, destination: git, port: 9418, verdict: .accepted)).name == "r49.spray.test")
        #expect(attributor.attribute(FlowSeen(time: 2.5, proto: 6, destination: git, port: 9418, verdict: .accepted)).name == "git.allowed.test")
    }

    /// A UDP connect is held until the flow log shows its traffic; one that never sent is no flow. Port 53 is
    /// recorded as it happens (its traffic goes to the gate, which the flow log never sees).
    @Test func udpConnectsWithoutTrafficAreNoFlows() throws {
        var attributor = FlowAttributor()
        attributor.add(FlowSeen(time: 2, proto: 17, destination: IPAddress("203.0.113.12")!, port: 9998, verdict: .accepted))
        var connects = TracedConnects()
        let python = RawText("python3")
        let probe = FlowObservation(time: 1, pid: 5, program: python, proto: "udp", address: "203.0.113.12", port: 9999)
        let sender = FlowObservation(time: 1, pid: 5, program: python, proto: "udp", address: "203.0.113.12", port: 9998)
        let dns = FlowObservation(time: 1, pid: 6, program: RawText("getent"), proto: "udp", address: "10.0.0.1", port: 53)
        #expect(TracedConnects.holds(probe) && TracedConnects.holds(sender) && !TracedConnects.holds(dns))
        #expect(!TracedConnects.holds(FlowObservation(time: 1, proto: "tcp", address: "203.0.113.12", port: 9999)))
        for flow in [probe, sender, sender, dns] { connects.add(flow) }
        let flows = LearnFlowMerge.merge(findings: attributor.findings(), connects: connects).events.compactMap { event -> FlowObservation? in
            if case .flow(let flow) = event { return flow }
            return nil
        }
        #expect(flows.count == 1, "\(flows)")
        #expect(flows.first?.port == 9998 && flows.first?.program == python && flows.first?.connections == 2 && flows.first?.packets == 1)
    }
}
