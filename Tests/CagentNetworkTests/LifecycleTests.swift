import Foundation
import Testing
import CagentCore
import Netlab
@testable import CagentNetwork

/// Sessions side by side, pins with timeouts, host settings, another firewall in the way, and clean-up of
/// what a dead session left.
@Suite("Network lifecycle", .serialized)
struct LifecycleTests {
    @Test("Ten sessions at once: distinct names, addresses, nflog groups; each enforced on its own",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func tenSessions() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let sandboxes = try (0..<10).map { _ in try lab.newSandbox() }
        // Even sessions may reach web1:80, odd ones web2:80; nothing else.
        func target(_ index: Int) -> String { index % 2 == 0 ? UplinkLab.allowedInNet4 : UplinkLab.allowedInNet4b }
        let results = ResultsBox()
        let group = DispatchGroup()
        let hostPath = "/run/netns/\(lab.host)"
        for (index, sandbox) in sandboxes.enumerated() {
            let entry = AllowEntry.endpoint(IPAddress(target(index))!, .tcp, 80)
            group.enter()
            let thread = Thread {
                let outcome = Result {
                    try NetworkSession.setUp(sessionID: "ten\(index)x\(randomID(4))",
                                             sandbox: NetworkNamespace(path: "/run/netns/\(sandbox)"),
                                             entries: [entry], paths: paths, host: NetworkNamespace(path: hostPath))
                }
                results.set(index, outcome)
                group.leave()
            }
            thread.start()
        }
        group.wait()
        let sessions = try (0..<10).map { try results.get($0).get() }
        defer { for session in sessions { try? tearDown(session) } }
        #expect(Set(sessions.map(\.interface)).count == 10)
        #expect(Set(sessions.map(\.nflogGroup)).count == 10)
        #expect(Set(sessions.map(\.gatePort)).count == 10)
        #expect(Set(sessions.compactMap(\.addresses.network4)).count == 10)
        #expect(Set(sessions.compactMap(\.addresses.network6)).count == 10)
        // Control: without cagent (from the simulated host) both targets answer on 80 and 443.
        let targets = ["tcp \(target(0)) 80", "tcp \(target(0)) 443", "tcp \(target(1)) 80", "tcp \(target(1)) 443"]
        let control = try lab.probe(in: lab.host, targets)
        #expect(targets.allSatisfy { control[$0] == "open" }, "control: \(control)")
        for (index, sandbox) in sandboxes.enumerated() {
            let other = target(index + 1)
            let probe = try lab.probe(in: sandbox, ["tcp \(target(index)) 80", "tcp \(other) 80", "tcp \(target(index)) 443"])
            #expect(probe["tcp \(target(index)) 80"] == "open", "session \(index): own entry \(probe)")
            #expect(probe["tcp \(other) 80"] != "open", "session \(index) reached the other sessions' entry")
            #expect(probe["tcp \(target(index)) 443"] != "open", "session \(index): another port")
        }
        // Tearing down half leaves the other half working and untouched.
        for session in sessions[0..<5] { try tearDown(session) }
        for index in 5..<10 {
            #expect(try lab.probe(in: sandboxes[index], ["tcp \(target(index)) 80"])["tcp \(target(index)) 80"] == "open")
        }
        let ruleset = try lab.nftRuleset()
        for session in sessions[0..<5] { #expect(!ruleset.contains(session.interface)) }
        for session in sessions[5..<10] { #expect(ruleset.contains(session.interface + "_fwd")) }
        #expect(lab.lab.sinkRecords().isEmpty)
    }

    @Test("Pins from the gate: allowed for their timeout, refreshed by a new connection, revocable",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func pins() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths, entries: [])
        defer { try? tearDown(session) }
        let web4 = IPAddress(UplinkLab.notAllowed4)!, web2v6 = IPAddress(UplinkLab.notAllowed6)!
        // Every target below answers without cagent (from the simulated host), UDP/80 included: a UDP echo
        // on the internet's port 80, so "no reply" means blocked.
        _ = try lab.lab.spawn(in: .internet, ["/usr/bin/python3", lab.script, "serve", "", "80", "internet"], readyOnStdout: "ready")
        let targets = ["tcp \(web4) 80", "tcp \(web4) 443", "udp \(web4) 80", "tcp \(web2v6) 80",
                       "tcp \(UplinkLab.endpoint4) 443", "tcp \(UplinkLab.endpoint4) 80", "tcp \(UplinkLab.endpoint4) 8080"]
        let control = try lab.probe(in: lab.host, targets)
        #expect(targets.allSatisfy { control[$0] == "open" || control[$0] == "reply" }, "control: \(control)")
        #expect(try lab.probe(in: sandbox, ["tcp \(web4) 80"])["tcp \(web4) 80"] != "open")

        // The firewall API is usable from any thread: no setns needed after setup.
        try session.firewall.allow([(web4, .tcp, 80), (web2v6, .tcp, 80)], timeout: 2)
        let pinned = try lab.probe(in: sandbox, ["tcp \(web2v6) 80", "tcp \(web4) 443", "udp \(web4) 80"])
        #expect(pinned["tcp \(web2v6) 80"] == "open")
        #expect(pinned["tcp \(web4) 443"] != "open")
        #expect(pinned["udp \(web4) 80"] != "reply")

        // The gate's call: a domain's address pinned for tcp/443 and tcp/80.
        try session.firewall.pin(IPAddress(UplinkLab.endpoint4)!, ttl: 60)
        let web = try lab.probe(in: sandbox, ["tcp \(UplinkLab.endpoint4) 443", "tcp \(UplinkLab.endpoint4) 80", "tcp \(UplinkLab.endpoint4) 8080"])
        #expect(web["tcp \(UplinkLab.endpoint4) 443"] == "open")
        #expect(web["tcp \(UplinkLab.endpoint4) 80"] == "open")
        #expect(web["tcp \(UplinkLab.endpoint4) 8080"] != "open")
        sleep(3)
        // web4 was pinned for 2 s and nobody connected to it: expired. web2v6 had a new connection while
        // pinned, which refreshed its pin (Firewall.pinRefreshSeconds): still open after its 2 s.
        let expired = try lab.probe(in: sandbox, ["tcp \(web4) 80", "tcp \(web2v6) 80"])
        #expect(expired["tcp \(web4) 80"] != "open", "the pin outlived its timeout without a connection")
        #expect(expired["tcp \(web2v6) 80"] == "open", "a new connection did not refresh the pin")

        try session.firewall.revoke(web2v6, proto: .tcp, port: 80)
        #expect(try lab.probe(in: sandbox, ["tcp \(web2v6) 80"])["tcp \(web2v6) 80"] != "open")
        // An entry inside a block the profile already allows is fine (separate sets, no interval overlap).
        try session.firewall.allow(.network(IPNetwork("203.0.113.8/29")!))
        try session.firewall.allow(IPAddress(UplinkLab.allowedInNet4)!, proto: .tcp, port: 80, timeout: 30)
        #expect(lab.lab.sinkRecords().isEmpty)
    }

    @Test("Forwarding enabled only where needed and recorded; IPv4-only host handled",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func hostSettingsAndIPv4Only() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let uplink = lab.lab.hostInterface
        func sysctl(_ key: String) throws -> String {
            try sh("ip netns exec \(lab.host) sysctl -n \(key)", check: true).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try sysctl("net.ipv4.conf.\(uplink).forwarding") == "0")
        let first = try setUpSession(lab, sandbox: try lab.newSandbox(), paths: paths)
        #expect(try sysctl("net.ipv4.conf.\(uplink).forwarding") == "1")
        #expect(try sysctl("net.ipv4.conf.\(first.interface).forwarding") == "1")
        #expect(try sysctl("net.ipv4.conf.lo.forwarding") == "0", "forwarding was switched on where it is not needed")
        #expect(try sysctl("net.ipv6.conf.\(uplink).force_forwarding") == "1")
        #expect(try sysctl("net.ipv6.conf.all.forwarding") == "0", "IPv6 forwarding was switched on for every interface")
        #expect(first.hostChanges.contains { $0.contains("net.ipv4.conf.\(uplink).forwarding 0 -> 1") })
        let log = FileSystem.readText(paths.runtime + "/host-changes.log") ?? ""
        #expect(log.contains("net.ipv4.conf.\(uplink).forwarding 0 -> 1"))
        try tearDown(first)
        #expect(try sysctl("net.ipv4.conf.\(uplink).forwarding") == "1", "cagent switched forwarding off")

        // The host loses its IPv6 default route: the next session is IPv4-only and says so; IPv6 stays filtered.
        // The host keeps a route to the allowed v6 network only (not a default), so the host itself reaches it:
        // the sandbox's "not open" below is cagent's doing, not a missing path.
        try sh("ip -n \(lab.host) -6 route del default", check: true)
        try sh("ip -n \(lab.host) -6 route add \(UplinkLab.allowedNet6) via \(NetlabAddresses.router6)", check: true)
        let sandbox = try lab.newSandbox()
        let second = try setUpSession(lab, sandbox: sandbox, paths: paths)
        defer { try? tearDown(second) }
        #expect(second.addresses.network6 == nil)
        #expect(second.warnings.contains { $0.contains("no IPv6 default route") })
        let probe = try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet4) 80", "tcp \(UplinkLab.allowedInNet6) 80"])
        #expect(probe["tcp \(UplinkLab.allowedInNet4) 80"] == "open")
        #expect(probe["tcp \(UplinkLab.allowedInNet6) 80"] != "open")
        #expect(try lab.nftRuleset().contains("ip6 daddr . meta l4proto . th dport"))
        let control = try lab.probe(in: lab.host, ["tcp \(UplinkLab.allowedInNet6) 80"])
        #expect(control["tcp \(UplinkLab.allowedInNet6) 80"] == "open", "control: the host cannot reach the allowed v6 server: \(control)")
    }

    @Test("IPv6 forwarding does not cost a SLAAC host its router advertisements (accept_ra)",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func slaacHostKeepsTakingAdvertisements() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let uplink = lab.lab.hostInterface
        func advertise(_ prefix: String) throws -> Bool {
            // Both link-local addresses must have finished DAD: an advertisement must come from one (else the
            // kernel picks a global source and the host rightly ignores it), and the host must have its own.
            for _ in 0..<50 where try sh("ip -n \(lab.host) -6 addr show dev \(uplink); ip -n \(lab.inet) -6 addr show dev \(lab.lab.internetInterface)")
                .output.contains("tentative") { usleep(100_000) }
            let sent = try lab.probe(in: lab.inet, ["ra \(lab.lab.internetInterface) \(prefix)"])
            #expect(sent.values.first == "ok", "RA not sent: \(sent)")
            for _ in 0..<30 {
                if try sh("ip -n \(lab.host) -6 addr show dev \(uplink)").output.contains(prefix.replacingOccurrences(of: "::", with: ":")) { return true }
                usleep(100_000)
            }
            return false
        }
        try sh("ip netns exec \(lab.host) sysctl -qw net.ipv6.conf.\(uplink).accept_ra=1 net.ipv6.conf.\(uplink).autoconf=1", check: true)
        let session = try setUpSession(lab, sandbox: try lab.newSandbox(), paths: paths)
        defer { try? tearDown(session) }
        // With the session's forwarding in place, the host still configures an advertised prefix.
        #expect(try advertise("2001:db8:19::"), "the host stopped taking router advertisements")
        // Control: the naive way (all.forwarding=1 with accept_ra=1) makes the host ignore them, so the check
        // above can tell the difference.
        try sh("ip netns exec \(lab.host) sysctl -qw net.ipv6.conf.all.forwarding=1", check: true)
        #expect(try advertise("2001:db8:1a::") == false, "the control took the advertisement: the check proves nothing")
    }

    @Test("IPv6-only host: the sandbox gets IPv6 only, IPv4 stays filtered",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func ipv6Only() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        try sh("ip -n \(lab.host) route del default", check: true)
        // A route to the allowed v4 network only (not a default): the host reaches it, so the sandbox's "not open"
        // below is cagent's doing, not a missing path.
        try sh("ip -n \(lab.host) route add \(UplinkLab.allowedNet4) via \(NetlabAddresses.router4)", check: true)
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths)
        defer { try? tearDown(session) }
        #expect(session.addresses.network4 == nil)
        #expect(session.addresses.network6 != nil)
        #expect(session.warnings.contains { $0.contains("no IPv4 default route") })
        let probe = try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet6) 80", "tcp \(UplinkLab.allowedInNet4) 80",
                                                "tcp \(UplinkLab.attacker6) 80"])
        #expect(probe["tcp \(UplinkLab.allowedInNet6) 80"] == "open")
        #expect(probe["tcp \(UplinkLab.allowedInNet4) 80"] != "open")
        #expect(probe["tcp \(UplinkLab.attacker6) 80"] != "open")
        #expect(lab.lab.sinkRecords().isEmpty)
        try expectSinkReachedWithoutCagent(lab, "tcp \(UplinkLab.attacker6) 80")
        let control = try lab.probe(in: lab.host, ["tcp \(UplinkLab.allowedInNet4) 80"])
        #expect(control["tcp \(UplinkLab.allowedInNet4) 80"] == "open", "control: the host cannot reach the allowed v4 server: \(control)")
    }

    @Test("Another firewall's forward drop is reported at start with a fix that works",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func foreignFirewall() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        // What Docker and ufw leave: an iptables-nft filter table whose FORWARD policy is drop.
        try sh("ip netns exec \(lab.host) nft 'add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }'", check: true)
        let sandbox = try lab.newSandbox()
        let session = try setUpSession(lab, sandbox: sandbox, paths: paths)
        defer { try? tearDown(session) }
        let warning = session.warnings.first { $0.contains("drops forwarded traffic") }
        #expect(warning != nil, "no warning: \(session.warnings)")
        #expect(try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] != "open")
        // The fix the warning gives, applied verbatim.
        let commands = (warning ?? "").components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            .filter { $0.hasPrefix("nft ") }
        #expect(commands.count == 2)
        // Copied as a user would paste them into a shell.
        for command in commands { try sh("ip netns exec \(lab.host) \(command)", check: true) }
        #expect(try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] == "open")
        #expect(try lab.probe(in: sandbox, ["tcp \(UplinkLab.attacker4) 80"])["tcp \(UplinkLab.attacker4) 80"] != "open")
        #expect(lab.lab.sinkRecords().isEmpty)
        try expectSinkReachedWithoutCagent(lab, "tcp \(UplinkLab.attacker4) 80")
    }

    @Test("A dead session's chains and link are removed by clean-up; a live session is untouched",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func deadSessionCleanup() throws {
        try Requirements.root()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let liveSandbox = try lab.newSandbox()
        let live = try setUpSession(lab, sandbox: liveSandbox, paths: paths)
        defer { try? tearDown(live) }
        // What a cagent killed mid-session leaves: an unlocked lease, its chains, and (while the sandbox's
        // namespace is still held) its link.
        let deadSandbox = try lab.newSandbox()
        try makeDirectories(paths.leases, mode: 0o700)
        let deadInterface = "cgsdead\(randomID(4))"
        try "link \(deadInterface)\nnft-chain \(deadInterface)\nslot 7\nnflog 40007\n"
            .write(toFile: paths.leases + "/net-dead.lease", atomically: true, encoding: .utf8)
        try onDedicatedThread {
            try NetworkNamespace(path: "/run/netns/\(lab.host)").run {
                try NftApplier.apply(Firewall.sessionBatch(.init(interface: deadInterface, gateway4: nil, gateway6: nil, gatePort: 1,
                                                                  nflogGroup: 40007, entries: UplinkLab.profileEntries)))
            }
        }
        try sh("ip -n \(lab.host) link add \(deadInterface) type veth peer name eth0 netns \(deadSandbox)", check: true)
        try sh("ip -n \(lab.host) link set \(deadInterface) up; ip -n \(lab.host) addr add 100.72.0.29/30 dev \(deadInterface); ip -n \(deadSandbox) link set eth0 up; ip -n \(deadSandbox) addr add 100.72.0.30/30 dev eth0; ip -n \(deadSandbox) route add default via 100.72.0.29; ip netns exec \(lab.host) sysctl -qw net.ipv4.conf.\(deadInterface).forwarding=1", check: true)
        // Even so, nothing but the dead session's own entries gets out.
        #expect(try lab.probe(in: deadSandbox, ["tcp \(UplinkLab.attacker4) 80"])["tcp \(UplinkLab.attacker4) 80"] != "open")

        let removed = try onDedicatedThread { try NetworkLeftovers.clean(paths: paths, namespace: NetworkNamespace(path: "/run/netns/\(lab.host)")) }
        #expect(removed.contains("link \(deadInterface)"))
        #expect(removed.contains("nft-chain \(deadInterface)"))
        #expect(!removed.contains { $0.contains(live.interface) })
        let ruleset = try lab.nftRuleset()
        #expect(!ruleset.contains(deadInterface))
        #expect(ruleset.contains(live.interface + "_fwd"))
        #expect(!FileSystem.exists(paths.leases + "/net-dead.lease"))
        #expect(try lab.probe(in: liveSandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] == "open")
        // The dead sandbox has no link any more: no packet out.
        #expect(try lab.probe(in: deadSandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] != "open")
        #expect(lab.lab.sinkRecords().isEmpty)
        try expectSinkReachedWithoutCagent(lab, "tcp \(UplinkLab.attacker4) 80")
    }

    /// The positive control of a "the sink saw nothing": the same probe from the simulated host, without
    /// cagent in the path, is answered and recorded by the sink.
    func expectSinkReachedWithoutCagent(_ lab: UplinkLab, _ target: String) throws {
        let control = try lab.probe(in: lab.host, [target])
        #expect(control[target] == "open", "control: \(control)")
        #expect(!lab.lab.sinkRecords().isEmpty, "control: the sink recorded nothing")
    }
}

final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<NetworkSession, Error>] = [:]
    func set(_ index: Int, _ result: Result<NetworkSession, Error>) { lock.withLock { results[index] = result } }
    func get(_ index: Int) -> Result<NetworkSession, Error> { lock.withLock { results[index]! } }
}
