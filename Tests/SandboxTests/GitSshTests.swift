import CagentCore
import CagentProfile
import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #15 item 5, done-when: git under `cagent enforce` clones over smart HTTP (`git http-backend` behind
/// a real HTTP server: Python's CGI server) and pushes over ssh (a real OpenSSH sshd in the lab's internet,
/// only the deploy key authorized) with `--ssh-key`; the user's real `~/.ssh` (a canary key, a known_hosts
/// naming another host too) stays invisible, and the sandbox's known_hosts holds the profile's ssh host
/// only. Controls: the push lands in the server's repository (a real ssh session, not a dead probe), the
/// canary is readable outside; the negative: without the ssh host in the profile the push fails and the
/// denial names the host.
@Suite(.serialized) struct GitSshTests {
    static let tools = ["ip", "nft", "nsenter", "dnsmasq", "tcpdump", "python3", "git", "ssh", "ssh-keygen", "setpriv", "unshare"]
    static let sshAddress = "203.0.113.33", httpAddress = "203.0.113.34"
    static let sshHost = "gitssh.allowed.test", httpHost = "githttp.allowed.test"
    static let canary = "CANARY-REAL-SSH-KEY-cagent"

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, the netlab's tools, git and OpenSSH"))
    func cloneOverHttpAndPushOverSshWithTheDeployKey() throws {
        try Requirements.root()
        for tool in Self.tools { try Requirements.tool(tool) }
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        // A user of its own whose home is the fixture's: its ~/.ssh is "the user's real ~/.ssh".
        let user = try TestUser(home: world.home)
        let sshd = try Self.sshdBinary(scratch: world.root + "/sshd-package")
        let server = world.root + "/server"
        let keys = world.home + "/.config/cagent/ssh"

        // The server side: a bare repository served over smart HTTP (read) and over ssh (push), sshd running as
        // uid 1000 ("git" in its own mount namespace's /etc) with only the deploy key authorized.
        let setup = """
            set -e
            mkdir -p "\(server)/http/cgi-bin" "\(server)/ssh" "\(server)/source" "\(keys)"
            cd "\(server)/source"
            echo hello > README
            git init -q -b main . && git add . && git -c user.name=t -c user.email=t@allowed.test commit -qm one
            git clone -q --bare . "\(server)/http/project.git"
            git clone -q --bare . "\(server)/ssh/project.git"
            printf '#!/bin/sh\\nexport GIT_PROJECT_ROOT="\(server)/http" GIT_HTTP_EXPORT_ALL=1\\nexec git http-backend\\n' > "\(server)/http/cgi-bin/git"
            chmod 755 "\(server)/http/cgi-bin/git"
            chown -R 65534:65534 "\(server)/http"
            ssh-keygen -q -t ed25519 -N '' -C server -f "\(server)/ssh/host_key"
            ssh-keygen -q -t ed25519 -N '' -C deploy -f "\(keys)/deploy_key"
            cp "\(keys)/deploy_key.pub" "\(server)/ssh/authorized_keys"
            # sshd's own /etc (bound over /etc in its mount namespace): a "git" user. A directory, not a file bound
            # over /etc/passwd: useradd elsewhere on the machine renames a new passwd into place, which a file
            # bind does not survive (the lookup finds the new file, sshd no user "git": publickey refused).
            mkdir -p "\(server)/etc"
            printf 'git:x:1000:1000:git:\(server)/ssh:/bin/sh\\n' > "\(server)/etc/passwd"
            printf 'git:x:1000:\\n' > "\(server)/etc/group"
            printf 'passwd: files\\ngroup: files\\nshadow: files\\nhosts: files\\n' > "\(server)/etc/nsswitch.conf"
            cp /etc/ld.so.cache "\(server)/etc/"
            cat > "\(server)/ssh/sshd_config" <<EOF
            ListenAddress \(Self.sshAddress):22
            HostKey \(server)/ssh/host_key
            AuthorizedKeysFile \(server)/ssh/authorized_keys
            StrictModes no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            PidFile none
            EOF
            chown -R 1000:1000 "\(server)/ssh"
            chmod 755 "\(server)"
            # The user's real ~/.ssh: a canary key and a known_hosts (hashed, as Debian writes it) with the
            # ssh host and another one.
            ssh-keygen -q -t ed25519 -N '' -C "\(Self.canary)" -f "\(world.home)/.ssh/id_ed25519"
            printf '\(Self.sshHost) %s\\nother.allowed.test %s\\n' "$(cut -d' ' -f1,2 "\(server)/ssh/host_key.pub")" "$(cut -d' ' -f1,2 "\(keys)/deploy_key.pub")" > "\(world.home)/.ssh/known_hosts"
            ssh-keygen -q -H -f "\(world.home)/.ssh/known_hosts" >/dev/null 2>&1
            rm -f "\(world.home)/.ssh/known_hosts.old"
            chown -R \(user.uid):\(user.gid) "\(world.home)" "\(world.workspace)"
            """
        let built = try Netlab.execute(["/bin/sh", "-c", setup], timeout: 30)
        try #require(built.succeeded, "server setup: \(built.stderr)")
        for address in [Self.sshAddress, Self.httpAddress] {
            try lab.run(in: .internet, ["ip", "addr", "add", address + "/32", "dev", "lo"])
        }
        try lab.run(in: .internet, ["sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"])
        try lab.spawn(in: .internet, ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                                      "mount --bind \"$3\" /etc && exec setpriv --reuid=1000 --regid=1000 --clear-groups \"$2\" -D -e -f \"$1/sshd_config\"",
                                      "sh", server + "/ssh", sshd, server + "/etc"], readyOnStderr: "Server listening")
        try lab.spawn(in: .internet, ["/usr/bin/python3", "-u", "-m", "http.server", "--cgi", "--bind", Self.httpAddress,
                                      "--directory", server + "/http", "80"], readyOnStdout: "Serving HTTP")
        try lab.setRecords([Self.sshHost: Self.sshAddress, Self.httpHost: Self.httpAddress])

        let script = """
            set -e
            rm -rf clone
            git clone -q http://\(Self.httpHost)/cgi-bin/git/project.git clone && echo cloned
            cd clone && echo change >> README
            git -c user.name=agent -c user.email=agent@allowed.test commit -qam two-from-the-sandbox
            echo "known: $(grep -v '^#' /etc/ssh/ssh_known_hosts | cut -d' ' -f1 | tr '\\n' ' ')"
            ls -A ~/.ssh 2>/dev/null | sed 's/^/ssh-dir: /'
            cat ~/.ssh/id_ed25519.pub 2>/dev/null || echo canary-unreadable
            git push -q ssh://git@\(Self.sshHost)\(server)/ssh/project.git HEAD:main && echo pushed
            """
        func enforce(endpoints: [String]) throws -> Netlab.Output {
            let profile = world.root + "/git-\(endpoints.count).yaml"
            try world.write(profile, "cagent: 1\nagent: test\nnetwork:\n  endpoints: [\(endpoints.map { "\"\($0)\"" }.joined(separator: ", "))]\n", owner: 0)
            return try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(user.uid), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4, "--ssh-key", keys + "/deploy_key", "--", "/bin/sh", "-c", script],
                timeout: 120, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home,
                                            "CAGENT_RUNTIME_DIR": world.root + "/run"])
        }

        // The positive run: clone over HTTP, push over ssh, both hosts in the profile as endpoints.
        let run = try enforce(endpoints: ["\(Self.httpHost):80/tcp", "\(Self.sshHost):22/tcp"])
        let out = run.stdout, err = run.stderr
        #expect(run.status == 0, "out: \(out) err: \(err)")
        #expect(out.contains("cloned") && out.contains("pushed"), "out: \(out) err: \(err)")
        #expect(err.contains("cagent: ssh: deploy key ~/.config/cagent/ssh/deploy_key for \(Self.sshHost)"), "\(err)")
        // The control: the push reached the server's repository through the real sshd.
        let log = try Netlab.execute(["git", "--git-dir", server + "/ssh/project.git", "log", "-1", "--format=%s", "main"], timeout: 10)
        #expect(log.stdout.contains("two-from-the-sandbox"), "server: \(log.stdout) \(log.stderr)")
        // ~/.ssh stayed hidden: an empty directory, the canary key unreadable; known_hosts names the ssh host only.
        #expect(out.contains("canary-unreadable") && !out.contains(Self.canary) && !out.contains("ssh-dir:"), "out: \(out)")
        #expect(out.contains("known: \(Self.sshHost) \n"), "out: \(out)")
        // The same read outside the sandbox, as the user, does show the canary (the probe is alive).
        let outside = try Netlab.execute(["setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "cat", world.home + "/.ssh/id_ed25519.pub"], timeout: 10)
        #expect(outside.stdout.contains(Self.canary), "control: \(outside.stdout) \(outside.stderr)")
        #expect(!err.contains("BEGIN OPENSSH PRIVATE KEY"), "the key was printed: \(err)")

        // The negative: the ssh host not in the profile. The clone works, the push fails, the denial names the host.
        let denied = try enforce(endpoints: ["\(Self.httpHost):80/tcp"])
        #expect(denied.stdout.contains("cloned") && !denied.stdout.contains("pushed"), "out: \(denied.stdout) err: \(denied.stderr)")
        #expect(denied.status != 0)
        #expect(denied.stderr.contains("cagent: refused DNS \(Self.sshHost)"), "\(denied.stderr)")
        #expect(denied.stderr.contains("the profile names no ssh host"), "\(denied.stderr)")
    }

    /// A key from the user's ~/.ssh or from the workspace is refused (the point is that ~/.ssh stays hidden, and
    /// a workspace file could be the agent's link to the real key), and nothing of it is printed.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root (reads as the user)"))
    func keysFromSshDirectoryOrWorkspaceAreRefused() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET-BYTES\n-----END OPENSSH PRIVATE KEY-----\n"
        try world.write(world.home + "/.ssh/deploy", text)
        try world.write(world.workspace + "/deploy", text)
        try world.write(world.home + "/.config/cagent/ssh/link-target", text)
        symlink(world.home + "/.ssh/id_rsa", world.home + "/.config/cagent/ssh/link")
        for (file, expected) in [(world.home + "/.ssh/deploy", "in ~/.ssh"), (world.workspace + "/deploy", "in the workspace"),
                                 (world.home + "/.config/cagent/ssh/link", "in ~/.ssh"), (world.root + "/missing", "No such file")] {
            #expect(throws: CagentError.self) {
                _ = try SshDeployKey.load(keyFile: file, currentDirectory: "/", endpoints: [], user: world.user, workspace: world.workspace)
            }
            do {
                _ = try SshDeployKey.load(keyFile: file, currentDirectory: "/", endpoints: [], user: world.user, workspace: world.workspace)
            } catch let error as CagentError {
                #expect("\(error)".contains(expected), "\(error)")
                #expect(!"\(error)".contains("SECRET-BYTES"))
            }
        }
        // The control: the same text from cagent's config directory is taken; host keys come from cagent's own
        // known_hosts too, for the profile's port-22 hosts only.
        try world.write(world.home + "/.config/cagent/ssh/known_hosts", "git.allowed.test ssh-ed25519 AAAAC3Nza1\nother.test ssh-ed25519 AAAAC3Nza2\n")
        let key = try SshDeployKey.load(keyFile: world.home + "/.config/cagent/ssh/link-target", currentDirectory: "/",
                                        endpoints: [.init(host: "git.allowed.test", port: 22), .init(host: "web.test", port: 443)],
                                        user: world.user, workspace: world.workspace, configDirectory: world.home + "/.config/cagent")
        #expect(key.key == text)
        #expect(key.knownHosts == ["git.allowed.test ssh-ed25519 AAAAC3Nza1"] && key.unknownHosts.isEmpty, "\(key.knownHosts)")
    }

    /// `--dump-plan FILE` with `--ssh-key`: the plan on disk names the deploy key (its file and sha256) and
    /// holds none of its material; the control is the same run's real plan, which carries the key to cagent-init.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root (reads as the user)"))
    func dumpedPlanNamesTheDeployKeyWithoutItsMaterial() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let user = try TestUser(home: world.home)
        let material = "DEPLOY-KEY-MATERIAL-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\n\(material)\n-----END OPENSSH PRIVATE KEY-----\n"
        let keyFile = world.home + "/.config/cagent/ssh/deploy_key"
        try world.write(keyFile, text, owner: user.uid)
        for directory in [world.home, world.home + "/.config", world.home + "/.config/cagent", world.home + "/.config/cagent/ssh",
                          world.workspace, world.state] {
            try world.makeDirectory(directory, owner: user.uid); chown(directory, user.uid, user.gid)
        }
        let profile = world.root + "/git.yaml"
        try world.write(profile, "cagent: 1\nagent: test\nnetwork:\n  endpoints: [\"git.allowed.test:22/tcp\"]\n", owner: 0)
        let plan = world.state + "/plan"
        let run = try Netlab.execute(
            [Products.cagent, "enforce", "--profile", profile, "--user", String(user.uid), "--workspace", world.workspace,
             "--state-dir", world.state, "--ssh-key", keyFile, "--dump-plan", plan, "--", "/bin/true"],
            timeout: 60, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home, "CAGENT_RUNTIME_DIR": world.root + "/run"])
        #expect(run.status == 0, "\(run.stderr)")
        let dumped = try #require(world.read(plan), "no plan written: \(run.stderr)")
        // The probe ran: the plan has the key's step, naming its file and digest.
        #expect(dumped.contains(SshDeployKey.keyPath), "\(dumped)")
        #expect(dumped.contains(keyFile) && dumped.contains(SHA256.hex(Array(text.utf8))), "\(dumped)")
        let leaked = dumped.contains(material)
        #expect(!leaked, "the deploy key's material is in the dumped plan")
        #expect(!run.stderr.contains(material))
        // The control: the plan cagent-init gets does carry the key (the same loader, the same profile).
        let key = try SshDeployKey.load(keyFile: keyFile, currentDirectory: "/", endpoints: [.init(host: "git.allowed.test", port: 22)],
                                        user: InvokingUser(uid: user.uid, gid: user.gid, name: user.name, home: world.home),
                                        workspace: world.workspace)
        #expect(key.steps.contains { if case .file(SshDeployKey.keyPath, _, let contents) = $0.operation { contents.contains(material) } else { false } })
    }

    /// sshd: the system's, else the Debian package's binary unpacked into the test cache (installing
    /// openssh-server would start the machine's own ssh service; the test needs only the program;
    /// `scripts/test-inputs.sh` fetches it before the uplink capture starts). Under CI a missing one fails.
    static func sshdBinary(scratch: String) throws -> String {
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") { return "/usr/sbin/sshd" }
        let cache = try TestCache.path("sshd")
        let binary = cache + "/root/usr/sbin/sshd"
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        let script = """
            set -e
            rm -rf "\(scratch)/sshd" && mkdir -p "\(scratch)/sshd" && cd "\(scratch)/sshd"
            apt-get download -q openssh-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1; apt-get download -q openssh-server >/dev/null 2>&1; }
            dpkg-deb -x openssh-server_*.deb root
            rm -rf "\(cache)/root" && mv root "\(cache)/root"
            """
        let fetched = try Netlab.execute(["/bin/sh", "-c", script], timeout: 120)
        guard fetched.succeeded, FileManager.default.isExecutableFile(atPath: binary) else {
            throw CagentError(stage: "test", "no sshd: /usr/sbin/sshd is missing and the openssh-server package could not be fetched: \(fetched.stderr)",
                              hint: "apt-get install openssh-server (or let apt-get download reach the Debian mirror)")
        }
        return binary
    }
}
