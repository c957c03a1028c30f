import CagentCore
import Foundation
import Netlab
import Testing

/// `--publish PORT` and `--proxy URL` in rootless mode (issue #18): the same checks as PublishTests and
/// FilteringProxyTests, but cagent is started by a plain user the test creates (setpriv, a clean environment)
/// in the netlab's simulated host. The relay's sockets and the filtering proxy's listener are made inside the
/// sandbox's network namespace by a helper that joins it (cg_netns_sockets); nothing of the host's but
/// 127.0.0.1:PORT answers for the sandbox.
@Suite("Rootless --publish and --proxy as a plain user", .serialized)
struct RootlessServicesTests {
    static let port = 8086

    /// `argv` as the plain user in the lab's host namespace, with `environment` besides PATH/HOME/USER.
    static func asUserInLab(_ lab: Netlab, _ world: RootlessEnforceTests.World, _ argv: [String],
                            environment: [String] = []) -> [String] {
        ["ip", "netns", "exec", lab.hostNamespace, "/usr/bin/setpriv", "--reuid", String(world.user.uid),
         "--regid", String(world.user.gid), "--clear-groups", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
         "HOME=\(world.home)", "USER=\(world.user.name)"] + environment + argv
    }

    @Test("rootless --publish: the host's 127.0.0.1:PORT reaches the agent's listener, PORT+1 does not; without --publish nothing does",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "curl", "dnsmasq", "tcpdump", "python3"]),
                   "root: creates the test user and the netlab"))
    func publishedPortOnly() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try RootlessEnforceTests.World(); defer { world.remove() }
        let profile = world.root + "/p.yaml"
        try "cagent: 1\nagent: test\n".write(toFile: profile, atomically: false, encoding: .utf8)
        chmod(profile, 0o644)
        let agent = """
            import os, socket, time
            P = \(Self.port)
            listeners = []
            for port in (P, P + 1):
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", port)); s.listen(4)
                listeners.append(s)
            c = socket.create_connection(("127.0.0.1", P + 1), 3); print("inside-other-open", flush=True); c.close()
            open("ready", "w").close()
            listeners[0].settimeout(0.1)
            deadline = time.time() + 30
            while not os.path.exists("done") and time.time() < deadline:
                try:
                    conn, _ = listeners[0].accept()
                except socket.timeout:
                    continue
                request = conn.recv(4096).decode()
                conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\ngot " + request.split()[1].encode())
                conn.close()
                print("served", flush=True)
            print("agent-done", flush=True)
            """
        try agent.write(toFile: world.workspace + "/agent.py", atomically: false, encoding: .utf8)
        chmod(world.workspace + "/agent.py", 0o644)

        func session(_ extra: [String], probe: () throws -> Void) throws -> (status: Int32, out: String, err: String) {
            for name in ["ready", "done"] { unlink(world.workspace + "/" + name) }
            let tag = UInt32.random(in: 0...UInt32.max)
            let out = world.root + "/out-\(tag)", err = world.root + "/err-\(tag)"
            let process = try SpawnedProcess.start(
                Self.asUserInLab(lab, world, [Products.cagent, "enforce", "--profile", profile, "--workspace", world.workspace,
                                              "--upstream-dns", NetlabAddresses.dns4] + extra + ["--", "/usr/bin/python3", "agent.py"]),
                stdout: out, stderr: err)
            let deadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: world.workspace + "/ready") && Date() < deadline { usleep(50_000) }
            try probe()
            _ = FileManager.default.createFile(atPath: world.workspace + "/done", contents: nil)
            let status = process.wait(timeout: 60)
            let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
            return (status, read(out), read(err))
        }
        func curl(_ port: Int) throws -> Netlab.Output {
            try lab.run(in: .host, ["curl", "-sS", "-m", "3", "http://127.0.0.1:\(port)/callback?code=abc"])
        }

        for extra in [["--publish", String(Self.port)], ["--offline", "--publish", String(Self.port)]] {
            var callback: Netlab.Output?, other: Netlab.Output?
            var uplinks: [(pid: Int32, seccomp: String?)] = []
            let published = try session(extra) {
                callback = try curl(Self.port)
                other = try curl(Self.port + 1)
                uplinks = Self.uplinks(uid: world.user.uid)
            }
            if extra.contains("--offline") {
                #expect(uplinks.isEmpty, "offline: no uplink process: \(uplinks)")
            } else {
                // slirp4netns parses the agent's packets outside the sandbox: it runs under its seccomp filter.
                #expect(uplinks.count == 1 && uplinks.allSatisfy { $0.seccomp == "2" }, "the uplink runs confined: \(uplinks)")
            }
            let label = extra.joined(separator: " ")
            #expect(published.status == 0, "\(label): \(published.out) \(published.err)")
            #expect(published.err.contains("cagent: --publish: 127.0.0.1:\(Self.port) on this host reaches the sandbox's localhost:\(Self.port)"), "\(label): \(published.err)")
            #expect(published.out.contains("inside-other-open") && published.out.contains("served"), "\(label): \(published.out) \(published.err)")
            #expect(callback?.stdout == "got /callback?code=abc", "\(label): \(String(describing: callback))")
            // The other port the agent listens on stays unreachable from the host (curl 7: connection refused).
            #expect(other?.status == 7 && other?.stdout == "", "\(label): \(String(describing: other))")
        }

        // Control: without --publish the callback port is unreachable from the host.
        var unpublished: Netlab.Output?
        let plain = try session([]) { unpublished = try curl(Self.port) }
        #expect(plain.out.contains("inside-other-open") && plain.out.contains("agent-done") && !plain.out.contains("served"), "\(plain.out) \(plain.err)")
        #expect(unpublished?.status == 7, "\(String(describing: unpublished))")
    }

    /// The user's slirp4netns processes: pid and the Seccomp mode of /proc/PID/status.
    static func uplinks(uid: UInt32) -> [(pid: Int32, seccomp: String?)] {
        var found: [(pid: Int32, seccomp: String?)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == "slirp4netns",
                  let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8),
                  status.contains("\nUid:\t\(uid)\t") else { continue }
            let seccomp = status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }.map { String($0.split(separator: "\t").last ?? "") }
            found.append((pid, seccomp))
        }
        return found
    }

    @Test("rootless --proxy: the profile's host passes cagent's filtering proxy, another host, a smuggled Host header and a direct connection do not",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "curl", "dnsmasq", "tcpdump", "python3", "tinyproxy"]),
                   "root: creates the test user and the netlab; tinyproxy"))
    func filteringProxy() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try RootlessEnforceTests.World(); defer { world.remove() }
        let proxyAddress = NetlabAddresses.web3
        // tinyproxy resolves through the lab's DNS server (the lab's shutdown removes /etc/netns/<its namespaces>).
        let etc = "/etc/netns/\(lab.namespace(.internet))"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        try "nameserver \(NetlabAddresses.dns4)\n".write(toFile: etc + "/resolv.conf", atomically: true, encoding: .utf8)
        let config = world.root + "/tinyproxy.conf", proxyLog = world.root + "/tinyproxy.log"
        try "Port 3128\nListen \(proxyAddress)\nUser nobody\nGroup nogroup\nTimeout 10\nMaxClients 8\nLogLevel Connect\nLogFile \"\(proxyLog)\"\n"
            .write(toFile: config, atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: proxyLog, contents: nil)
        _ = chown(proxyLog, 65534, 65534)
        try lab.spawn(in: .internet, ["tinyproxy", "-d", "-c", config])
        var listening = false
        for _ in 0..<50 where !listening {
            listening = try lab.run(in: .host, ["curl", "-s", "-m", "1", "-o", "/dev/null", "http://\(proxyAddress):3128/"]).status == 0
            if !listening { usleep(100_000) }
        }
        #expect(listening, "tinyproxy did not start listening")
        let upstream = "http://\(proxyAddress):3128"
        let profile = world.root + "/web.yaml"
        try "cagent: 1\nnetwork:\n  domains: [www.allowed.test]\n".write(toFile: profile, atomically: false, encoding: .utf8)
        chmod(profile, 0o644)
        let script = """
            echo "proxy=$HTTPS_PROXY no_proxy=${NO_PROXY:-unset}"
            curl -sS -m 5 -p --proxy "$HTTPS_PROXY" -o /dev/null -w 'connect-allowed %{http_code}\\n' http://www.allowed.test:443/rl-connect-allowed || echo connect-allowed-failed
            curl -sS -m 5 --proxy "$HTTP_PROXY" -o /dev/null -w 'absolute-allowed %{http_code}\\n' http://www.allowed.test/rl-absolute-allowed || echo absolute-allowed-failed
            curl -sS -m 5 -p --proxy "$HTTPS_PROXY" -o /dev/null -w 'connect-forbidden %{http_connect}\\n' http://api.allowed.test:443/rl-connect-forbidden || true
            curl -sS -m 5 --proxy "$HTTP_PROXY" -o /dev/null -w 'absolute-forbidden %{http_code}\\n' http://api.allowed.test/rl-absolute-forbidden || echo absolute-forbidden-failed
            curl -sS -m 5 --proxy "$HTTP_PROXY" -H 'Host: api.allowed.test' -o /dev/null -w 'smuggle %{http_code}\\n' http://www.allowed.test/rl-smuggle || echo smuggle-failed
            curl -sS -m 5 --noproxy '*' -o /dev/null -w 'direct %{http_code}\\n' http://\(NetlabAddresses.web2)/rl-direct || echo direct-failed
            curl -sS -m 5 --noproxy '*' -o /dev/null -w 'upstream-direct %{http_code}\\n' \(upstream)/ || echo upstream-direct-failed
            dig +time=2 +tries=1 +short www.allowed.test | sed 's/^/answer /'
            """
        func enforce(_ profile: String, _ extra: [String], _ script: String) throws -> Netlab.Output {
            try Netlab.execute(Self.asUserInLab(lab, world, [Products.cagent, "enforce", "--profile", profile, "--workspace", world.workspace,
                                                             "--upstream-dns", NetlabAddresses.dns4] + extra + ["--", "/bin/sh", "-c", script],
                                                environment: ["http_proxy=\(upstream)", "NO_PROXY=api.allowed.test"]),
                               timeout: 90)
        }
        let run = try enforce(profile, ["--proxy", upstream], script)
        let out = run.stdout, err = run.stderr
        #expect(run.status == 0, "\(out) \(err)")
        #expect(out.contains("proxy=http://127.0.0.1:") && out.contains("no_proxy=unset"), "out: \(out) err: \(err)")
        #expect(out.contains("connect-allowed 200"), "out: \(out) err: \(err)")
        #expect(out.contains("absolute-allowed 200"), "out: \(out) err: \(err)")
        #expect(out.contains("connect-forbidden 403"), "out: \(out) err: \(err)")
        #expect(out.contains("absolute-forbidden 403"), "out: \(out) err: \(err)")
        #expect(out.contains("smuggle 403"), "out: \(out) err: \(err)")
        #expect(out.contains("direct-failed") || out.contains("direct 000"), "out: \(out)")
        #expect(out.contains("upstream-direct-failed") || out.contains("upstream-direct 000"), "the upstream proxy itself is not reachable around cagent's: \(out)")
        #expect(!out.contains("answer "), "proxy mode resolves no name for the agent: \(out)")
        #expect(err.contains("cagent: refused proxy CONNECT api.allowed.test:443 (not in profile)"), "\(err)")
        #expect(err.contains("cagent: refused proxy request GET api.allowed.test:80 (not in profile)"), "\(err)")
        #expect(err.contains("cagent: refused proxy request GET www.allowed.test:80 (Host header api.allowed.test differs from the target)"), "\(err)")
        #expect(err.contains("cagent: blocked tcp \(NetlabAddresses.web2):80"), "\(err)")
        #expect(err.contains("cagent: proxy: 2 forwarded, 3 refused"), "\(err)")

        let web = lab.webRequests()
        #expect(web.contains { $0.hasSuffix(" /rl-connect-allowed") } && web.contains { $0.hasSuffix(" /rl-absolute-allowed") }, "\(web)")
        let log = FileSystem.readText(proxyLog) ?? ""
        #expect(log.contains("www.allowed.test"), "tinyproxy saw nothing: \(log)")
        for path in ["rl-connect-forbidden", "rl-absolute-forbidden", "rl-smuggle", "rl-direct"] {
            #expect(!web.contains { $0.contains(path) }, "\(path) reached the web server: \(web)")
        }
        #expect(!log.contains("api.allowed.test"), "a refused target reached tinyproxy: \(log)")

        // Control: the forbidden fetch handed straight to tinyproxy (its endpoint allowed, --allow-proxy) reaches the host.
        let open = world.root + "/open.yaml"
        try "cagent: 1\nnetwork:\n  endpoints: [\"\(proxyAddress):3128/tcp\"]\nenv:\n  pass: [http_proxy]\n".write(toFile: open, atomically: false, encoding: .utf8)
        chmod(open, 0o644)
        let control = try enforce(open, ["--allow-proxy"],
                                  "curl -sS -m 5 -o /dev/null -w 'control %{http_code}\\n' http://api.allowed.test/rl-absolute-forbidden || echo control-failed")
        #expect(control.stdout.contains("control 200"), "out: \(control.stdout) err: \(control.stderr)")
        #expect(lab.webRequests().contains { $0.hasSuffix(" /rl-absolute-forbidden") })

        // Fail closed: the proxy's stage failing stops the start (125, the agent never ran).
        let failed = try enforce(profile, ["--proxy", upstream, "--fail-at-stage", "proxy"], "echo agent-ran")
        #expect(failed.status == 125 && !failed.stdout.contains("agent-ran") && failed.stderr.contains("proxy"), "\(failed)")
    }

    /// IPv6 through slirp4netns (`--enable-ipv6`): the allowlist holds for IPv6 as for IPv4, inside the sandbox's
    /// namespace (the gate answers AAAA for the profile's names and pins them into the v6 set; everything else
    /// is dropped and shown).
    @Test("rootless IPv6: an allowed name over IPv6 works; literal IPv6 addresses, IPv6 resolvers and the stack's IPv6 gateway reach nothing",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "dig", "curl", "dnsmasq", "tcpdump"]),
                   "root: creates the test user and the netlab"))
    func ipv6() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try RootlessEnforceTests.World(); defer { world.remove() }
        let profile = world.root + "/v6.yaml"
        try "cagent: 1\nagent: rootless-v6\nextends: [base]\nnetwork:\n  domains: [www.allowed.test]\n".write(toFile: profile, atomically: false, encoding: .utf8)
        chmod(profile, 0o644)
        let a = NetlabAddresses.self
        let script = """
        /usr/sbin/ip -6 addr show dev tap0 | grep -q 'fd00::' && echo has-v6
        curl -6 -sS -m 5 -o /dev/null -w 'www6 %{http_code}\\n' http://www.allowed.test/ || echo www6-failed
        curl -sS -m 5 -o /dev/null -g 'http://[\(a.attacker6)]/' 2>/dev/null || echo attacker6-failed
        curl -sS -m 5 -o /dev/null -g 'http://[\(a.web2v6)]/' 2>/dev/null || echo web2v6-failed
        curl -sS -m 3 -o /dev/null -g 'http://[fd00::2]:22/' 2>/dev/null || echo gateway6-failed
        dig +time=2 +tries=1 +short AAAA x6.attacker.test | grep -v '^;' | sed 's/^/answer /'
        dig @\(a.publicResolver6) +time=2 +tries=1 +short x7.attacker.test | grep -v '^;' | sed 's/^/answer /'
        dig @\(a.dns6) +time=2 +tries=1 +short x8.attacker.test | grep -v '^;' | sed 's/^/answer /'
        ping -6 -c 1 -W 2 \(a.attacker6) >/dev/null 2>&1 || echo ping6-failed
        """
        let argv = RootlessServicesTests.asUserInLab(lab, world, [Products.cagent, "enforce", "--profile", profile, "--workspace", world.workspace,
                                                                  "--upstream-dns", a.dns4, "--", "/bin/sh", "-c", script])
        let run = try Netlab.execute(argv, timeout: 90)
        let out = run.stdout, err = run.stderr
        #expect(run.status == 0, "\(err)")
        #expect(out.contains("has-v6"), "the sandbox has an IPv6 uplink: \(out) \(err)")
        #expect(out.contains("www6 200"), "the allowed name works over IPv6: \(out) \(err)")
        for marker in ["attacker6-failed", "web2v6-failed", "gateway6-failed", "ping6-failed"] {
            #expect(out.contains(marker), "\(marker): \(out)")
        }
        #expect(!out.contains("answer "), "no attacker name resolved: \(out)")
        #expect(err.contains("cagent: blocked tcp") && err.contains(a.attacker6), "the IPv6 drop is shown live: \(err)")
        let seen = lab.sinkRecords().filter { $0.contains(a.attacker6) || $0.contains(a.publicResolver6) }
        #expect(seen.isEmpty, "the sink saw the sandbox over IPv6: \(seen)")
        for name in ["x6.attacker.test", "x7.attacker.test", "x8.attacker.test"] {
            #expect(lab.dnsQueries(containing: name).isEmpty, "the DNS server saw \(name)")
        }
        #expect(!lab.webRequests().isEmpty, "the web server logged the allowed request")

        // Controls: the same user from the simulated host reaches the attacker over IPv6, and the DNS server logs its query.
        let asUser = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups"]
        _ = try lab.run(in: .host, asUser + ["curl", "-sS", "-m", "3", "-o", "/dev/null", "-g", "http://[\(a.attacker6)]/"])
        _ = try lab.run(in: .host, asUser + ["dig", "+time=2", "+tries=1", "@\(a.dns6)", "x8.attacker.test"])
        #expect(lab.sinkRecords().contains { $0.contains(a.attacker6) }, "control: the sink records a direct IPv6 connection")
        #expect(!lab.dnsQueries(containing: "x8.attacker.test").isEmpty, "control: the DNS log records the IPv6 query")
    }
}
