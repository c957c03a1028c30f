import Testing
import CagentCore
@testable import CagentNetwork

@Suite("Rootless learn's ruleset (sandbox namespace, output hook)")
struct SandboxLearnFirewallTests {
    @Test("Every drop comes before the flow log's accept: metadata, LAN, the uplink's network, the host's own addresses; link chatter silent")
    func dropsBeforeTheFlowAccept() throws {
        let batch = Firewall.sandboxLearnBatch(gatePort: 5353, nflogGroup: 1, uplinkNetwork: IPNetwork("10.0.2.0/24")!,
                                               hostAddresses: [IPNetwork("198.18.0.2/32")!, IPNetwork("127.0.0.1/32")!])
        let lines = batch.text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("add rule inet cagent output ") }
        let flow = try #require(lines.firstIndex { $0.contains("log prefix \"cagent-flow \"") && $0.hasSuffix("accept") })
        #expect(flow == lines.count - 2 && lines.last?.hasSuffix("drop") == true, "\(lines)")
        for network in ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "198.18.0.2"] {
            let index = try #require(lines.firstIndex { $0.contains("daddr \(network) ") }, "\(network) not dropped: \(lines)")
            #expect(index < flow && lines[index].hasSuffix("drop") && lines[index].contains("cagent-deny "), "\(network)")
        }
        // 10.0.2.0/24 and 127.0.0.1 lie in blocks dropped already: one rule each block, no duplicate.
        #expect(!lines.contains { $0.contains("daddr 10.0.2.0/24 ") } && !lines.contains { $0.contains("daddr 127.0.0.1 ") && $0.hasSuffix("drop") })
        let chatter = try #require(lines.firstIndex { $0.contains("daddr ff02::/16 ") })
        #expect(chatter < flow && !lines[chatter].contains("log") && lines[chatter].hasSuffix("drop"))
        // The gate: every port-53 packet redirected to it, the loopback accepted first.
        #expect(batch.text.contains("redirect to :5353"), "\(batch.text)")
        #expect(lines.first?.contains("oifname \"lo") == true, "\(lines)")
    }
}
