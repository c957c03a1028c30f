import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent enforce` with its network, end to end: the real binary runs in the netlab's simulated host (its
/// own network namespace, so nothing reaches this machine's interfaces) with a profile allowing
/// `www.allowed.test` and `203.0.113.11:8080/tcp`. Every "nothing reached the attacker" has its positive
/// control: the same probe from the simulated host without cagent does reach the sink or the DNS log.
///
/// cagent runs under `nsenter --net` (not `ip netns exec`, which remounts /sys and hides the cgroup
/// hierarchies the session cgroup needs); `--upstream-dns` gives the gate the lab's resolver, as the lab's
/// /etc/netns resolv.conf would.
@Suite(.serialized) struct EnforceNetworkTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dig", "dnsmasq", "tcpdump", "python3"]

    static let profileText = """
    cagent: 1
    agent: nettest
    extends: [base]
    network:
      domains: [www.allowed.test]
      endpoints: ["203.0.113.11:8080/tcp"]

    """

    struct Run {
        var output: Netlab.Output
        var sessionID: String?
    }

    func enforce(_ lab: Netlab, _ world: SandboxFixture, _ arguments: [String], script: String) throws -> Run {
        let profile = world.root + "/nettest.yaml"
        try Self.profileText.write(toFile: profile, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        let output = try Netlab.execute(
            ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
             "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
             "--upstream-dns", NetlabAddresses.dns4] + arguments + ["--", "/bin/sh", "-c", script],
            timeout: 90, environment: environment)
        let list = FileSystem.list(world.state + "/sessions").first { $0.hasSuffix("-network.json") }
        return Run(output: output, sessionID: list.map { String($0.dropLast("-network.json".count)) })
    }

    /// What cagent must not leave: in the lab's host namespace no session's chains or sets (the kept empty
    /// table aside: NftLeftovers) and no cgs link; on this machine no link, cgroup or live lease of the session.
    func expectNothingLeft(_ lab: Netlab, _ world: SandboxFixture, sessionID: String?) throws {
        DetachedTeardowns.wait(runtime: world.root + "/run")
        let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"])
        #expect(NftLeftovers.find(ruleset: ruleset.stdout).isEmpty, "nft left: \(ruleset.stdout)")
        let links = try lab.run(in: .host, ["ip", "-o", "link"])
        #expect(!links.stdout.contains("cgs"), "link left in the lab host: \(links.stdout)")
        let leases = FileSystem.list(world.root + "/run/sessions").filter { $0.hasSuffix(".lease") }
        #expect(leases.isEmpty, "lease left: \(leases)")
        if let sessionID {
            let machineLinks = try Netlab.execute(["ip", "-o", "link"], timeout: 10)
            #expect(!machineLinks.stdout.contains("cgs\(sessionID)"), "link on this machine")
            let machineRules = try Netlab.execute(["nft", "list", "ruleset"], timeout: 10)
            #expect(!machineRules.stdout.contains("cgs\(sessionID)"), "chains on this machine")
            let cgroups = try Netlab.execute(["find", "/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", "cagent-\(sessionID)"],
                                             timeout: 20)
            #expect(cgroups.stdout.isEmpty, "cgroup left: \(cgroups.stdout)")
        }
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"))
    func profileAllowsItsEntriesAndNothingElse() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let script = """
        cat /etc/resolv.conf
        curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/
        curl -sS -m 5 -o /dev/null -w 'static %{http_code}\\n' http://203.0.113.11:8080/
        curl -sS -m 5 -o /dev/null -w 'attacker %{http_code}\\n' http://203.0.113.66/ || echo attacker-failed
        dig +time=2 +tries=1 +short x.attacker.test | sed 's/^/x-answer /'
        dig @198.51.100.8 +time=2 +tries=1 +short y.attacker.test | sed 's/^/y-answer /'
        nft flush ruleset 2>/dev/null && echo tamper-nft-ok
        ip route del default 2>/dev/null && echo tamper-route-ok
        curl -6 -sS -m 5 -o /dev/null http://[2001:db8:66::66]/ 2>/dev/null || echo v6-failed
        ping -c 1 -W 2 203.0.113.66 >/dev/null 2>&1 || echo ping-failed
        python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"udp-probe", ("203.0.113.66", 9999))' 2>/dev/null
        curl -sS -m 5 -o /dev/null http://169.254.169.254/ 2>/dev/null || echo metadata-failed
        exit 7
        """
        // N11's target: a metadata service that answers (the lab has nothing else listening there).
        #expect(try lab.run(in: .internet, ["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"]).succeeded)
        _ = try lab.spawn(in: .internet, ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", "169.254.169.254", "80"],
                          readyOnStdout: "Serving HTTP")
        let run = try enforce(lab, world, [], script: script)
        let out = run.output.stdout, err = run.output.stderr
        #expect(run.output.status == 7, "the agent's status is cagent's: \(err)")
        // resolv.conf names the session's gateway (the gate).
        #expect(out.contains("nameserver 100.72."), "resolv.conf: \(out)")
        // (1) a name from the profile, through the gate.
        #expect(out.contains("www 200"), "\(out)")
        #expect(lab.webRequests().contains { $0.contains("203.0.113.10") || $0.contains("www.allowed.test") }, "web log")
        // (2) a static endpoint.
        #expect(out.contains("static 200"), "\(out)")
        // (3) not in the profile: refused, and nothing reached the attacker or the DNS server.
        #expect(out.contains("attacker-failed") || out.contains("attacker 000"), "\(out)")
        #expect(!out.contains("x-answer") && !out.contains("y-answer"), "\(out)")
        // N6, N7, N9, N11, N18 at product level: v6, ICMP, UDP and metadata fail too; tampering is refused.
        for marker in ["v6-failed", "ping-failed", "metadata-failed"] { #expect(out.contains(marker), "\(out)") }
        #expect(!out.contains("tamper-"), "\(out)")
        #expect(lab.sinkRecords().filter { $0.contains("203.0.113.66") || $0.contains("198.51.100.8") || $0.contains("2001:db8:66::66") }.isEmpty,
                "the sink saw the sandbox: \(lab.sinkRecords())")
        #expect(lab.dnsQueries(containing: "attacker.test").isEmpty, "the DNS server saw \(lab.dnsQueries(containing: "attacker.test"))")
        // (4) one readable line per denial, never inside one of the agent's own lines (curl's error here).
        let lines = err.split(separator: "\n").map(String.init)
        #expect(lines.allSatisfy { !$0.contains("cagent: ") || $0.hasPrefix("cagent: ") }, "a line inside another: \(err)")
        #expect(lines.contains { $0.hasPrefix("curl: (7) Failed to connect to 203.0.113.66 port 80") }, "\(err)")
        // Each ends with the command that proposes allowing it (docs/cli.md "Learning from denials").
        let allow = " — allow: cagent profile propose --update \(world.root)/nettest.yaml --session \(run.sessionID ?? "?") --db \(world.state)/cagent.db"
        #expect(lines.filter { $0.hasPrefix("cagent: blocked tcp 203.0.113.66") } == ["cagent: blocked tcp 203.0.113.66:80" + allow],
                "stderr: \(err)")
        #expect(lines.filter { $0.hasPrefix("cagent: refused DNS x.attacker.test") } == ["cagent: refused DNS x.attacker.test (not in profile)" + allow],
                "stderr: \(err)")
        #expect(lines.contains { $0.hasPrefix("cagent: refused DNS y.attacker.test") }, "stderr: \(err)")
        // The summary names the list, which holds the same entries as JSON.
        #expect(lines.contains { $0.contains(" allowed, ") && $0.contains(" refused, ") && $0.contains(" blocked (full list: ") }, "\(err)")
        let sessionID = try #require(run.sessionID, "the list file exists")
        let list = FileSystem.readText(world.state + "/sessions/\(sessionID)-network.json") ?? ""
        #expect(list.contains("\"subject\":\"203.0.113.66\"") && list.contains("x.attacker.test"), "\(list)")
        // (5) nothing left behind.
        try expectNothingLeft(lab, world, sessionID: sessionID)

        // Positive controls: the same probes from the simulated host without cagent reach the sink and the DNS log.
        _ = try lab.run(in: .host, ["curl", "-sS", "-m", "3", "-o", "/dev/null", "http://203.0.113.66/"])
        _ = try lab.run(in: .host, ["dig", "+time=2", "+tries=1", "@\(NetlabAddresses.dns4)", "x.attacker.test"])
        _ = try lab.run(in: .host, ["dig", "+time=2", "+tries=1", "@198.51.100.8", "y.attacker.test"])
        _ = try lab.run(in: .host, ["curl", "-6", "-sS", "-m", "3", "-o", "/dev/null", "http://[2001:db8:66::66]/"])
        _ = try lab.run(in: .host, ["ping", "-c", "1", "-W", "2", "203.0.113.66"])
        _ = try lab.run(in: .host, ["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'udp-probe', ('203.0.113.66', 9999))"])
        #expect(lab.sinkRecords().contains { $0.contains("203.0.113.66") }, "control: the sink records a direct connection")
        #expect(lab.sinkRecords().contains { $0.contains("2001:db8:66::66") }, "control: the sink records IPv6")
        #expect(lab.sinkRecords().contains { $0.contains("ICMP echo request") || $0.contains("ICMP") }, "control: the sink records ping")
        #expect(lab.sinkRecords().contains { $0.contains("9999") }, "control: the sink records UDP")
        #expect(lab.sinkRecords().contains { $0.contains("198.51.100.8") }, "control: the sink records the public resolver query")
        #expect(!lab.dnsQueries(containing: "x.attacker.test").isEmpty, "control: the DNS log records the query")
        let metadata = try lab.run(in: .host, ["curl", "-sS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", "http://169.254.169.254/"])
        #expect(metadata.stdout == "200", "control: the metadata service answers without cagent: \(metadata)")
    }

    /// With a terminal (the agent on its own pty, the user's terminal in raw mode): a denial line is printed on
    /// a line of its own and ends with "\r\n" (a bare "\n" in raw mode would not return the cursor).
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools + ["script"]), "needs root, namespaces, the netlab's tools and script"))
    func denialLinesOnATerminal() throws {
        try Requirements.root()
        let lab = try Netlab(services: [.dns, .sink]); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/nettest.yaml"
        try Self.profileText.write(toFile: profile, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        let command = "nsenter --net=/run/netns/\(lab.hostNamespace) \(Products.cagent) enforce --profile \(profile) "
            + "--user \(SandboxFixture.agentUID) --workspace \(world.workspace) --state-dir \(world.state) "
            + "--upstream-dns \(NetlabAddresses.dns4) -- /bin/sh -c 'printf partial; curl -sS -m 5 http://203.0.113.66/; sleep 0.3'"
        let output = try Netlab.execute(["script", "-qfec", command, "/dev/null"], timeout: 60, environment: environment)
        let text = output.stdout
        #expect(text.contains("cagent: blocked tcp 203.0.113.66:80 — allow: cagent profile propose --update \(profile) --session "),
                "\(text.debugDescription)")
        #expect(text.contains(" --db \(world.state)/cagent.db\r\n"), "ends with \\r\\n: \(text.debugDescription)")
        if let range = text.range(of: "cagent: blocked") {
            #expect(text[..<range.lowerBound].utf8.last.map { $0 == 0x0a } ?? true,
                    "on a line of its own: \(text.debugDescription)")
        }
        try expectNothingLeft(lab, world, sessionID: nil)
    }

    /// kill -TERM of cagent while the agent runs: forwarded to the agent (status 143), and the teardown runs.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"))
    func terminatedSessionTearsDown() throws {
        try Requirements.root()
        let lab = try Netlab(services: [.dns]); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/nettest.yaml"
        try Self.profileText.write(toFile: profile, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        let process = try SpawnedProcess.start(
            ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
             "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
             "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c", "touch \(world.workspace)/started; exec sleep 60"],
            stdout: world.root + "/term.out", stderr: world.root + "/term.err", environment: environment)
        // The agent's own mark that it runs (not a fixed wait): a TERM before it would abort the start instead.
        var waited = 0.0
        while waited < 20, !FileSystem.exists(world.workspace + "/started") { usleep(50_000); waited += 0.05 }
        #expect(FileSystem.exists(world.workspace + "/started"), "the agent never started: \(FileSystem.readText(world.root + "/term.err") ?? "")")
        kill(process.pid, SIGTERM)
        let status = process.wait(timeout: 30)
        #expect(status == 143, "\(FileSystem.readText(world.root + "/term.err") ?? "")")
        try expectNothingLeft(lab, world, sessionID: nil)
    }

    /// `--json`: the summary at exit is the JSON object (the same as the list file) instead of the line.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"))
    func jsonSummary() throws {
        try Requirements.root()
        let lab = try Netlab(services: [.dns]); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let run = try enforce(lab, world, ["--json"], script: "getent hosts nothing.attacker.test; exit 0")
        #expect(run.output.status == 0, "\(run.output.stderr)")
        let last = run.output.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("{\"allowed\":0,\"refused\":"), "\(run.output.stderr)")
        #expect(last.contains("\"subject\":\"nothing.attacker.test\""), "\(last)")
        #expect(!run.output.stderr.contains("(full list: "), "\(run.output.stderr)")
        // The session's id, or the machine-wide leftover checks would be skipped.
        let sessionID: String = try #require(run.sessionID, "no session list: \(run.output.stderr)")
        try expectNothingLeft(lab, world, sessionID: sessionID)
    }

    /// Fail closed: a failure after the uplink and the gate are up stops the agent from ever running, with
    /// status 125 and the stage named, and leaves nothing behind.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"),
          arguments: ["network", "dns-gate", "nflog", "cgroup"])
    func setupFailureStartsNothing(stage: String) throws {
        try Requirements.root()
        let lab = try Netlab(services: [.dns]); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let marker = world.workspace + "/ran"
        let run = try enforce(lab, world, ["--fail-at-stage", stage], script: "touch \(marker)")
        #expect(run.output.status == 125, "stderr: \(run.output.stderr)")
        #expect(run.output.stderr.contains("sandbox setup: \(stage) failed"), "\(run.output.stderr)")
        #expect(!FileSystem.exists(marker), "the agent ran")
        try expectNothingLeft(lab, world, sessionID: nil)
        // The control: the same run without the fault does run the agent (the marker proves it, not its absence).
        let control = try enforce(lab, world, [], script: "touch \(marker)")
        #expect(control.output.status == 0 && FileSystem.exists(marker), "control: the agent did not run: \(control.output.stderr)")
        try expectNothingLeft(lab, world, sessionID: control.sessionID)
    }
}
