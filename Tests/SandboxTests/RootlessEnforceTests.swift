import CagentCore
import Foundation
import Netlab
import Testing

/// Rootless mode (issue #18): `cagent enforce` run by a plain user the test creates (no sudo; cagent started
/// through setpriv with the user's uid, gid, no groups and a clean environment), against the same probes
/// as the root mode: the real home's secrets are invisible, the agent has no capability, no_new_privs and a
/// seccomp filter, cannot touch the nftables of its namespace, and writes the workspace as the user.
@Suite("Rootless enforce as a plain user", .serialized)
struct RootlessEnforceTests {
    static let secret = "FAKE-SSH-KEY-rootless-test"

    /// A plain user with a real home holding ~/.ssh/id_rsa, and a workspace of its own.
    final class World {
        let root: String, home: String, workspace: String
        let user: TestUser
        init() throws {
            var template = Array("/tmp/cgrl-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CagentError.system("fixture", "mkdtemp") }
            root = String(cString: made)
            chmod(root, 0o755)
            home = root + "/home"
            workspace = root + "/ws"
            user = try TestUser(home: home)
            for directory in [home, home + "/.ssh", workspace] {
                mkdir(directory, 0o700)
                chown(directory, user.uid, user.gid)
            }
            try RootlessEnforceTests.secret.write(toFile: home + "/.ssh/id_rsa", atomically: false, encoding: .utf8)
            chown(home + "/.ssh/id_rsa", user.uid, user.gid)
            chmod(home + "/.ssh/id_rsa", 0o600)
        }
        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// `argv` as the plain user: setpriv with its uid and gid, no supplementary groups, a clean environment.
    static func asUser(_ world: World, _ argv: [String]) throws -> (status: Int32, output: String, error: String) {
        let full = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups",
                    "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=\(world.home)", "USER=\(world.user.name)"] + argv
        return try run(full, world: world)
    }

    static func run(_ argv: [String], world: World) throws -> (status: Int32, output: String, error: String) {
        let tag = UInt32.random(in: 0...UInt32.max)
        let out = world.root + "/out-\(tag)", err = world.root + "/err-\(tag)"
        let process = try SpawnedProcess.start(argv, stdout: out, stderr: err)
        let status = process.wait(timeout: 60)
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return (status, read(out), read(err))
    }

    /// Each probe prints `name=value`; a probe that did not run leaves its key absent (and fails the test).
    static let probes = #"""
    echo "uid=$(id -u)"
    echo "uidmap=$(tr -s ' ' < /proc/self/uid_map | sed 's/^ //')"
    if cat "$HOME/.ssh/id_rsa" 2>/dev/null; then echo "ssh=READ"; else echo "ssh=hidden"; fi
    grep -q FAKE-SSH-KEY -r "$HOME" 2>/dev/null && echo "home-secret=found" || echo "home-secret=absent"
    echo "capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)"
    echo "capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
    echo "nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)"
    echo "seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/self/status)"
    /usr/sbin/nft flush ruleset 2>/dev/null; echo "nft-flush=$?"
    /usr/sbin/nft add table inet agent 2>/dev/null; echo "nft-add=$?"
    echo data > written.txt && echo "write=ok"
    echo "net=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); printf "%s ", $1 }' /proc/net/dev)"
    """#

    static func values(_ output: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            result[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return result
    }

    func checkProbes(_ outcome: (status: Int32, output: String, error: String), world: World, label: String) {
        #expect(outcome.status == 0, "\(label): \(outcome.error)")
        let found = Self.values(outcome.output)
        #expect(found["uid"] == String(world.user.uid), "\(label): the agent runs as the user: \(outcome.output)")
        #expect(found["uidmap"] == "\(world.user.uid) \(world.user.uid) 1", "\(label): only the user's id is mapped: \(outcome.output)")
        #expect(found["ssh"] == "hidden", "\(label): the real ~/.ssh is invisible: \(outcome.output)")
        #expect(found["home-secret"] == "absent", "\(label): no file of the real home shows: \(outcome.output)")
        #expect(found["capeff"] == "0000000000000000" && found["capbnd"] == "0000000000000000", "\(label): no capabilities: \(outcome.output)")
        #expect(found["nnp"] == "1" && found["seccomp"] == "2", "\(label): no_new_privs and seccomp: \(outcome.output)")
        #expect(found["nft-flush"].map { $0 != "0" } == true, "\(label): nft flush ruleset must fail: \(outcome.output)")
        #expect(found["nft-add"].map { $0 != "0" } == true, "\(label): nft add table must fail: \(outcome.output)")
        #expect(found["write"] == "ok", "\(label): the workspace is writable: \(outcome.output)")
        #expect(found["net"] == "lo ", "\(label): offline: only loopback: \(outcome.output)")
        var info = stat()
        #expect(stat(world.workspace + "/written.txt", &info) == 0 && info.st_uid == world.user.uid,
                "\(label): the agent's file belongs to the user on the host")
    }

    @Test("a plain user runs enforce (offline): the isolation probes hold, nft cannot be changed, state in the user's home",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "unshare", "useradd"]), "root: creates the test user"))
    func plainUserOffline() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }

        // Controls, as the same user outside cagent: the secret is readable, and in a user namespace of its own
        // the user may flush nftables (so the refusal inside the sandbox is cagent's doing, not the kernel's default).
        let readable = try Self.asUser(world, ["/bin/cat", world.home + "/.ssh/id_rsa"])
        #expect(readable.output == Self.secret, "control: the user reads its key outside cagent")
        let ownNamespace = try Self.asUser(world, ["/usr/bin/unshare", "-Urn", "/usr/sbin/nft", "flush", "ruleset"])
        #expect(ownNamespace.status == 0, "control: nft works in a user namespace of the user's own: \(ownNamespace.error)")

        let outcome = try Self.asUser(world, [Products.cagent, "enforce", "--profile", "default", "--workspace", world.workspace,
                                              "--offline", "--", "/bin/sh", "-c", Self.probes])
        checkProbes(outcome, world: world, label: "plain user")
        #expect(outcome.error.contains("cagent: notice: limits: no usable cgroup"), "the limits fallback is announced: \(outcome.error)")
        // State in the user's own directories: the shadow home in ~/.local/share/cagent, owned by the user.
        var info = stat()
        #expect(stat(world.home + "/.local/share/cagent/homes/default", &info) == 0 && info.st_uid == world.user.uid,
                "the shadow home is the user's own directory")
    }

    @Test("--rootless as root: cagent becomes the user first, the same probes hold",
          .enabled(if: Requirements.mayRun(root: true, tools: ["useradd"]), "root: creates the test user"))
    func forcedAsRoot() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        let outcome = try Self.run([Products.cagent, "enforce", "--rootless", "--profile", "default", "--user", String(world.user.uid),
                                    "--workspace", world.workspace, "--offline", "--", "/bin/sh", "-c", Self.probes], world: world)
        checkProbes(outcome, world: world, label: "--rootless")
        #expect(outcome.error.contains("rootless mode"), "the start says rootless: \(outcome.error)")
    }

    /// The network in rootless mode, in the netlab: the allowlist and the gate inside the sandbox's namespace,
    /// slirp4netns as the uplink, started by the plain user in the lab's simulated host.
    @Test("a plain user in the netlab: an allowed name works; DNS exfiltration and literal IPs reach nothing; nft cannot be flushed",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "dig", "curl", "dnsmasq", "tcpdump"]),
                   "root: creates the test user and the netlab"))
    func plainUserNetwork() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try World(); defer { world.remove() }
        let profile = world.root + "/rootless-net.yaml"
        try "cagent: 1\nagent: rootless-net\nextends: [base]\nnetwork:\n  domains: [www.allowed.test]\n"
            .write(toFile: profile, atomically: false, encoding: .utf8)
        chmod(profile, 0o644)
        let script = """
        grep nameserver /etc/resolv.conf
        curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/
        curl -sS -m 5 -o /dev/null -w 'attacker %{http_code}\\n' http://203.0.113.66/ 2>/dev/null || echo attacker-failed
        curl -sS -m 5 -o /dev/null http://203.0.113.66:443/ 2>/dev/null || echo attacker443-failed
        dig +time=2 +tries=1 +short x1.attacker.test | sed 's/^/answer /'
        dig +time=2 +tries=1 +short TXT x2.attacker.test | sed 's/^/answer /'
        dig @198.51.100.8 +time=2 +tries=1 +short x3.attacker.test | sed 's/^/answer /'
        dig @198.51.100.53 +time=2 +tries=1 +short x4.attacker.test | sed 's/^/answer /'
        dig +tcp @198.51.100.53 +time=2 +tries=1 +short x5.attacker.test | sed 's/^/answer /'
        python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"udp-probe", ("203.0.113.66", 9999))' 2>/dev/null
        ping -c 1 -W 2 203.0.113.66 >/dev/null 2>&1 || echo ping-failed
        curl -sS -m 3 -o /dev/null http://169.254.169.254/ 2>/dev/null || echo metadata-failed
        curl -sS -m 3 -o /dev/null http://10.0.2.2:22/ 2>/dev/null || echo hostloop-failed
        /usr/sbin/nft flush ruleset 2>/dev/null && echo tamper-nft-ok
        /usr/sbin/ip route del default 2>/dev/null && echo tamper-route-ok
        cat "$HOME/.ssh/id_rsa" 2>/dev/null && echo ssh-READ
        curl -sS -m 5 -o /dev/null -w 'www-again %{http_code}\\n' http://www.allowed.test/
        """
        let argv = ["ip", "netns", "exec", lab.hostNamespace, "/usr/bin/setpriv", "--reuid", String(world.user.uid),
                    "--regid", String(world.user.gid), "--clear-groups", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                    "HOME=\(world.home)", "USER=\(world.user.name)",
                    Products.cagent, "enforce", "--profile", profile, "--workspace", world.workspace,
                    "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c", script]
        let outcome = try Self.run(argv, world: world)
        let out = outcome.output, err = outcome.error
        #expect(outcome.status == 0, "\(err)")
        #expect(out.contains("nameserver 127.0.0.1"), "the gate is the sandbox's resolver: \(out)")
        #expect(out.contains("www 200") && out.contains("www-again 200"), "the allowed name works: \(out) \(err)")
        for marker in ["attacker-failed", "attacker443-failed", "ping-failed", "metadata-failed", "hostloop-failed"] {
            #expect(out.contains(marker), "\(marker): \(out)")
        }
        #expect(!out.contains("answer "), "no attacker name resolved: \(out)")
        #expect(!out.contains("tamper-") && !out.contains("ssh-READ"), "\(out)")
        #expect(err.contains("cagent: refused DNS x1.attacker.test"), "the refusal is shown live: \(err)")
        #expect(err.contains("cagent: blocked tcp 203.0.113.66:80"), "the ruleset's drop is shown live: \(err)")
        let attackerSeen = lab.sinkRecords().filter { $0.contains("203.0.113.66") || $0.contains("198.51.100.8") }
        #expect(attackerSeen.isEmpty, "the sink saw the sandbox: \(attackerSeen)")
        #expect(lab.dnsQueries(containing: "attacker.test").isEmpty, "the DNS server saw \(lab.dnsQueries(containing: "attacker.test"))")
        #expect(!lab.dnsQueries(containing: "www.allowed.test").isEmpty, "the gate asked upstream for the allowed name")
        #expect(processes(mentioning: "slirp4netns", uid: world.user.uid).isEmpty, "slirp4netns stopped with the session")

        // Positive controls: the same probes from the simulated host, as the same user, reach the sink and the DNS log.
        let asUser = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups"]
        _ = try lab.run(in: .host, asUser + ["curl", "-sS", "-m", "3", "-o", "/dev/null", "http://203.0.113.66/"])
        _ = try lab.run(in: .host, asUser + ["dig", "+time=2", "+tries=1", "@198.51.100.8", "x3.attacker.test"])
        _ = try lab.run(in: .host, asUser + ["dig", "+time=2", "+tries=1", "@\(NetlabAddresses.dns4)", "x4.attacker.test"])
        #expect(lab.sinkRecords().contains { $0.contains("203.0.113.66") }, "control: the sink records a direct connection")
        #expect(lab.sinkRecords().contains { $0.contains("198.51.100.8") }, "control: the sink records the public resolver query")
        #expect(!lab.dnsQueries(containing: "x4.attacker.test").isEmpty, "control: the DNS log records the query")
    }

    @Test("a profile's block that covers the host's own address does not open the host's services (slirp4netns connects from the host)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "curl", "dnsmasq", "tcpdump", "python3"]),
                   "root: creates the test user and the netlab"))
    func hostAddressStaysClosedUnderAnAllowedBlock() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try World(); defer { world.remove() }
        // A service on the simulated host's own address, the kind root mode's input chain keeps from the sandbox.
        _ = try lab.spawn(in: .host, ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", NetlabAddresses.host4, "8099"],
                          readyOnStdout: "Serving HTTP")
        let profile = world.root + "/blocks.yaml"
        try "cagent: 1\nagent: blocks\nnetwork:\n  cidrs: [198.18.0.0/16, 203.0.113.0/24]\n"
            .write(toFile: profile, atomically: false, encoding: .utf8)
        chmod(profile, 0o644)
        let script = """
        echo "web=$(curl -s -o /dev/null -m 3 -w '%{http_code}' http://\(NetlabAddresses.web1)/)"
        echo "host=$(curl -s -o /dev/null -m 3 -w '%{http_code}' http://\(NetlabAddresses.host4):8099/)"
        """
        let argv = RootlessServicesTests.asUserInLab(lab, world, [Products.cagent, "enforce", "--profile", profile,
            "--workspace", world.workspace, "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c", script])
        let outcome = try Self.run(argv, world: world)
        let found = Self.values(outcome.output)
        #expect(outcome.status == 0, "\(outcome.error)")
        #expect(found["web"] == "200", "the allowed block works (the probe ran): \(outcome.output) \(outcome.error)")
        #expect(found["host"] != nil && found["host"] != "200", "the host's own service answered the sandbox: \(outcome.output)")
        #expect(outcome.error.contains("cagent: blocked tcp \(NetlabAddresses.host4):8099"), "the drop is shown live: \(outcome.error)")
        // Control: the same user outside cagent reaches the host's service.
        let asUser = ["/usr/bin/setpriv", "--reuid", String(world.user.uid), "--regid", String(world.user.gid), "--clear-groups"]
        let control = try lab.run(in: .host, asUser + ["curl", "-s", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}",
                                                       "http://\(NetlabAddresses.host4):8099/"])
        #expect(control.stdout == "200", "control: the host's service answers outside cagent: \(control)")
    }
}
