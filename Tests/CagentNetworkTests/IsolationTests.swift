import Foundation
import Testing
import CagentCore
import Netlab
@testable import CagentNetwork

/// Issue #12 §3: nothing opens a connection into a sandbox. Two concurrent sessions on one simulated host;
/// session A's profile opens the sandbox pool itself (or everything, or A learns); a recording listener runs in
/// B's sandbox. Neither A, nor the simulated host, nor the simulated internet (given a route to the pool)
/// reaches it, over TCP, UDP or ICMP, v4 or v6; unused pool addresses stay unreachable from A too. Positive
/// controls in the same test: B reaches its own listener, A reaches its allowed web server, the host reaches
/// the internet, the internet reaches the host through the route it was given.
@Suite("Sandbox isolation (inbound)", .serialized)
struct IsolationTests {
    enum Variant: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case poolCIDRs, everything, learn
        var testDescription: String { rawValue }

        var entries: [AllowEntry] {
            let pool = AddressPool.standard
            switch self {
            case .poolCIDRs:   // CGNAT as a profile would write it for a Tailscale network, and the v6 pool itself
                return [.network(IPNetwork("100.64.0.0/10")!), .network(pool.pool6), .network(IPNetwork(UplinkLab.allowedNet4)!)]
            case .everything:
                return [.network(IPNetwork("0.0.0.0/0")!), .network(IPNetwork("::/0")!)]
            case .learn:
                return []
            }
        }
        var mode: Firewall.Mode { self == .learn ? .learn : .enforce }
    }

    static let listenPort = 7070

    @Test("No sandbox, host or outside network connects into another session's sandbox",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, curl, setpriv"),
          arguments: Variant.allCases)
    func noConnectionIntoASandbox(_ variant: Variant) throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let sandboxA = try lab.newSandbox(), sandboxB = try lab.newSandbox()
        let sessionB = try setUpSession(lab, sandbox: sandboxB, paths: paths)
        defer { try? tearDown(sessionB) }
        let sessionA = try setUpSession(lab, sandbox: sandboxA, paths: paths, entries: variant.entries, mode: variant.mode)
        defer { try? tearDown(sessionA) }
        let b4 = sessionB.addresses.sandbox4!.description, b6 = sessionB.addresses.sandbox6!.description
        let gatewayB4 = sessionB.addresses.gateway4!.description
        let port = Self.listenPort

        // The listener in B's sandbox: every connection and datagram it gets is a line in `received`.
        let received = lab.lab.directory + "/b-received.txt"
        let listenerOut = lab.lab.directory + "/b-listener.out"
        let listener = try SpawnedProcess.start(["ip", "netns", "exec", sandboxB, "/usr/bin/python3", lab.script, "record",
                                                 "\(port)", received], stdout: listenerOut)
        defer { listener.stop() }
        try waitForFile(listenerOut, containing: "ready")
        func receivedLines() -> [String] {
            (FileSystem.readText(received) ?? "").split(separator: "\n").map(String.init)
        }

        // An unused pool address (slot 200), standing in on the internet side with a packet counter: were the
        // pool's addresses routed out of the uplink, a sandbox would reach whatever answers there.
        let unused = AddressPool.standard.addresses(slot: 200)
        let unused4 = unused.sandbox4!.description, unused6 = unused.sandbox6!.description
        try sh("ip -n \(lab.inet) addr add \(unused4)/32 dev lo", check: true)
        try sh("ip -n \(lab.inet) addr add \(unused6)/128 dev lo nodad", check: true)
        try sh("""
            ip netns exec \(lab.inet) nft -f - <<'EOF'
            table inet cgtpool {
              chain pre {
                type filter hook prerouting priority -300; policy accept;
                ip daddr \(unused4) counter
                ip6 daddr \(unused6) counter
              }
            }
            EOF
            """, check: true)
        func unusedCount() throws -> Int {
            let output = try sh("ip netns exec \(lab.inet) nft list table inet cgtpool", check: true).output
            return output.components(separatedBy: "counter packets ").dropFirst().reduce(0) { $0 + (Int($1.prefix(while: \.isNumber)) ?? 0) }
        }

        // 1. From sandbox A, whose profile opens the pool (or everything, or learns).
        let intoB = ["tcp \(b4) \(port)", "tcp \(b6) \(port)", "udp \(b4) \(port)", "udp \(b6) \(port)", "icmp \(b4)", "icmp \(b6)"]
        let fromA = try lab.probe(in: sandboxA, intoB + ["tcp \(gatewayB4) \(UplinkLab.hostServicePort)",
                                                         "tcp \(unused4) 80", "tcp \(unused6) 80",
                                                         "tcp \(UplinkLab.allowedInNet4) 80"])
        for target in intoB + ["tcp \(gatewayB4) \(UplinkLab.hostServicePort)", "tcp \(unused4) 80", "tcp \(unused6) 80"] {
            let result = fromA[target] ?? "missing"
            #expect(result != "open" && result != "reply" && result != "missing", "A → \(target): \(result)")
        }
        #expect(fromA["tcp \(UplinkLab.allowedInNet4) 80"] == "open", "control: A's allowed egress failed: \(fromA)")
        #expect(receivedLines().isEmpty, "B's listener received from A: \(receivedLines())")
        #expect(try unusedCount() == 0, "a packet from A reached an unused pool address")

        // 2. From the simulated host itself (where cagent runs).
        let fromHost = try lab.probe(in: lab.host, intoB + ["tcp \(UplinkLab.allowedInNet4) 80", "tcp \(unused4) 80"])
        for target in intoB {
            let result = fromHost[target] ?? "missing"
            #expect(result != "open" && result != "reply" && result != "missing", "host → \(target): \(result)")
        }
        #expect(fromHost["tcp \(UplinkLab.allowedInNet4) 80"] == "open", "control: the host's own egress failed: \(fromHost)")
        #expect(try unusedCount() >= 1, "control: the host did not reach the unused pool address's stand-in")
        #expect(receivedLines().isEmpty, "B's listener received from the host: \(receivedLines())")

        // 3. From the simulated internet, given a route to the pool through the host (a LAN neighbour would
        //    have one). The control: through that route it reaches the host's own service on B's gateway.
        try sh("ip -n \(lab.inet) route add \(AddressPool.standard.pool4) via \(NetlabAddresses.host4)", check: true)
        try sh("ip -n \(lab.inet) -6 route add \(AddressPool.standard.pool6) via \(NetlabAddresses.host6)", check: true)
        let fromInternet = try lab.probe(in: lab.inet, intoB + ["tcp \(gatewayB4) \(UplinkLab.hostServicePort)"])
        for target in intoB {
            let result = fromInternet[target] ?? "missing"
            #expect(result != "open" && result != "reply" && result != "missing", "internet → \(target): \(result)")
        }
        #expect(fromInternet["tcp \(gatewayB4) \(UplinkLab.hostServicePort)"] == "open", "control: the route to the pool: \(fromInternet)")
        #expect(receivedLines().isEmpty, "B's listener received from the internet: \(receivedLines())")

        // Positive control: the listener is alive, B itself reaches it (v4 and v6, TCP and UDP).
        let own = try lab.probe(in: sandboxB, ["tcp \(b4) \(port)", "tcp \(b6) \(port)", "udp \(b4) \(port)"])
        #expect(own["tcp \(b4) \(port)"] == "open" && own["tcp \(b6) \(port)"] == "open" && own["udp \(b4) \(port)"] == "reply",
                "control: B's own listener: \(own)")
        // The listener appends after it answered: wait for its three lines (bounded) rather than read at once.
        let recorded = Date().addingTimeInterval(5)
        while receivedLines().count < 3 && Date() < recorded { usleep(50_000) }
        #expect(receivedLines().count >= 3, "control: the listener recorded nothing from B itself: \(receivedLines())")
    }

    /// The permanent part as cagent made it before the inbound drop (an older cagent's sessions still running).
    static let olderPermanentPart = """
        add table inet cagent
        add map inet cagent sessions_pre { type ifname : verdict ; }
        add map inet cagent sessions_in { type ifname : verdict ; }
        add map inet cagent sessions_fwd { type ifname : verdict ; }
        add chain inet cagent prerouting { type nat hook prerouting priority -100; policy accept; }
        add rule inet cagent prerouting iifname vmap @sessions_pre
        add chain inet cagent input { type filter hook input priority 0; policy accept; }
        add rule inet cagent input iifname vmap @sessions_in
        add rule inet cagent input iifname "cgs*" drop
        add chain inet cagent forward { type filter hook forward priority 0; policy accept; }
        add rule inet cagent forward iifname vmap @sessions_fwd
        add rule inet cagent forward iifname "cgs*" drop
        add rule inet cagent forward oifname "cgs*" ct state established,related accept
        add rule inet cagent forward oifname "cgs*" drop
        add chain inet cagent postrouting { type nat hook postrouting priority 100; policy accept; }
        add rule inet cagent postrouting iifname "cgs*" masquerade

        """

    @Test("A table left by an older cagent gets the inbound drops with the next session (same ruleset as a fresh one)",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft"))
    func olderTableIsUpgraded() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let file = lab.lab.directory + "/older.nft"
        try Self.olderPermanentPart.write(toFile: file, atomically: true, encoding: .utf8)
        try sh("ip netns exec \(lab.host) nft -f \(file)", check: true)
        let before = try lab.nftRuleset()
        #expect(before.contains("chain forward") && !before.contains("chain output"), "the older table: \(before)")
        let session = try setUpSession(lab, sandbox: try lab.newSandbox(), paths: paths, id: "golden1")
        defer { try? tearDown(session) }
        // The table is upgraded in place (kept between sessions: docs/network.md "The kept table"), so the output
        // chain is listed after the ones the older cagent made: the same ruleset, its blocks in another order.
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/ruleset-one-session.nft")
        let expected = try String(contentsOf: golden, encoding: .utf8)
        let upgraded = try lab.nftRuleset()
        #expect(Self.blocks(upgraded) == Self.blocks(expected), "upgraded: \(upgraded)")
    }

    /// A one-table ruleset as its header line and its blocks (maps, sets, chains: separated by blank lines),
    /// sorted: a comparison that ignores the order the kernel lists them in.
    static func blocks(_ ruleset: String) -> [String] {
        let lines = ruleset.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n")
        guard lines.count > 2, lines.last == "}" else { return [ruleset] }
        let body = lines.dropFirst().dropLast().joined(separator: "\n")
        return [lines[0]] + body.components(separatedBy: "\n\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.sorted()
    }

    private func waitForFile(_ path: String, containing text: String) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (FileSystem.readText(path) ?? "").contains(text) { return }
            usleep(20_000)
        }
        throw CagentError(stage: "isolation test", "the listener in B's sandbox did not start: \(FileSystem.readText(path) ?? "")")
    }
}
