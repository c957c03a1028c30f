import CagentCore
import Foundation
import Netlab
import Testing

/// Rootless learn (issue #18): `cagent learn` run by a plain user the test creates (setpriv, no groups, a clean
/// environment), in the netlab's simulated host. The held-out-style workload of the learn tests (a name
/// resolved and connected to, a bare IP, files read, programs executed) must land in the user's own store;
/// the real `~/.ssh` stays invisible, and the host's own addresses, the LAN, metadata and the user-mode stack's
/// host loopback stay out of reach, each with its control outside cagent.
@Suite("Rootless learn as a plain user", .serialized)
struct RootlessLearnTests {
    typealias World = RootlessEnforceTests.World

    /// What the agent does; each `key=value` line is a probe (a probe that did not run leaves its key absent).
    static let workload = #"""
    cat README > /dev/null && echo "readme=read"
    cat "$HOME/.config/tool/config" > /dev/null && echo "config=read"
    if cat "$HOME/.ssh/id_rsa" 2>/dev/null; then echo "ssh=READ"; else echo "ssh=hidden"; fi
    echo "www=$(curl -s -o /dev/null -m 5 -w '%{http_code}' http://www.allowed.test/)"
    echo "api=$(curl -s -o /dev/null -m 5 -w '%{http_code}' http://api.allowed.test/)"
    echo "bare=$(curl -s -o /dev/null -m 5 -w '%{http_code}' http://203.0.113.13/)"
    /usr/bin/id -u > /dev/null && echo "id=ran"
    python3 hello.py > /dev/null 2>&1 && echo "tls=sent"
    sh -c 'echo child' > /dev/null
    echo "metadata=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://169.254.169.254/)"
    echo "host=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://198.18.0.2/)"
    echo "lan=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://10.9.8.7/)"
    echo "hostloop=$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://10.0.2.2:80/)"
    /usr/sbin/nft flush ruleset 2>/dev/null; echo "nft-flush=$?"
    echo "own=$(ls -A "$HOME/.local/share/cagent" 2>/dev/null | wc -l)"
    echo "done=yes"
    """#

    @Test("a plain user in the netlab: rootless learn records domains, flows, files and execs in the user's store; ~/.ssh, the host and the LAN stay out of reach",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "curl", "dnsmasq", "python3"]),
                   "root: creates the test user and the netlab"))
    func plainUserLearns() throws { try learn(forced: false) }

    /// `--rootless` as root (tests, benchmarks): cagent becomes the user first; the same record.
    @Test("--rootless as root: cagent becomes the user first, the same record in the user's store",
          .enabled(if: Requirements.mayRun(root: true, tools: ["useradd", "slirp4netns", "curl", "dnsmasq", "python3"]),
                   "root: creates the test user and the netlab"))
    func forcedAsRoot() throws { try learn(forced: true) }

    func learn(forced: Bool) throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try World(); defer { world.remove() }
        try "readme\n".write(toFile: world.workspace + "/README", atomically: false, encoding: .utf8)
        try LearnCommandTests.helloScript.write(toFile: world.workspace + "/hello.py", atomically: false, encoding: .utf8)
        mkdir(world.home + "/.config", 0o755); mkdir(world.home + "/.config/tool", 0o755)
        try "setting = 1\n".write(toFile: world.home + "/.config/tool/config", atomically: false, encoding: .utf8)
        for path in [world.workspace + "/README", world.workspace + "/hello.py", world.home + "/.config", world.home + "/.config/tool",
                     world.home + "/.config/tool/config"] {
            chown(path, world.user.uid, world.user.gid)
        }
        // What learn keeps out of reach answers without cagent: metadata and a LAN neighbour in the internet, a web
        // server on the simulated host's own address.
        let forbidden = [(Netlab.Side.internet, "169.254.169.254"), (.internet, "10.9.8.7"), (.host, NetlabAddresses.host4)]
        for (side, address) in forbidden {
            if side == .internet { #expect(try lab.run(in: side, ["ip", "addr", "add", address + "/32", "dev", "lo"]).succeeded) }
            _ = try lab.spawn(in: side, ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", address, "80"], readyOnStdout: "Serving HTTP")
        }
        // ... and on the simulated host's loopback (what slirp4netns's 10.0.2.2 would map to if it were on).
        _ = try lab.spawn(in: .host, ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "80"], readyOnStdout: "Serving HTTP")

        let agent = ["--workspace", world.workspace, "--", "/bin/sh", "-c", "cd \(world.workspace) && " + Self.workload]
        let asPlainUser = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups",
                           "/usr/bin/env", "-i", "PATH=/usr/bin:/bin:/usr/sbin", "HOME=\(world.home)", "USER=\(world.user.name)",
                           Products.cagent, "learn"]
        let asRoot = ["/usr/bin/env", "PATH=/usr/bin:/bin:/usr/sbin", Products.cagent, "learn", "--rootless", "--user", String(world.user.uid),
                      "--home", world.home]
        let argv = ["ip", "netns", "exec", lab.hostNamespace] + (forced ? asRoot : asPlainUser) + agent
        let outcome = try RootlessEnforceTests.run(argv, world: world)
        let out = outcome.output, err = outcome.error
        let found = RootlessEnforceTests.values(out)
        #expect(outcome.status == 0, "cagent learn as a plain user failed: \(err)")
        #expect(found["done"] == "yes", "the workload did not finish: \(out) \(err)")
        #expect(err.contains("rootless: tracing with seccomp-notify"), "the start says which tracer and why: \(err)")
        #expect(found["readme"] == "read" && found["config"] == "read" && found["id"] == "ran" && found["tls"] == "sent", "\(out)")
        #expect(found["ssh"] == "hidden", "the real ~/.ssh is invisible: \(out)")
        #expect(found["www"] == "200" && found["api"] == "200" && found["bare"] == "200", "egress is open while learning: \(out) \(err)")
        for key in ["metadata", "host", "lan", "hostloop"] {
            #expect(found[key].map { $0 != "200" } == true, "\(key) must stay out of reach: \(out)")
        }
        #expect(found["nft-flush"].map { $0 != "0" } == true, "the agent cannot change its namespace's ruleset: \(out)")
        // cagent's own places (the store, the scratch layers under it) are covered; the control: on the host they hold both.
        #expect(found["own"] == "0", "the agent sees cagent's data directory: \(out)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: world.home + "/.local/share/cagent")) ?? []).contains("scratch"),
                "control: the scratch directory lives in the covered data directory")
        #expect(processes(mentioning: "slirp4netns", uid: world.user.uid).isEmpty, "slirp4netns stopped with the session")
        #expect(!err.contains("blocked icmpv6 ff02") && !err.contains("blocked proto 0"), "link chatter is no blocked flow: \(err)")
        // The scratch layer was a directory of the user's, removed with the session.
        let scratch = world.home + "/.local/share/cagent/scratch"
        var scratchInfo = stat()
        #expect(stat(scratch, &scratchInfo) == 0 && scratchInfo.st_uid == world.user.uid, "the scratch directory is the user's")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? ["unreadable"]).isEmpty, "scratch layer not removed")

        // Controls outside cagent, as the same user: the key is readable, and the forbidden targets answer.
        let readable = try RootlessEnforceTests.asUser(world, ["/bin/cat", world.home + "/.ssh/id_rsa"])
        #expect(readable.output == RootlessEnforceTests.secret, "control: the user reads its key outside cagent")
        let asUser = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups"]
        for (_, address) in forbidden + [(.host, "127.0.0.1")] {
            let control = try lab.run(in: .host, asUser + ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", "http://\(address)/"])
            #expect(control.stdout == "200", "control: nothing answers at \(address): \(control)")
        }

        // The store is the user's own (its data directory), and holds the session.
        let database = world.home + "/.local/share/cagent/cagent.db"
        var info = stat()
        #expect(stat(database, &info) == 0 && info.st_uid == world.user.uid, "the store is the user's own: \(err)")
        let report = try RootlessEnforceTests.asUser(world, [Products.cagent, "report", "--db", database, "--json", "--limit", "0"])
        #expect(report.status == 0, "\(report.error)")
        let json = report.output.replacingOccurrences(of: " ", with: "")
        let facts = ["\"kind\":\"learn\"", "cagentlearn(seccomp)",
                     "www.allowed.test", "api.allowed.test",               // names, from the gate
                     NetlabAddresses.web1, "203.0.113.13", "direct-ip",    // flows, from the namespace's flow log
                     world.workspace + "/README", "/.config/tool/config",  // files
                     "/.ssh/id_rsa", "secret-access",                      // the hidden secret's attempt
                     "/usr/bin/id", "/usr/bin/curl"]                       // execs
        for fact in facts {
            #expect(json.contains(fact.replacingOccurrences(of: " ", with: "")), "the store lacks \(fact): \(report.output.prefix(3000))")
        }
        // The flow to www is one the flow log saw and the gate's answer named.
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(report.output.utf8)) as? [String: Any])
        let flows = parsed["flows"] as? [[String: Any]] ?? []
        #expect(flows.contains { $0["address"] as? String == NetlabAddresses.web1 && $0["name"] as? String == "www.allowed.test"
                                 && $0["name_source"] as? String == "dns" }, "\(flows)")
        // A flow only a ClientHello named (the capture in the sandbox's namespace): source sni, not a direct IP.
        #expect(flows.contains { $0["address"] as? String == NetlabAddresses.web4 && $0["port"] as? Int == 443
                                 && $0["name"] as? String == "sni-only.test" && $0["name_source"] as? String == "sni" }, "\(flows)")
        // What the user does next: a profile proposed from the session, as the user, from its own store.
        let proposal = world.workspace + "/proposed.yaml"
        let propose = try RootlessEnforceTests.asUser(world, [Products.cagent, "profile", "propose", "--db", database, "-o", proposal])
        let proposed = (try? String(contentsOfFile: proposal, encoding: .utf8)) ?? ""
        #expect(propose.status == 0 && proposed.contains("www.allowed.test") && proposed.contains("api.allowed.test"),
                "propose: \(propose.error) \(proposed)")
        let direct = parsed["direct_ip_flows"] as? [[String: Any]] ?? []
        #expect(direct.contains { $0["address"] as? String == NetlabAddresses.web4 && $0["port"] as? Int == 80 }, "\(direct)")
        #expect(!direct.contains { $0["address"] as? String == NetlabAddresses.web4 && $0["port"] as? Int == 443 }, "\(direct)")
    }
}
