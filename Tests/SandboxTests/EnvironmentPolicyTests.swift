import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #12, sections 2 and 5: what of the host's environment and home reaches the agent, in learn mode as
/// in enforce mode, and the proxy that would void the allowlist. Every planted value is unique; each probe
/// has its positive control (the same value passed with `--env`, the same file read outside the sandbox).
@Suite("environment policy and proxies", .serialized)
struct EnvironmentPolicyTests {
    /// Credentials that do not look like credentials by name (the old learn blocklist let them through).
    static let planted: [String: String] = [
        "DATABASE_URL": "postgres://app:PLANTED-db-pass@db.internal/app",
        "DOCKER_PASS": "PLANTED-docker",
        "CI_JOB_JWT": "PLANTED-jwt",
        "SENTRY_DSN": "https://PLANTED-sentry@o1.ingest.test/1",
        "SLACK_WEBHOOK": "https://hooks.slack.test/PLANTED-slack",
        "HTTPS_PROXY": "http://PLANTED-proxy.test:3128",
    ]
    /// Passed with `--env`: the positive control of the environment probe.
    static let requested = ("REQUESTED_SETTING", "PLANTED-requested-ok")
    static let history = "PLANTED-history-cagent"
    static let gcloud = "PLANTED-gcloud-cagent"

    /// Runs `cagent enforce` with only `extra` (and HOME, PATH) as its environment.
    static func enforce(_ arguments: [String], world: SandboxFixture, environment extra: [String: String])
        throws -> (status: Int32, stderr: String)
    {
        var environment = ["HOME": world.home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        for (name, value) in extra { environment[name] = value }
        let run = try Netlab.execute([Products.cagent, "enforce", "--user", String(SandboxFixture.agentUID),
                                      "--workspace", world.workspace, "--state-dir", world.state, "--offline"] + arguments,
                                     timeout: 60, environment: environment)
        return (run.status, run.stderr)
    }

    /// Section 2, enforce side: only the allowlist passes, the dropped names are announced on one line (names,
    /// never values, escaped), and `--env NAME` passes a variable.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func enforceAnnouncesWhatItDropsAndPassesWhatIsAsked() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        var environment = Self.planted
        environment.removeValue(forKey: "HTTPS_PROXY")
        environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        environment[Self.requested.0] = Self.requested.1
        environment["ODD\u{1b}]0;title\u{7}NAME"] = "PLANTED-odd"
        let out = world.workspace + "/env.txt"
        let run = try Self.enforce(["--profile", "default", "--env", Self.requested.0, "--",
                                    "/bin/sh", "-c", "env > \(out)"], world: world, environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        let seen = world.read(out) ?? ""
        #expect(seen.contains("\(Self.requested.0)=\(Self.requested.1)"), "--env did not pass it (control): \(seen)")
        for (name, value) in environment where name != Self.requested.0 && name != "PATH" {
            #expect(!seen.contains(value), "\(name) reached the agent: \(seen)")
        }
        let lines = run.stderr.split(separator: "\n").filter { $0.hasPrefix("cagent: not passed to the agent: ") }
        #expect(lines.count == 1, "\(run.stderr)")
        let line = String(lines.first ?? "")
        for name in ["CI_JOB_JWT", "DATABASE_URL", "DOCKER_PASS", "SENTRY_DSN", "SLACK_WEBHOOK"] {
            #expect(line.contains(name), "\(name) not announced: \(line)")
        }
        #expect(line.contains("--env NAME"), "\(line)")
        #expect(!line.contains(Self.requested.0), "a passed variable announced as dropped: \(line)")
        #expect(!line.contains("PLANTED") && !run.stderr.contains("PLANTED"), "a value was printed: \(run.stderr)")
        #expect(!run.stderr.contains("\u{1b}"), "a name reached the terminal unescaped: \(run.stderr)")
    }

    /// Section 5: a proxy variable passed to the agent (env.pass or --env) voids the allowlist: enforce refuses
    /// to start, and starts with `--allow-proxy`, announcing it (the control: the same run does start then).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func enforceRefusesAProxyUnlessAllowed() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/proxied.yaml"
        try world.write(profile, "cagent: 1\nnetwork:\n  endpoints:\n    - 198.51.100.9:3128/tcp\nenv:\n  pass:\n    - HTTPS_PROXY\n", owner: 0)
        let marker = world.workspace + "/agent-ran"
        let agent = ["--", "/bin/sh", "-c", "env > \(marker)"]
        let proxy = ["HTTPS_PROXY": "http://198.51.100.9:3128", "http_proxy": "http://198.51.100.9:3128"]

        for arguments in [["--profile", profile], ["--profile", "default", "--env", "http_proxy"]] {
            let refused = try Self.enforce(arguments + agent, world: world, environment: proxy)
            #expect(refused.status != 0 && !FileSystem.exists(marker), "started with a proxy: \(arguments) \(refused.stderr)")
            #expect(refused.stderr.contains("allowlist") && refused.stderr.contains("--allow-proxy"), "\(refused.stderr)")

            let allowed = try Self.enforce(arguments + ["--allow-proxy"] + agent, world: world, environment: proxy)
            #expect(allowed.status == 0, "\(allowed.stderr)")
            #expect((world.read(marker) ?? "").contains("198.51.100.9:3128"), "the proxy variable did not pass: \(arguments)")
            #expect(allowed.stderr.split(separator: "\n").contains { $0.hasPrefix("cagent: warning: --allow-proxy") },
                    "no warning: \(allowed.stderr)")
            unlink(marker)
        }
        // Without any passing entry the host's proxy variables stay out, and the announcement says so.
        let plain = try Self.enforce(["--profile", "default"] + agent, world: world, environment: proxy)
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(!(world.read(marker) ?? "x").contains("198.51.100.9"), "a host proxy variable reached the agent")
        #expect(plain.stderr.contains("HTTPS_PROXY") && plain.stderr.contains("http_proxy")
                && plain.stderr.contains("--allow-proxy"), "\(plain.stderr)")
    }

    /// Section 2, learn side: without `--agent`, learn hides what base hides (shell history, gcloud) and records
    /// the attempts as secret access; its environment is enforce's allowlist, not the host's minus
    /// credential-looking names.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft", "dnsmasq", "setpriv"]), "needs root and the netlab tools"))
    func learnHidesWhatEnforceHidesAndPassesOnlyItsEnvironment() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let lab = try Netlab(services: [.dns])
        defer { lab.shutdown() }
        try fixture.write(fixture.home + "/.bash_history", Self.history + "\n")
        try fixture.write(fixture.home + "/.config/gcloud/x", Self.gcloud + "\n")
        let files = [fixture.home + "/.bash_history", fixture.home + "/.config/gcloud/x"]
        // Positive control: the agent user reads both outside the sandbox.
        let outside = try Netlab.execute(["setpriv", "--reuid", String(SandboxFixture.agentUID), "--regid",
                                          String(SandboxFixture.agentUID), "--clear-groups", "cat"] + files, timeout: 10)
        #expect(outside.stdout.contains(Self.history) && outside.stdout.contains(Self.gcloud), "control: \(outside.stderr)")

        let envOut = fixture.workspace + "/env.txt", catOut = fixture.workspace + "/cat.txt"
        try fixture.write(fixture.workspace + "/agent.sh", """
            #!/bin/sh
            env > "\(envOut)"
            cat "$HOME/.bash_history" "$HOME/.config/gcloud/x" > "\(catOut)" 2>&1
            exit 0
            """)
        let database = fixture.root + "/learn.db"
        var command = ["env"]
        for (name, value) in Self.planted { command.append("\(name)=\(value)") }
        command += ["\(Self.requested.0)=\(Self.requested.1)",
                    Products.cagent, "learn", "--user", String(SandboxFixture.agentUID), "--home", fixture.home,
                    "--state-dir", fixture.state, "--db", database, "--workspace", fixture.workspace,
                    "--tracer", "seccomp", "--env", Self.requested.0, "--", "/bin/sh", fixture.workspace + "/agent.sh"]
        let run = try lab.run(in: .host, command, timeout: 120)
        #expect(run.status == 0, "cagent learn failed: \(run.stderr)")
        let seen = fixture.read(envOut) ?? ""
        let read = fixture.read(catOut) ?? ""
        #expect(seen.contains("\(Self.requested.0)=\(Self.requested.1)"), "--env did not pass it (control): \(seen)\n\(run.stderr)")
        for (name, value) in Self.planted {
            #expect(!seen.contains(value), "\(name) reached the learning agent")
        }
        #expect(!read.isEmpty, "the probe did not run: \(run.stderr)")
        #expect(!read.contains(Self.history), "~/.bash_history readable in learn mode")
        #expect(!read.contains(Self.gcloud), "~/.config/gcloud readable in learn mode")
        #expect(run.stderr.contains("cagent: not passed to the agent: ") && run.stderr.contains("DATABASE_URL"), "\(run.stderr)")
        #expect(!run.stderr.contains("PLANTED"), "a value was printed: \(run.stderr)")

        // The attempts are secret-access findings, like those on the built-in list.
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        #expect(report.status == 0, "\(report.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let findings = json["findings"] as? [[String: Any]] ?? []
        let secrets = findings.filter { $0["kind"] as? String == "secret-access" }.compactMap { $0["subject"] as? String }
        #expect(secrets.contains("~/.bash_history") && secrets.contains("~/.config/gcloud"), "findings: \(findings)")
    }
}

/// Why the refusal exists, shown with a real proxy (tinyproxy) in the simulated internet: a profile allowing
/// only the proxy's endpoint, run with `--allow-proxy`, lets the agent fetch from a host the profile does
/// not allow; the same fetch without the proxy is blocked (the control that the host is not allowed), and
/// without `--allow-proxy` the agent never starts.
@Suite(.serialized) struct ProxyDemonstrationTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "tcpdump", "python3", "tinyproxy"]
    static let proxyAddress = NetlabAddresses.web3
    static let target = NetlabAddresses.web2   // api.allowed.test's address: not in this profile

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, the netlab's tools and tinyproxy"))
    func allowProxyLetsTheAgentPastTheAllowlist() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let config = world.root + "/tinyproxy.conf"
        try world.write(config, "Port 3128\nListen \(Self.proxyAddress)\nUser nobody\nGroup nogroup\nTimeout 10\nMaxClients 8\nLogLevel Info\n", owner: 0)
        try lab.spawn(in: .internet, ["tinyproxy", "-d", "-c", config], readyOnStdout: "Starting main loop")
        let profile = world.root + "/proxied.yaml"
        try world.write(profile, "cagent: 1\nnetwork:\n  endpoints: [\"\(Self.proxyAddress):3128/tcp\"]\nenv:\n  pass: [http_proxy]\n", owner: 0)
        let script = """
            curl -sS -m 5 -o /dev/null -w 'proxied %{http_code}\\n' http://\(Self.target)/ || echo proxied-failed
            curl -sS -m 5 --noproxy '*' -o /dev/null -w 'direct %{http_code}\\n' http://\(Self.target)/ || echo direct-failed
            """
        func enforce(_ extra: [String]) throws -> Netlab.Output {
            try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4] + extra + ["--", "/bin/sh", "-c", script],
                timeout: 90, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home,
                                           "CAGENT_RUNTIME_DIR": world.root + "/run",
                                           "http_proxy": "http://\(Self.proxyAddress):3128"])
        }
        let requestsBefore = lab.webRequests().count
        let refused = try enforce([])
        #expect(refused.status != 0 && !refused.stdout.contains("proxied"), "started without --allow-proxy: \(refused.stderr)")
        #expect(lab.webRequests().count == requestsBefore, "a request went out although the start was refused")

        let allowed = try enforce(["--allow-proxy"])
        #expect(allowed.stderr.contains("cagent: warning: --allow-proxy: http_proxy passed"), "\(allowed.stderr)")
        // The risk, demonstrated: through the proxy the agent reaches a host its profile does not allow ...
        #expect(allowed.stdout.contains("proxied 200"), "out: \(allowed.stdout) err: \(allowed.stderr)")
        // ... which the firewall does block when the agent goes there itself (the control).
        #expect(allowed.stdout.contains("direct-failed") || allowed.stdout.contains("direct 000"), "\(allowed.stdout)")
        #expect(allowed.stderr.contains("cagent: blocked tcp \(Self.target):80"), "\(allowed.stderr)")
    }
}

/// The policy itself (pure logic): one implementation for enforce and learn.
@Suite struct AgentEnvironmentTests {
    @Test func allowlistAnnouncementAndProxies() {
        let host = ["PATH": "/usr/bin", "TERM": "xterm", "LC_ALL": "C", "HOME": "/root", "PWD": "/x", "EDITOR": "vi",
                    "DATABASE_URL": "postgres://u:p@h/d", "https_proxy": "http://p:3128", "NO_PROXY": "localhost",
                    "EMPTY": "", "COLORTERM": ""]
        let policy = AgentEnvironment(host: host, profilePass: ["EDITOR", "COLORTERM"], requested: [], home: "/home/u")
        #expect(policy.entries == ["EDITOR=vi", "LC_ALL=C", "PATH=/usr/bin", "TERM=xterm", "HOME=/home/u"])
        #expect(policy.dropped == ["DATABASE_URL", "NO_PROXY", "https_proxy"])   // empty ones pass nothing, drop nothing
        #expect(policy.passedProxies.isEmpty && policy.proxyRefusal() == nil)
        #expect(policy.droppedLine == "cagent: not passed to the agent: DATABASE_URL, NO_PROXY, https_proxy (pass one with "
                + "--env NAME or the profile's env.pass; proxy variables also need --allow-proxy, which voids the allowlist)")

        // Both planners use it.
        let learnLike = AgentEnvironment(host: host, profilePass: [], requested: ["https_proxy", "NO_PROXY"], home: "/h")
        #expect(learnLike.passedProxies == ["https_proxy"] && learnLike.proxyRefusal() != nil)
        #expect(learnLike.entries.contains("NO_PROXY=localhost"))

        // Long lists: sorted, twelve names, then a count; names escaped.
        var many: [String: String] = [:]
        for index in 0..<20 { many["VAR_\(index < 10 ? "0" : "")\(index)"] = "v" }
        many["BAD\u{1b}[2J"] = "v"
        let long = AgentEnvironment(host: many, profilePass: [], requested: [], home: "/h").droppedLine ?? ""
        #expect(long.hasPrefix("cagent: not passed to the agent: BAD\\x1B[2J, VAR_00, VAR_01,") && long.contains("VAR_10 and 9 more ("), "\(long)")
        #expect(!long.contains("\u{1b}") && !long.contains("\n"))
        // A proxy variable is named however long the list.
        many["all_proxy"] = "socks5://p:1080"
        let withProxy = AgentEnvironment(host: many, profilePass: [], requested: [], home: "/h").droppedLine ?? ""
        #expect(withProxy.contains(", all_proxy and 10 more (") && withProxy.contains("--allow-proxy"), "\(withProxy)")
    }

    @Test func proxyVariableNames() {
        for name in ["http_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "ftp_proxy", "npm_config_https_proxy", "GIT_PROXY_COMMAND"] {
            #expect(ProxyRisk.routesTraffic(name), "\(name)")
        }
        #expect(ProxyRisk.isProxyVariable("no_proxy") && !ProxyRisk.routesTraffic("NO_PROXY"))
        #expect(!ProxyRisk.isProxyVariable("PROXYCHAINS_CONF") && !ProxyRisk.isProxyVariable("PATH"))
        #expect(!AgentEnvironment.alwaysPassed.contains(where: ProxyRisk.isProxyVariable))
    }
}
