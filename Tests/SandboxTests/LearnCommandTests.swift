import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// `cagent learn` end to end: the real binary inside the netlab's simulated host, a scripted agent with
/// known behaviour, then `cagent report --json` must hold each fact. Once per tracer backend.
extension SandboxFixture {
    /// A user-owned directory under /opt, unique to this fixture.
    var userOpt: String { "/opt/cagent-learn-test-" + (root.split(separator: "-").last.map(String.init) ?? "x") }
    /// A root-owned, world-writable (sticky) host directory: writable to the agent user on the host.
    var sharedOpt: String { "/opt/cagent-learn-shared-" + (root.split(separator: "-").last.map(String.init) ?? "x") }
    /// Host unix sockets planted for this fixture (listening-socket files in /run and /tmp), which the sandbox must not see.
    var plantedSockets: [String] {
        let id = root.split(separator: "-").last.map(String.init) ?? "x"
        return ["/run/cgt-learn-\(id).sock", "/tmp/cgt-learn-\(id).sock"]
    }
    /// A file in root's /opt the agent may not create (never made: a name of this fixture's, not shared with another run).
    var refusedOpt: String { "/opt/cagent-learn-x-" + (root.split(separator: "-").last.map(String.init) ?? "x") }
}

@Suite("cagent learn", .serialized)
struct LearnCommandTests {
    static let tools = ["ip", "nft", "dnsmasq", "dig", "curl", "python3"]
    /// The port the agent listens on (loopback of the sandbox's own network namespace).
    static let listenPort = 47011

    /// A TLS ClientHello for `sni-only.test` to an address no DNS answer names (the web server answers it with
    /// an HTTP error: only the hello matters).
    static let helloScript = """
        import socket, ssl
        c = ssl.create_default_context()
        s = socket.create_connection(("\(NetlabAddresses.web4)", 443), timeout=3)
        try:
            c.wrap_socket(s, server_hostname="sni-only.test")
        except Exception:
            pass
        print("sent")
        """

    /// A listening socket on 127.0.0.1.
    static let listenScript = """
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", \(listenPort)))
        s.listen(1)
        s.close()
        print("listened")
        """

    /// What the agent does (each line is a fact the report must show).
    static func agentScript(fixture: SandboxFixture) -> String {
        """
        #!/bin/sh
        cd "\(fixture.workspace)"
        out="\(fixture.workspace)/results.txt"
        cat README > /dev/null
        cat "$HOME/.config/tool/config" > /dev/null
        cat /nonexistent-cagent-learn-file 2>/dev/null
        cat "$HOME/.ssh/id_rsa" > /dev/null 2>&1 && echo "secret=read" >> "$out" || echo "secret=hidden" >> "$out"
        echo scratch > "$HOME/written-by-agent" && echo "homewrite=ok" >> "$out"
        echo x > "\(fixture.refusedOpt)" 2>/dev/null && echo "optwrite=ok" >> "$out" || echo "optwrite=refused" >> "$out"
        echo x > "\(fixture.userOpt)/x" && echo "useroptwrite=ok" >> "$out"
        echo x > "\(fixture.sharedOpt)/x" && echo "sharedwrite=ok" >> "$out"
        for name in www.allowed.test api.allowed.test assets.allowed.test; do
          curl -s -o /dev/null -m 5 "http://$name/" && echo "web=$name" >> "$out"
        done
        curl -s -o /dev/null -m 5 http://203.0.113.13/ && echo "web=203.0.113.13" >> "$out"
        python3 hello.py > /dev/null 2>&1 && echo "tls=sent" >> "$out"
        python3 listen.py > /dev/null 2>&1 && echo "listen=ok" >> "$out"
        dig +short +time=2 +tries=1 @198.51.100.8 x.allowed.test > /dev/null
        sh -c 'echo child > /dev/null'
        curl -s -o /dev/null -m 2 http://169.254.169.254/ && echo "metadata=reached" >> "$out"
        curl -s -o /dev/null -m 2 http://\(NetlabAddresses.host4)/ && echo "host=reached" >> "$out"
        curl -s -o /dev/null -m 2 http://10.9.8.7/ && echo "lan=reached" >> "$out"
        for s in /run/user /run/dbus/system_bus_socket /run/systemd/resolve "$SSH_AUTH_SOCK" \(fixture.plantedSockets.joined(separator: " ")); do
          [ -n "$s" ] && [ -e "$s" ] && echo "socket=$s" >> "$out"
        done
        env | grep -q LEARN_TEST_TOKEN && echo "env=token" >> "$out"
        env | grep -q LEARN_PASSED_TOKEN && echo "env=passed" >> "$out"
        echo done >> "$out"
        exit 0
        """
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, the netlab tools and eBPF"))
    func ebpf() throws { try learn(tracer: "ebpf") }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root and the netlab tools"))
    func seccomp() throws { try learn(tracer: "seccomp") }

    /// `--tracer tracee` with a stand-in `tracee` on PATH (Tracee cannot run on this kernel) that records its
    /// arguments and replays Tracee's real samples: the runner is scoped to the sandbox's init and its events
    /// land in the learn session.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft"]), "needs root"))
    func traceeStandIn() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let lab = try Netlab(services: [.dns])
        defer { lab.shutdown() }
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("CagentTraceTests/Fixtures").path
        let bin = fixture.root + "/bin"
        try fixture.write(bin + "/tracee", "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\ncat \(fixtures)/*.jsonl\nsleep 1\n")
        chmod(bin + "/tracee", 0o755)
        let database = fixture.root + "/learn.db"
        let run = try lab.run(in: .host, ["env", "PATH=\(bin):/usr/sbin:/usr/bin:/sbin:/bin", Products.cagent, "learn", "--quiet",
                                          "--user", String(SandboxFixture.agentUID), "--home", fixture.home,
                                          "--state-dir", fixture.state, "--db", database, "--workspace", fixture.workspace,
                                          "--tracer", "tracee", "--", "/bin/true"], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        let args = fixture.read(bin + "/args") ?? ""
        #expect(args.contains("--scope tree=") && args.contains("--output json"), "\(args)")
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        #expect(report.stdout.contains("\"source\":\"cagent learn (tracee)\"") && report.stdout.contains("/proc/meminfo"), "\(report.stdout.prefix(2000))")
    }

    /// Each flow is one entry with how its name was learned, carrying the program the tracer saw make it; the
    /// agent's listening socket is a bind.
    static func checkFlowsAndBinds(_ text: String, tracer: String) throws {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let flows = report["flows"] as? [[String: Any]] ?? []
        let keys = flows.map { "\($0["proto"] ?? "") \($0["address"] ?? "") \($0["port"] ?? "")" }
        #expect(Set(keys).count == keys.count, "\(tracer): a flow appears twice: \(keys.sorted())")
        func entries(_ address: String, _ port: Int) -> [[String: Any]] {
            flows.filter { $0["address"] as? String == address && $0["port"] as? Int == port && $0["proto"] as? String == "tcp" }
        }
        func programs(_ flow: [String: Any]?) -> [String] { flow?["programs"] as? [String] ?? [] }

        // A name from the session's DNS answers: source dns, made by curl.
        let www = flows.filter { $0["name"] as? String == "www.allowed.test" }
        #expect(!www.isEmpty && www.allSatisfy { $0["name_source"] as? String == "dns" }, "\(tracer): \(www)")
        #expect(www.contains { programs($0).contains("curl") }, "\(tracer): the connect's program is not on the flow: \(www)")
        // curl connects to www over IPv4 or IPv6 (or both): at least one of them, each named by the answer.
        let wwwFlows = entries(NetlabAddresses.web1, 80) + entries(NetlabAddresses.web1v6, 80)
        #expect(!wwwFlows.isEmpty && wwwFlows.allSatisfy { $0["name"] as? String == "www.allowed.test" }, "\(tracer): \(keys.sorted())")

        // Only a ClientHello named it: source sni, made by python3.
        let tls = entries(NetlabAddresses.web4, 443)
        #expect(tls.count == 1, "\(tracer): \(keys.sorted())")
        #expect(tls.first?["name"] as? String == "sni-only.test" && tls.first?["name_source"] as? String == "sni", "\(tracer): \(tls)")
        #expect(programs(tls.first).contains("python3"), "\(tracer): \(tls)")

        // A bare IP: no name, a direct-IP finding, made by curl.
        let bare = entries(NetlabAddresses.web4, 80)
        #expect(bare.count == 1 && bare.first?["name"] is NSNull && bare.first?["name_source"] is NSNull, "\(tracer): \(bare)")
        #expect(programs(bare.first).contains("curl"), "\(tracer): \(bare)")
        let direct = report["direct_ip_flows"] as? [[String: Any]] ?? []
        #expect(direct.contains { $0["address"] as? String == NetlabAddresses.web4 && $0["port"] as? Int == 80 })
        #expect(!direct.contains { $0["address"] as? String == NetlabAddresses.web4 && $0["port"] as? Int == 443 })

        // The listening socket.
        let binds = report["binds"] as? [[String: Any]] ?? []
        #expect(binds.contains { $0["address"] as? String == "127.0.0.1" && $0["port"] as? Int == listenPort
                                 && $0["proto"] as? String == "tcp" && $0["family"] as? String == "ipv4"
                                 && $0["program"] as? String == "python3" && $0["result"] as? Int == 0 },
                "\(tracer): no bind of 127.0.0.1:\(listenPort): \(binds)")
    }

    @Test func planShowsTheHostReadOnlyAndHidesSecrets() throws {
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        var request = LearnRequest(profile: Profile(agent: "t", filesystem: .init(hide: ["~/.config/tool"])),
                                   workspace: fixture.workspace, user: fixture.user, paths: fixture.paths,
                                   command: ["true"], environment: ["PATH": "/usr/bin", "GITHUB_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "y",
                                                                    "SSH_AUTH_SOCK": "/run/user/1000/ssh", "EDITOR": "vi", "NPM_TOKEN": "z"],
                                   sessionID: "abc123")
        request.requestedEnvironment = ["NPM_TOKEN"]
        let plan = try LearnPlanner.plan(request)
        let operations = plan.steps.map(\.operation)
        #expect(operations.contains(.bind(source: "/usr", target: "/usr", mode: .readOnly, optional: true)))
        #expect(!operations.contains { if case .bind(_, "/etc/shadow", _, _) = $0 { return true }; return false })
        #expect(operations.contains(.tmpfs(target: "/run", mode: "0755", sizeBytes: 1 << 20)))
        #expect(operations.contains(.hide(fixture.home + "/.ssh")))
        #expect(operations.contains(.hide(fixture.home + "/.config/tool")))
        #expect(operations.contains { if case .overlay(fixture.home, _, _, fixture.home, true, false) = $0 { return true }; return false })
        // The overlay's upper layer is in the bounded scratch volume, attached before it.
        #expect(plan.volume?.image == request.scratch && plan.volume?.journal == false)
        #expect(operations.firstIndex(of: .volume(target: nil)).map { index in
            operations[index...].contains { if case .overlay = $0 { return true }; return false } } == true)
        #expect(operations.contains(.bind(source: fixture.workspace, target: fixture.workspace, mode: .readWrite)))
        // Enforce's environment policy: the allowlist plus --env; nothing else of the host's.
        #expect(plan.environment.contains("PATH=/usr/bin") && plan.environment.contains("NPM_TOKEN=z"))
        #expect(!plan.environment.contains { $0.hasPrefix("GITHUB_TOKEN=") || $0.hasPrefix("AWS_SECRET") || $0.hasPrefix("SSH_AUTH_SOCK=")
                                              || $0.hasPrefix("EDITOR=") })
        #expect(plan.policy == nil)
        // The workspace comes after the home overlay, the hides after both.
        let overlayIndex = operations.firstIndex { if case .overlay = $0 { return true }; return false }!
        let workspaceIndex = operations.firstIndex(of: .bind(source: fixture.workspace, target: fixture.workspace, mode: .readWrite))!
        let hideIndex = operations.firstIndex(of: .hide(fixture.home + "/.ssh"))!
        #expect(overlayIndex < workspaceIndex && workspaceIndex < hideIndex)
    }

    /// A host directory the user may write, removed after the plan listed it and before the sandbox mounts it
    /// (another session's or a build's temporary tree): the start goes on without it; a directory that stays
    /// is still layered (the control: its write lands in scratch, not on the host).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root"))
    func aVanishedWritableDirectoryIsSkipped() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let stays = fixture.userOpt + "-stays", vanishes = fixture.userOpt + "-vanishes"
        for path in [stays, vanishes] { try fixture.makeDirectory(path) }
        defer { for path in [stays, vanishes] { try? FileManager.default.removeItem(atPath: path) } }
        let request = LearnRequest(profile: Profile(agent: "t"), workspace: fixture.workspace, user: fixture.user,
                                   paths: fixture.paths,
                                   command: ["/bin/sh", "-c", "echo x > \(stays)/x && echo stays=written; [ -e \(vanishes) ] || echo vanished=absent"],
                                   environment: ["PATH": "/usr/bin:/bin"], sessionID: SessionID.new())
        let plan = try LearnPlanner.plan(request)
        let layered = plan.steps.map(\.operation.tokens).filter { $0.first == "overlay" && $0.contains("optional") }.map { $0[1] }
        #expect(layered.contains(stays) && layered.contains(vanishes), "\(layered)")
        try FileManager.default.removeItem(atPath: vanishes)
        let outcome = try fixture.run(plan)
        #expect(outcome.status == 0, "the start failed on a vanished directory: \(outcome.error)")
        #expect(outcome.output.contains("stays=written") && outcome.output.contains("vanished=absent"), "\(outcome.output) \(outcome.error)")
        #expect(!FileSystem.exists(stays + "/x"), "the write reached the host")
    }

    func learn(tracer: String) throws {
        try Requirements.root()
        for tool in Self.tools { try Requirements.tool(tool) }
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let lab = try Netlab()
        defer { lab.shutdown() }
        try fixture.write(fixture.home + "/.config/tool/config", "setting = 1\n")
        // A host directory the agent user owns outside home and workspace (/opt/cagent-learn-test-*): its
        // writes must land in the scratch layer too. Removed with the fixture's other traces.
        try fixture.makeDirectory(fixture.userOpt)
        try fixture.write(fixture.userOpt + "/existing", "host\n")
        defer { try? FileManager.default.removeItem(atPath: fixture.userOpt) }
        // ... and a root-owned world-writable one (mode 1777): the same.
        #expect(mkdir(fixture.sharedOpt, 0o755) == 0 && chmod(fixture.sharedOpt, 0o1777) == 0)
        defer { try? FileManager.default.removeItem(atPath: fixture.sharedOpt) }
        // Host sockets the probe looks for (/run/dbus, /run/systemd/resolve and an agent socket need not exist
        // on a test machine): planted ones, so "socket=" absent means hidden, not absent.
        for socketPath in fixture.plantedSockets {
            let made = try Netlab.execute(["/usr/bin/python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", socketPath], timeout: 10)
            #expect(made.succeeded && FileSystem.exists(socketPath), "control: \(socketPath) not planted: \(made.stderr)")
        }
        defer { for socketPath in fixture.plantedSockets { unlink(socketPath) } }
        try fixture.write(fixture.workspace + "/agent.sh", Self.agentScript(fixture: fixture))
        try fixture.write(fixture.workspace + "/hello.py", Self.helloScript)
        try fixture.write(fixture.workspace + "/listen.py", Self.listenScript)
        let database = fixture.root + "/learn.db"
        let marker = fixture.root + "/marker"
        try fixture.write(marker, "")
        // The targets learn mode must keep out of reach answer when asked without cagent: a metadata service
        // and a LAN neighbour in the internet, a web server on the simulated host's own address.
        let forbidden = [(Netlab.Side.internet, "169.254.169.254"), (.internet, "10.9.8.7"), (.host, NetlabAddresses.host4)]
        for (side, address) in forbidden {
            if side == .internet { #expect(try lab.run(in: side, ["ip", "addr", "add", address + "/32", "dev", "lo"]).succeeded) }
            _ = try lab.spawn(in: side, ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", address, "80"], readyOnStdout: "Serving HTTP")
        }
        sleep(1)   // find -newer has one-second granularity on some filesystems

        // `ip netns exec` mounts a fresh /sys without the cgroup2 hierarchy: mount it there (in ip's private
        // mount namespace, gone with it) for the eBPF tracer's scope, as a host's /sys/fs/cgroup would be.
        let cgroupMount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"$@\""
        let run = try lab.run(in: .host, ["/bin/sh", "-c", cgroupMount, "sh", "env", "LEARN_TEST_TOKEN=hush", "LEARN_PASSED_TOKEN=ok",
                                          Products.cagent, "learn", "--user", String(SandboxFixture.agentUID),
                                          "--home", fixture.home, "--state-dir", fixture.state, "--db", database,
                                          "--workspace", fixture.workspace, "--tracer", tracer, "--env", "LEARN_PASSED_TOKEN",
                                          "--", "/bin/sh", fixture.workspace + "/agent.sh"], timeout: 120)
        let results = fixture.read(fixture.workspace + "/results.txt") ?? ""
        #expect(run.status == 0, "cagent learn failed: \(run.stderr)")
        #expect(results.contains("done"), "the agent did not finish: \(results)\n\(run.stderr)")
        // The live view: DNS open notice, domains, the direct IP, the secret attempt, the session id.
        #expect(run.stderr.contains("DNS is open while learning"))
        for line in ["domain www.allowed.test", "domain assets.allowed.test", "direct-ip tcp 203.0.113.13:80", "secret ~/.ssh"] {
            #expect(run.stderr.contains(line), "live view lacks \(line): \(run.stderr)")
        }
        // The SNI-named TLS flow is not called a direct IP (its SYN came before its ClientHello), nor counted as one.
        #expect(!run.stderr.contains("direct-ip tcp \(NetlabAddresses.web4):443"), "\(run.stderr)")
        #expect(run.stderr.contains("1 direct-IP flows") && run.stderr.contains("bind tcp 127.0.0.1:\(Self.listenPort) by python3"),
                "\(run.stderr)")
        // What the agent saw.
        #expect(results.contains("secret=hidden"))
        #expect(results.contains("homewrite=ok"))
        #expect(results.contains("optwrite=refused"))
        #expect(results.contains("useroptwrite=ok"), "a user-owned host directory was not writable: \(results)")
        #expect(!FileSystem.exists(fixture.userOpt + "/x"), "the write reached the host")
        #expect(results.contains("sharedwrite=ok"), "a world-writable host directory was not writable: \(results)")
        #expect(!FileSystem.exists(fixture.sharedOpt + "/x"), "the write reached the host")
        for name in ["www.allowed.test", "api.allowed.test", "assets.allowed.test", "203.0.113.13"] {
            #expect(results.contains("web=\(name)"), "\(name) unreachable while learning: \(results)")
        }
        #expect(!results.contains("metadata=reached") && !results.contains("host=reached") && !results.contains("lan=reached"), "\(results)")
        // Control: the same requests from the simulated host, without cagent, are answered.
        for (_, address) in forbidden {
            let control = try lab.run(in: .host, ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", "http://\(address)/"])
            #expect(control.stdout == "200", "control: nothing answers at \(address): \(control)")
        }
        #expect(!results.contains("socket="), "host sockets visible: \(results)")
        // The control: the same test outside the sandbox, as the agent's user, finds the planted sockets.
        for socketPath in fixture.plantedSockets {
            let outside = try Netlab.execute(["setpriv", "--reuid=\(SandboxFixture.agentUID)", "--regid=\(SandboxFixture.agentUID)", "--clear-groups",
                                              "/bin/sh", "-c", "[ -e \"$0\" ] && echo seen", socketPath], timeout: 10)
            #expect(outside.stdout.contains("seen"), "control: \(socketPath) not visible outside: \(outside.stderr)")
        }
        #expect(!results.contains("env=token") && results.contains("env=passed"))
        #expect(results.contains("tls=sent") && results.contains("listen=ok"), "\(results)")

        // The host outside the workspace is unchanged: nothing newer than the marker in the fake home, no
        // /opt file; the home write went to the (removed) scratch layer.
        let changed = try Netlab.execute(["find", fixture.home, fixture.userOpt, fixture.sharedOpt, "-newer", marker], timeout: 10).stdout
        #expect(changed.isEmpty, "host home changed: \(changed)")
        #expect(!FileSystem.exists(fixture.refusedOpt))
        #expect(!FileSystem.exists(fixture.home + "/written-by-agent"))
        #expect(FileSystem.list(fixture.state + "/scratch").isEmpty, "scratch layer not removed")

        // Every exit path tears the network down: no session interface or chain left in the simulated host.
        let links = try lab.run(in: .host, ["ip", "-o", "link"]).stdout
        #expect(!links.contains("cgs"), "session interface left behind: \(links)")
        let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"]).stdout
        #expect(NftLeftovers.find(ruleset: ruleset).isEmpty, "session chains left behind: \(ruleset)")

        // The record.
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        #expect(report.status == 0, "\(report.stderr)")
        let json = report.stdout
        // Explicit noise list: facts we require; anything else in the report (the shell's own reads of
        // /usr, /etc, ld.so, locale files, curl's CA bundle) is accepted as noise.
        let facts = [
            "\"kind\":\"learn\"",
            "www.allowed.test", "api.allowed.test", "assets.allowed.test", "edge.cdn.test",   // names, the CNAME chain
            "203.0.113.13",                                                                    // the bare IP
            "198.51.100.8",                                                                    // the bypassing query
            "dns-bypass", "direct-ip", "secret-access",                                        // findings
            fixture.workspace + "/README",                                                     // workspace read
            "/.config/tool/config",                                                            // config read
            "/nonexistent-cagent-learn-file",                                                  // missing file
            "/.ssh/id_rsa",                                                                    // hidden secret
            fixture.refusedOpt,                                                                // write outside
            "/written-by-agent",                                                               // scratch write
            fixture.userOpt + "/x",                                                            // scratch write outside home
            fixture.sharedOpt + "/x",                                                          // scratch write, world-writable dir
            "169.254.169.254",                                                                 // metadata, blocked
        ]
        for fact in facts {
            #expect(json.replacingOccurrences(of: " ", with: "").contains(fact.replacingOccurrences(of: " ", with: "")),
                    "report lacks \(fact)")
        }
        #expect(json.contains("\"blocked\""))
        try Self.checkFlowsAndBinds(json, tracer: tracer)
        #expect(json.contains("/bin/sh") || json.contains("/usr/bin/sh") || json.contains("dash"))   // the child process
        if ProcessEnvironment.current["CAGENT_LEARN_DEBUG"] != nil {
            print("learn stderr:\n\(run.stderr)\nresults:\n\(results)\nreport:\n\(json.prefix(400000))")
        }
    }
}
