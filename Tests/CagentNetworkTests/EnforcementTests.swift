import Foundation
import Testing
import CagentCore
import Netlab
@testable import CagentNetwork

let labTools = ["ip", "nft", "python3", "curl", "setpriv", "dnsmasq", "tcpdump", "dig"]

/// Sets up a session for `sandbox` on the lab's simulated host (on a dedicated thread: setns is per thread).
func setUpSession(_ lab: UplinkLab, sandbox: String, paths: CagentPaths, id: String = randomID(8),
                  entries: [AllowEntry] = UplinkLab.profileEntries, mode: Firewall.Mode = .enforce) throws -> NetworkSession {
    try onDedicatedThread {
        try NetworkSession.setUp(sessionID: id, sandbox: NetworkNamespace(path: "/run/netns/\(sandbox)"),
                                 entries: entries, paths: paths, host: NetworkNamespace(path: "/run/netns/\(lab.host)"), mode: mode)
    }
}

func tearDown(_ session: NetworkSession) throws {
    try onDedicatedThread { try session.tearDown() }
}

/// The uplink and host-side firewall in a hermetic lab (UplinkLab): what the profile allows is reachable,
/// nothing else leaves, and each "nothing arrived" has its positive control.
@Suite("Network enforcement", .serialized)
struct EnforcementTests {
    /// A UDP echo on one address and port that writes each sender to a file: ADDRESS PORT LOG.
    static let udpEcho = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((sys.argv[1], int(sys.argv[2])))
        print("ready", flush=True)
        while True:
            data, peer = s.recvfrom(2048)
            with open(sys.argv[3], "a") as log: log.write(peer[0] + "\\n")
            s.sendto(b"ok", peer)
        """

    @Test("Profile entries reachable; every other address, protocol and port is not (N5-N11, N18)",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, curl, setpriv"))
    func enforcement() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths)
        defer { try? tearDown(session) }
        let gateway4 = session.addresses.gateway4!.description, gateway6 = session.addresses.gateway6!.description
        // N10's other target: a service on the host's port 22 (the host service on 2222 is the lab's).
        _ = try lab.lab.spawn(in: .host, ["/usr/bin/python3", lab.script, "serve", "22", "", "host"], readyOnStdout: "ready")
        // N9's QUIC target on the allowed web server (the web server speaks TCP only): a UDP echo at its 443 that
        // notes each sender, so "udp … 443 not answered" is blocked, not unheard.
        let quicLog = lab.lab.directory + "/quic-echo.log"
        _ = try lab.lab.spawn(in: .internet, ["/usr/bin/python3", "-u", "-c", Self.udpEcho, UplinkLab.allowedInNet4, "443", quicLog],
                              readyOnStdout: "ready")

        // Allowed: the CIDRs (v4 and v6) and the endpoint, by TCP.
        let allowed = try lab.probe(in: sandbox, [
            "tcp \(UplinkLab.allowedInNet4) 80", "tcp \(UplinkLab.allowedInNet4b) 8080", "tcp \(UplinkLab.endpoint4) 443",
            "tcp \(UplinkLab.allowedInNet6) 80", "curl http://\(UplinkLab.allowedInNet4)/",
        ])
        #expect(allowed.count == 5)
        // They are the test's positive control: each must get through, or "denied" below proves nothing.
        // (curl's fail0: connected and answered, by the lab's web server, whose page is not the word "ok".)
        for (target, result) in allowed { #expect(result == "open" || result == "ok" || result == "fail0", "allowed \(target): \(result)") }
        // The web servers log after they answered: read the count once it has settled (bounded), not at once.
        func settledWebRequests() -> Int {
            var count = lab.lab.webRequests().count, stableSince = Date()
            let deadline = Date().addingTimeInterval(3)
            while Date() < deadline && Date().timeIntervalSince(stableSince) < 0.4 {
                usleep(50_000)
                let now = lab.lab.webRequests().count
                if now != count { count = now; stableSince = Date() }
            }
            return count
        }
        let webBefore = settledWebRequests()

        let a = NetlabAddresses.self
        let denied = [
            // N5: other addresses, directly and in decimal, hex and octal spellings; the endpoint's other ports.
            "tcp \(a.attacker4) 80", "tcp \(a.attacker4) 443", "curl http://3405803842/", "curl http://0xcb007142/",
            "curl http://0313.0.0161.0102/", "tcp \(UplinkLab.endpoint4) 80", "tcp \(UplinkLab.endpoint4) 8080",
            "tcp \(UplinkLab.notAllowed4) 80", "tcp \(UplinkLab.notAllowed4) 443",
            // N6: IPv6.
            "tcp \(a.attacker6) 80", "curl http://[\(a.attacker6)]/", "tcp \(UplinkLab.notAllowed6) 80",
            // N7: ICMP, also to allowed addresses.
            "icmp \(a.attacker4)", "icmp \(UplinkLab.allowedInNet4)", "icmp \(a.attacker6)", "icmp \(UplinkLab.allowedInNet6)",
            // N9: UDP and QUIC (udp/443), also to allowed hosts; DNS to an outside resolver is redirected to the
            // gate's port on the gateway (no gate runs in these tests: nothing answers, nothing leaves).
            "udp \(UplinkLab.allowedInNet4) 443", "udp \(a.attacker4) 443", "udp \(a.attacker4) 9999", "udp \(a.attacker6) 443",
            "udp \(a.publicResolver4) 53", "tcp \(a.publicResolver4) 53", "udp \(a.publicResolver6) 53", "tcp \(a.attacker4) 853",
            // N10: the gateway's other ports and the simulated host's own service.
            "tcp \(gateway4) \(UplinkLab.hostServicePort)", "tcp \(gateway4) 22", "tcp \(gateway6) \(UplinkLab.hostServicePort)",
            "tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)", "udp \(gateway4) \(UplinkLab.hostServicePort)",
            "tcp \(UplinkLab.hostUplink6) \(UplinkLab.hostServicePort)",
            // N11: metadata services.
            "tcp 169.254.169.254 80", "tcp 168.63.129.16 80", "tcp 100.100.100.200 80", "tcp fd00:ec2::254 80",
        ]
        let results = try lab.probe(in: sandbox, denied)
        for target in denied {
            let result = results[target] ?? "missing"
            // (curl's fail0: it connected and had an answer, only not the web servers' "ok": the sink's.)
            #expect(result != "open" && result != "reply" && result != "ok" && result != "fail0" && result != "missing", "\(target) got through: \(result)")
        }

        // N18: from inside, the firewall and routes cannot be changed (unprivileged), and even root in the
        // sandbox's namespace only reaches that namespace's (empty) ruleset.
        let tamper = try lab.probe(in: sandbox, ["cmd nft flush ruleset", "cmd ip route del default",
                                                 "cmd ip -6 route del default", "cmd ip addr flush dev eth0"], asUser: true)
        #expect(tamper.count == 4, "the unprivileged probe did not run: \(tamper)")
        for (target, result) in tamper { #expect(result != "ok", "unprivileged `\(target)` succeeded") }
        _ = try sh("ip netns exec \(sandbox) nft flush ruleset")
        let after = try lab.probe(in: sandbox, ["tcp \(a.attacker4) 80", "tcp \(UplinkLab.allowedInNet4) 80"])
        #expect(after["tcp \(a.attacker4) 80"] != "open")
        #expect(after["tcp \(UplinkLab.allowedInNet4) 80"] == "open")

        #expect(lab.lab.sinkRecords().isEmpty, "the attacker sink recorded: \(lab.lab.sinkRecords().prefix(5))")
        #expect(try lab.metadataCount() == 0, "a packet reached a metadata address")
        #expect(settledWebRequests() == webBefore + 1, "a denied web server was reached (the +1 is the allowed re-check)")

        // Positive control: the same probes without cagent in the path (from the simulated host itself) reach
        // the sink and the metadata addresses, so the zeros above mean blocked, not broken.
        let control = try lab.probe(in: lab.host, ["tcp \(a.attacker4) 80", "icmp \(a.attacker4)", "udp \(a.attacker4) 443",
                                                   "tcp \(a.attacker6) 80", "tcp 169.254.169.254 80"])
        #expect(control["tcp \(a.attacker4) 80"] == "open", "control: \(control)")
        #expect(lab.lab.sinkRecords().count >= 4, "the positive control did not reach the sink")
        #expect(try lab.metadataCount() >= 1, "the positive control did not reach the metadata address")
        // N10's control: from a netlab host outside cagent (the internet, given a route to the pool through the
        // host, as a LAN neighbour would have), the host's services answer on every address the sandbox tried.
        try sh("ip -n \(lab.inet) route add \(AddressPool.standard.pool4) via \(NetlabAddresses.host4)", check: true)
        try sh("ip -n \(lab.inet) -6 route add \(AddressPool.standard.pool6) via \(NetlabAddresses.host6)", check: true)
        let n10 = ["tcp \(gateway4) \(UplinkLab.hostServicePort)", "tcp \(gateway4) 22", "tcp \(gateway6) \(UplinkLab.hostServicePort)",
                   "tcp \(UplinkLab.hostUplink4) \(UplinkLab.hostServicePort)", "udp \(gateway4) \(UplinkLab.hostServicePort)",
                   "tcp \(UplinkLab.hostUplink6) \(UplinkLab.hostServicePort)"]
        let hostControl = try lab.probe(in: lab.inet, n10)
        for target in n10 { #expect(hostControl[target] == "open" || hostControl[target] == "reply", "control \(target): \(hostControl)") }
        // Every other denied target answers the same probe from the simulated host, without cagent; the sink
        // does not answer UDP, so a datagram's control is the sink's record of it. (udp to the allowed web
        // server's 443 has its own echo, above: the web server speaks TCP only.)
        // Nothing listens at the metadata addresses: there the control is their packet counter (and the
        // refusal, error111, that came back from them).
        // QUIC's port on the allowed web server: its UDP echo heard nothing from the sandbox, and answers the host.
        let quic = "udp \(UplinkLab.allowedInNet4) 443"
        let quicHeard = FileSystem.readText(quicLog) ?? ""
        #expect(quicHeard.isEmpty, "the allowed web server's udp/443 heard the sandbox: \(quicHeard)")
        let quicControl = try lab.probe(in: lab.host, [quic])
        #expect(quicControl[quic] == "reply" && !(FileSystem.readText(quicLog) ?? "").isEmpty, "control \(quic): \(quicControl)")
        let others = denied.filter { !n10.contains($0) && $0 != quic }
        let metadataBefore = try lab.metadataCount()
        let othersControl = try lab.probe(in: lab.host, others)
        #expect(try lab.metadataCount() >= metadataBefore + UplinkLab.metadata.count, "control: the metadata addresses saw nothing")
        let sinkSaw = lab.lab.sinkRecords().joined(separator: "\n")
        for target in others {
            let result = othersControl[target] ?? "missing"
            if target.hasPrefix("udp ") {
                let parts = target.split(separator: " ")
                #expect(sinkSaw.contains("\(parts[1]).\(parts[2]):"), "control \(target): the sink has no record of it")
            } else if UplinkLab.metadata.contains(where: { target.contains(" \($0) ") }) {
                #expect(result == "error111", "control \(target): \(result)")
            } else {
                #expect(result == "open" || result == "reply" || result == "ok" || result == "fail0", "control \(target): \(result)")
            }
        }
    }

    @Test("Ruleset after setup equals the golden file; teardown leaves only the other session, then the kept empty table",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft"))
    func goldenRuleset() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
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
        // The table stays, empty (docs/network.md "The kept table"): no session's chain, set or map entry.
        #expect(NftLeftovers.find(ruleset: try lab.nftRuleset()).isEmpty, "a session's part outlived its last session")
        #expect(try sh("ip -n \(lab.host) -o link show").output.contains("cgs") == false)
    }
}
