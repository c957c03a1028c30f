import Foundation
import Testing
import CagentCore
@testable import CagentNetwork

let labTools = ["ip", "nft", "python3", "curl", "setpriv"]

/// Sets up a session for `sandbox` on the lab's simulated host (on a dedicated thread: setns is per thread).
func setUpSession(_ lab: UplinkLab, sandbox: String, paths: CagentPaths, id: String = randomID(8),
                  entries: [AllowEntry] = UplinkLab.profileEntries) throws -> NetworkSession {
    try onDedicatedThread {
        try NetworkSession.setUp(sessionID: id, sandbox: NetworkNamespace(path: "/run/netns/\(sandbox)"),
                                 entries: entries, paths: paths, host: NetworkNamespace(path: "/run/netns/\(lab.host)"))
    }
}

func tearDown(_ session: NetworkSession) throws {
    try onDedicatedThread { try session.tearDown() }
}

/// The uplink and host-side firewall in a hermetic lab (UplinkLab): what the profile allows is reachable,
/// nothing else leaves, and each "nothing arrived" has its positive control.
@Suite("Network enforcement", .serialized)
struct EnforcementTests {
    @Test("Profile entries reachable; every other address, protocol and port is not (N5-N11, N18)",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, curl, setpriv"))
    func enforcement() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths)
        defer { try? tearDown(session) }
        let gateway4 = session.addresses.gateway4!.description, gateway6 = session.addresses.gateway6!.description

        // Allowed: the CIDRs (v4 and v6) and the endpoint, by TCP.
        let allowed = try lab.probe(in: sandbox, [
            "tcp \(UplinkLab.allowedInNet4) 80", "tcp 203.0.113.11 8080", "tcp \(UplinkLab.endpoint4) 443",
            "tcp \(UplinkLab.allowedInNet6) 80", "curl http://\(UplinkLab.allowedInNet4)/",
        ])
        for (target, result) in allowed { #expect(result == "open" || result == "ok", "\(target): \(result)") }

        let denied = [
            // N5: other addresses, directly and in decimal/hex spellings; the endpoint's other ports.
            "tcp \(UplinkLab.attacker4) 80", "tcp \(UplinkLab.attacker4) 443", "curl http://3405803842/",
            "curl http://0xcb007142/", "curl http://0313.0.0161.0102/", "tcp \(UplinkLab.endpoint4) 80", "tcp \(UplinkLab.endpoint4) 8080",
            // N6: IPv6.
            "tcp \(UplinkLab.attacker6) 80", "curl http://[\(UplinkLab.attacker6)]/",
            // N7: ICMP, also to allowed addresses.
            "icmp \(UplinkLab.attacker4)", "icmp \(UplinkLab.allowedInNet4)", "icmp \(UplinkLab.attacker6)", "icmp \(UplinkLab.allowedInNet6)",
            // N9: UDP and QUIC (udp/443) even to allowed hosts; DNS to an outside resolver (redirected to the gate port).
            "udp \(UplinkLab.allowedInNet4) 443", "udp \(UplinkLab.attacker4) 5353", "udp \(UplinkLab.attacker6) 443",
            "udp \(UplinkLab.attacker4) 53", "tcp \(UplinkLab.attacker4) 53",
            // N10: the gateway's other ports and the simulated host's own service.
            "tcp \(gateway4) \(UplinkLab.hostServicePort)", "tcp \(gateway4) 22", "tcp \(gateway6) \(UplinkLab.hostServicePort)",
            "tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)", "udp \(gateway4) \(UplinkLab.hostServicePort)",
            "tcp 2001:db8:ff::2 \(UplinkLab.hostServicePort)",
            // N11: metadata services.
            "tcp 169.254.169.254 80", "tcp 168.63.129.16 80", "tcp 100.100.100.200 80", "tcp fd00:ec2::254 80",
        ]
        let results = try lab.probe(in: sandbox, denied)
        for target in denied {
            let result = results[target] ?? "missing"
            #expect(result != "open" && result != "reply" && result != "ok" && result != "missing", "\(target) got through: \(result)")
        }

        // N18: from inside, the firewall and routes cannot be changed (unprivileged), and even root in the
        // sandbox's namespace only reaches that namespace's (empty) ruleset.
        let tamper = try lab.probe(in: sandbox, ["cmd nft flush ruleset", "cmd ip route del default",
                                                 "cmd ip -6 route del default", "cmd ip addr flush dev eth0"], asUser: true)
        #expect(tamper.count == 4, "the unprivileged probe did not run: \(tamper)")
        for (target, result) in tamper { #expect(result != "ok", "unprivileged `\(target)` succeeded") }
        _ = try sh("ip netns exec \(sandbox) nft flush ruleset")
        let after = try lab.probe(in: sandbox, ["tcp \(UplinkLab.attacker4) 80", "tcp \(UplinkLab.allowedInNet4) 80"])
        #expect(after["tcp \(UplinkLab.attacker4) 80"] != "open")
        #expect(after["tcp \(UplinkLab.allowedInNet4) 80"] == "open")

        #expect(try lab.sinkCount() == 0, "the attacker sink recorded packets from the sandbox")

        // Positive control: the same kinds of probe without cagent in the path (from the simulated host itself)
        // reach the sink, so a zero above means blocked, not broken.
        let control = try lab.probe(in: lab.host, ["tcp \(UplinkLab.attacker4) 80", "icmp \(UplinkLab.attacker4)",
                                                   "udp \(UplinkLab.allowedInNet4) 443", "tcp 169.254.169.254 80",
                                                   "tcp \(UplinkLab.attacker6) 80"])
        #expect(control["tcp \(UplinkLab.attacker4) 80"] == "open")
        #expect(try lab.sinkCount() >= 5, "the positive control did not reach the sink")
    }

    @Test("Ruleset after setup equals the golden file; teardown leaves only the other session, then nothing",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft"))
    func goldenRuleset() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        let first = try setUpSession(lab, sandbox: try lab.newSandbox(), paths: paths, id: "golden1")
        var firstDone = false
        defer { if !firstDone { try? tearDown(first) } }
        try expectGolden(try lab.nftRuleset(), "ruleset-one-session.nft")

        let second = try setUpSession(lab, sandbox: try lab.newSandbox(), paths: paths, id: "golden2")
        defer { try? tearDown(second) }
        try tearDown(first)
        firstDone = true
        // Only the second session's part remains besides the permanent part: the same ruleset, renamed.
        let remaining = try lab.nftRuleset()
        #expect(!remaining.contains("cgsgolden1"))
        try expectGolden(remaining, "ruleset-second-session.nft")
        try tearDown(second)
        #expect(try lab.nftRuleset().trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                "the cagent table outlived its last session")
        #expect(try sh("ip -n \(lab.host) -o link show").output.contains("cgs") == false)
    }
}
