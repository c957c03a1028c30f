import CagentCore
import CagentSandbox
import Foundation
import Netlab
import Testing

/// `cagent enforce --proxy URL` (issue #15 item 7), with a real upstream proxy (tinyproxy) in the simulated
/// internet: the agent's HTTP(S)_PROXY name cagent's filtering proxy, which lets the profile's host through
/// and refuses another (named in the denial line, nothing reaches the upstream proxy or the web server), while
/// the same fetch passed straight to tinyproxy with `--allow-proxy` does reach it (the control). A direct
/// connection around the proxy is blocked by the firewall; a Host header naming another host is refused.
@Suite(.serialized) struct FilteringProxyTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "tcpdump", "python3", "tinyproxy"]
    static let proxyAddress = NetlabAddresses.web3

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, the netlab's tools and tinyproxy"))
    func onlyTheProfilesHostsPassTheProxy() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        // tinyproxy resolves the targets: through the lab's DNS server, never the machine's resolver (the lab's
        // shutdown removes /etc/netns/<its namespaces>).
        let etc = "/etc/netns/\(lab.namespace(.internet))"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        try "nameserver \(NetlabAddresses.dns4)\n".write(toFile: etc + "/resolv.conf", atomically: true, encoding: .utf8)
        let config = world.root + "/tinyproxy.conf"
        let proxyLog = world.root + "/tinyproxy.log"
        try world.write(config, "Port 3128\nListen \(Self.proxyAddress)\nUser nobody\nGroup nogroup\nTimeout 10\nMaxClients 8\nLogLevel Connect\nLogFile \"\(proxyLog)\"\n", owner: 0)
        _ = chmod(world.root, 0o755)
        _ = FileManager.default.createFile(atPath: proxyLog, contents: nil)
        _ = chown(proxyLog, 65534, 65534)
        try lab.spawn(in: .internet, ["tinyproxy", "-d", "-c", config])
        try waitForPort(lab)
        let upstream = "http://\(Self.proxyAddress):3128"

        let profile = world.root + "/web.yaml"
        try world.write(profile, "cagent: 1\nnetwork:\n  domains: [www.allowed.test]\n", owner: 0)
        let script = """
            echo "proxy=$HTTPS_PROXY no_proxy=${NO_PROXY:-unset}"
            curl -sS -m 5 -p --proxy "$HTTPS_PROXY" -o /dev/null -w 'connect-allowed %{http_code}\\n' http://www.allowed.test:443/cp-connect-allowed || echo connect-allowed-failed
            curl -sS -m 5 --proxy "$HTTP_PROXY" -o /dev/null -w 'absolute-allowed %{http_code}\\n' http://www.allowed.test/cp-absolute-allowed || echo absolute-allowed-failed
            curl -sS -m 5 -p --proxy "$HTTPS_PROXY" -o /dev/null -w 'connect-forbidden %{http_connect}\\n' http://api.allowed.test:443/cp-connect-forbidden || true
            curl -sS -m 5 --proxy "$HTTP_PROXY" -o /dev/null -w 'absolute-forbidden %{http_code}\\n' http://api.allowed.test/cp-absolute-forbidden || echo absolute-forbidden-failed
            curl -sS -m 5 --proxy "$HTTP_PROXY" -H 'Host: api.allowed.test' -o /dev/null -w 'smuggle %{http_code}\\n' http://www.allowed.test/cp-smuggle || echo smuggle-failed
            curl -sS -m 5 --noproxy '*' -o /dev/null -w 'direct %{http_code}\\n' http://\(NetlabAddresses.web2)/cp-direct || echo direct-failed
            python3 -c 'import os,socket,urllib.parse as u; p=u.urlparse(os.environ["HTTP_PROXY"]); s=socket.create_connection((p.hostname,p.port),5); s.sendall(b"\\x00\\xff GARBAGE\\r\\n\\r\\n"); print("garbage", s.recv(100).split(b"\\r\\n")[0].decode())' || echo garbage-failed
            curl -sS -m 5 --proxy "$HTTP_PROXY" -o /dev/null -w 'after-garbage %{http_code}\\n' http://www.allowed.test/cp-after-garbage || echo after-garbage-failed
            """
        func enforce(_ profile: String, _ extra: [String], _ script: String) throws -> Netlab.Output {
            try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4] + extra + ["--", "/bin/sh", "-c", script],
                timeout: 90, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home,
                                           "CAGENT_RUNTIME_DIR": world.root + "/run",
                                           "http_proxy": upstream, "NO_PROXY": "api.allowed.test"])
        }
        let run = try enforce(profile, ["--proxy", upstream], script)
        let out = run.stdout, err = run.stderr
        #expect(out.contains("proxy=http://") && out.contains("no_proxy=unset"), "out: \(out) err: \(err)")
        #expect(out.contains("connect-allowed 200"), "out: \(out) err: \(err)")
        #expect(out.contains("absolute-allowed 200"), "out: \(out) err: \(err)")
        #expect(out.contains("connect-forbidden 403"), "out: \(out) err: \(err)")
        #expect(out.contains("absolute-forbidden 403"), "out: \(out) err: \(err)")
        #expect(out.contains("smuggle 403"), "out: \(out) err: \(err)")
        #expect(out.contains("direct-failed") || out.contains("direct 000"), "out: \(out)")
        #expect(out.contains("garbage HTTP/1.1 400"), "out: \(out) err: \(err)")
        #expect(out.contains("after-garbage 200"), "the proxy died of a malformed request: \(out) \(err)")
        #expect(err.contains("cagent: refused proxy CONNECT api.allowed.test:443 (not in profile)"), "\(err)")
        #expect(err.contains("cagent: refused proxy request GET api.allowed.test:80 (not in profile)"), "\(err)")
        #expect(err.contains("cagent: refused proxy request GET www.allowed.test:80 (Host header api.allowed.test differs from the target)"), "\(err)")
        #expect(err.contains("cagent: blocked tcp \(NetlabAddresses.web2):80"), "\(err)")
        #expect(err.contains("cagent: proxy: 3 forwarded, 4 refused"), "\(err)")

        // The allowed fetches reached the web server through tinyproxy; the refused ones reached neither.
        let web = lab.webRequests()
        #expect(web.contains { $0.hasSuffix(" /cp-connect-allowed") } && web.contains { $0.hasSuffix(" /cp-absolute-allowed") }, "\(web)")
        let log = FileSystem.readText(proxyLog) ?? ""
        #expect(log.contains("www.allowed.test"), "tinyproxy saw nothing: \(log)")
        for path in ["cp-connect-forbidden", "cp-absolute-forbidden", "cp-smuggle", "cp-direct"] {
            #expect(!web.contains { $0.contains(path) }, "\(path) reached the web server: \(web)")
        }
        #expect(!log.contains("api.allowed.test"), "a refused target reached tinyproxy: \(log)")

        // The control: the same forbidden fetch handed straight to tinyproxy (--allow-proxy, its endpoint
        // allowed) does reach the host — what the filtering proxy refused was reachable.
        let open = world.root + "/open.yaml"
        try world.write(open, "cagent: 1\nnetwork:\n  endpoints: [\"\(Self.proxyAddress):3128/tcp\"]\nenv:\n  pass: [http_proxy]\n", owner: 0)
        let control = try enforce(open, ["--allow-proxy"],
                                  "curl -sS -m 5 -o /dev/null -w 'control %{http_code}\\n' http://api.allowed.test/cp-absolute-forbidden || echo control-failed")
        #expect(control.stdout.contains("control 200"), "out: \(control.stdout) err: \(control.stderr)")
        #expect(lab.webRequests().contains { $0.hasSuffix(" /cp-absolute-forbidden") })
        #expect((FileSystem.readText(proxyLog) ?? "").contains("api.allowed.test"))

        // Fail closed: the proxy's stage failing stops the start (125, the stage named, the agent never ran).
        let failed = try enforce(profile, ["--proxy", upstream, "--fail-at-stage", "proxy"], "echo agent-ran")
        #expect(failed.status == 125 && !failed.stdout.contains("agent-ran") && failed.stderr.contains("proxy"), "\(failed)")
        // A bad URL stops it before any sandbox exists.
        let bad = try enforce(profile, ["--proxy", "socks5://\(Self.proxyAddress):1080"], "echo agent-ran")
        #expect(bad.status == 125 && !bad.stdout.contains("agent-ran") && bad.stderr.contains("only http:// proxies"), "\(bad)")
    }

    private func waitForPort(_ lab: Netlab) throws {
        for _ in 0..<50 {
            if try lab.run(in: .host, ["curl", "-s", "-m", "1", "-o", "/dev/null", "http://\(Self.proxyAddress):3128/"]).status == 0 { return }
            usleep(100_000)
        }
        Issue.record("tinyproxy did not start listening")
    }
}

/// The agent's environment under `--proxy` (pure): every proxy variable and the no_proxy exclusions replaced
/// by the filtering proxy's URL; HOME stays last.
@Suite struct FilteringProxyEnvironmentTests {
    @Test func proxyVariablesAreReplaced() {
        let entries = ["NO_PROXY=api.allowed.test", "PATH=/usr/bin", "all_proxy=socks5://p:1080", "https_proxy=http://up:3128", "HOME=/home/u"]
        let url = "http://100.72.0.1:13128"
        #expect(AgentEnvironment.withFilteringProxy(entries, url: url) == [
            "PATH=/usr/bin", "HTTPS_PROXY=\(url)", "HTTP_PROXY=\(url)", "http_proxy=\(url)", "https_proxy=\(url)", "HOME=/home/u"])
    }
}
