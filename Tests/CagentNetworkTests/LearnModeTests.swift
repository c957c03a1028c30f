import Foundation
import Testing
import CagentCore
import Netlab
@testable import CagentNetwork

/// The learn-mode ruleset in the kernel: every new flow leaves (and is logged), metadata, the LAN and the
/// host's own services do not. Names, the gate and the observations are tested in CagentDNSTests/LearnNetworkTests.
@Suite("Network learn mode", .serialized)
struct LearnModeTests {
    @Test("Learn ruleset equals the golden file; the internet is open, metadata, ULA and the host are not",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, curl, setpriv"))
    func learnRuleset() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths, id: "learn1", entries: [], mode: .learn)
        defer { try? tearDown(session) }
        try expectGolden(try lab.nftRuleset(), "ruleset-learn-session.nft")

        // A ULA server stand-in on the internet's loopback, routed from the simulated host (positive control).
        let ula = "fd12:3456:789a::10"
        try sh("ip -n \(lab.inet) addr add \(ula)/128 dev lo nodad", check: true)
        try sh("ip -n \(lab.host) -6 route add \(ula)/128 via \(NetlabAddresses.router6)", check: true)
        try lab.lab.spawn(in: .internet, ["/usr/bin/python3", lab.script, "serve", "8090", ""], readyOnStdout: "ready")

        let a = NetlabAddresses.self
        let open = try lab.probe(in: sandbox, ["tcp \(a.attacker4) 80", "tcp \(a.attacker6) 80", "tcp \(UplinkLab.notAllowed4) 8080",
                                               "udp \(a.attacker4) 9999", "icmp \(a.attacker4)"])
        #expect(open["tcp \(a.attacker4) 80"] == "open" && open["tcp \(a.attacker6) 80"] == "open", "\(open)")
        #expect(open["tcp \(UplinkLab.notAllowed4) 8080"] == "open", "\(open)")
        #expect(lab.lab.sinkRecords().contains { $0.contains("\(a.attacker4).9999") }, "the UDP datagram did not reach the sink")
        #expect(open["icmp \(a.attacker4)"] == "reply", "\(open)")

        let gateway4 = session.addresses.gateway4!.description
        let closed = ["tcp 169.254.169.254 80", "tcp 168.63.129.16 80", "tcp 100.100.100.200 80", "tcp fd00:ec2::254 80",
                      "tcp \(ula) 8090", "tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)",
                      "tcp \(UplinkLab.hostUplink6) \(UplinkLab.hostServicePort)", "tcp \(gateway4) \(UplinkLab.hostServicePort)"]
        let results = try lab.probe(in: sandbox, closed)
        for target in closed {
            #expect(results[target] != "open" && results[target] != nil, "\(target) reachable in learn mode: \(results[target] ?? "missing")")
        }
        #expect(try lab.metadataCount() == 0, "a packet reached a metadata address")

        // Positive control: from the simulated host the same targets answer (metadata: nothing listens on
        // the stand-in, so the connection is refused, by the stand-in; its counter shows the packet arrived).
        let control = try lab.probe(in: lab.host, ["tcp \(ula) 8090", "tcp 169.254.169.254 80",
                                                   "tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)"])
        #expect(control["tcp \(ula) 8090"] == "open" && control["tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)"] == "open",
                "control: \(control)")
        #expect(try lab.metadataCount() >= 1)
    }
}
