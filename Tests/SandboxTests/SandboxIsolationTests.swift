import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Real sandboxes (run as root): each test builds a fake home and workspace, runs a probe inside, and
/// fails if the attack it names works. Threat numbers are from threats.md.
@Suite(.serialized) struct SandboxIsolationTests {

    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func probeSeesAgentIdentityNoCapabilitiesAndItsOwnPidOne() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let result = try world.python("""
        import os, socket, ctypes
        status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
        print("uid", os.getuid(), os.geteuid(), os.getgid())
        for k in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh", "NoNewPrivs", "Seccomp"]: print(k, status[k].strip())
        print("pid1", open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode())
        libc = ctypes.CDLL(None, use_errno=True)
        print("attach", libc.ptrace(16, 1, 0, 0), ctypes.get_errno())
        try: open("/proc/1/environ", "rb").read(); print("environ readable")
        except OSError as e: print("environ", e.errno)
        print("links", sorted(n for _, n in socket.if_nameindex()))
        print("host", socket.gethostname())
        print("groups", os.getgroups())
        """)
        #expect(result.status == 0, "\(result.error)")
        let lines = Set(result.output.split(separator: "\n").map(String.init))
        #expect(lines.contains("uid 1000 1000 1000"), "\(result.output)")
        for key in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
            #expect(lines.contains("\(key) 0000000000000000"), "\(key): \(result.output)")
        }
        #expect(lines.contains("NoNewPrivs 1"))
        #expect(lines.contains("Seccomp 2"), "the process policy's filter is installed")
        #expect(lines.contains("pid1 cagent-init"))
        #expect(lines.contains("attach -1 1"), "ptrace attach to pid 1 must fail with EPERM: \(result.output)")
        #expect(lines.contains("environ 13"), "/proc/1/environ must be unreadable: \(result.output)")
        #expect(lines.contains("links ['lo']"))
        #expect(lines.contains("host cagent"))
        #expect(lines.contains("groups [1000]") || lines.contains("groups []"), "\(result.output)")
    }

    /// H1: every secret of the fake home is absent or empty, read with cat and with python, even with a
    /// profile that reads the whole home (the hide list covers them).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h1SecretsAreAbsentOrEmpty() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        // Positive control: the secrets are there on the host.
        for secret in SandboxFixture.secrets { #expect(world.read(world.home + "/" + secret) == SandboxFixture.secretText) }
        let paths = SandboxFixture.secrets.map { world.home + "/" + $0 } + ["/etc/shadow", "/etc/gshadow"]
        for profile in [Profile(agent: "test"), Profile(agent: "test", filesystem: .init(read: ["~"]))] {
            let catOut = try world.sh(paths.map { "cat '\($0)' 2>/dev/null" }.joined(separator: "; ") + "; true", profile: profile)
            #expect(!catOut.output.contains(SandboxFixture.secretText), "cat read a secret")
            let list = paths.map { "'\($0)'" }.joined(separator: ",")
            let pyOut = try world.python("""
            for p in [\(list)]:
                try: print(p, repr(open(p, "rb").read()))
                except OSError as e: print(p, "error", e.errno)
            """, profile: profile)
            #expect(pyOut.status == 0, "\(pyOut.error)")
            #expect(!pyOut.output.contains(SandboxFixture.secretText), "python read a secret: \(pyOut.output)")
        }
        // With the whole home readable, a non-secret file is visible: the hide list did the hiding.
        let control = try world.sh("cat ~/.gitconfig", profile: Profile(agent: "test", filesystem: .init(read: ["~"])))
        #expect(control.output.contains("Fake User"))
    }

    /// H2: a canary in cagent's environment is visible to no process in the sandbox.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h2EnvironmentCanaryNeverVisible() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let canary = "cagent-canary-\(UUID().uuidString)"
        // cagent's environment, injected as the CLI hands it to the planner (the test process's own plus the
        // canaries): no setenv, which races with every other suite reading the environment in this process.
        var cagentEnvironment = ProcessEnvironment.current
        cagentEnvironment["CAGENT_TEST_CANARY"] = canary
        cagentEnvironment["SSH_AUTH_SOCK"] = "/tmp/ssh-canary/agent.1"
        let probe = "env; sleep 0.2 & cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; wait"
        // Positive control: the same probe sees the canary when the profile passes it.
        let shown = try world.sh(probe, profile: Profile(agent: "test", env: .init(pass: ["CAGENT_TEST_CANARY"])),
                                 environment: cagentEnvironment)
        #expect(shown.status == 0 && shown.output.contains(canary), "the probe cannot see a passed variable: \(shown.output)")
        let result = try world.sh(probe, environment: cagentEnvironment)
        #expect(result.status == 0)
        #expect(result.output.contains("HOME=\(world.home)"))
        #expect(!result.output.contains(canary), "canary leaked")
        #expect(!result.output.contains("SSH_AUTH_SOCK"), "H9: SSH_AUTH_SOCK passed")
        // Exactly what the profile passes, plus the fixed names.
        let passed = try world.sh("env | sort", profile: Profile(agent: "test", env: .init(pass: ["CAGENT_TEST_PASSED"])),
                                  environment: ["CAGENT_TEST_PASSED": "yes", "CAGENT_TEST_CANARY": canary, "LC_TIME": "C",
                                                "TERM": "xterm", "PATH": "/usr/bin:/bin", "AWS_SECRET_ACCESS_KEY": canary])
        let names = Set(passed.output.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        #expect(names == ["CAGENT_TEST_PASSED", "LC_TIME", "TERM", "PATH", "HOME", "PWD", "SHLVL", "_"]
                 || names.isSubset(of: ["CAGENT_TEST_PASSED", "LC_TIME", "TERM", "PATH", "HOME", "PWD", "SHLVL", "_", "OLDPWD"]),
                "\(names)")
        #expect(names.contains("CAGENT_TEST_PASSED") && names.contains("LC_TIME"))
        #expect(!passed.output.contains(canary))
    }

    /// H4: no privilege to gain: setuid binaries do not elevate, every mount is nosuid. Control: a setuid-root
    /// binary planted in the workspace elevates the same user outside cagent; inside, the same probe gains nothing.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["setpriv"]), "needs root: real user, mount, pid and network namespaces"))
    func h4SetuidBinariesGainNothing() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        // A setuid-root copy of id(1) in the workspace: `id` reports euid=0 when the bit takes effect.
        let planted = world.workspace + "/suid-id"
        try FileManager.default.copyItem(atPath: "/usr/bin/id", toPath: planted)
        #expect(chown(planted, 0, 0) == 0 && chmod(planted, 0o4755) == 0)
        let probe = """
        \(planted); echo "suid=$?"
        echo | su -c 'id -u' root 2>/dev/null; echo "su=$?"
        sudo -n id -u 2>/dev/null; echo "sudo=$?"
        grep -E 'NoNewPrivs|CapBnd' /proc/self/status
        awk '{print $5, $6}' /proc/self/mountinfo
        """
        // Positive control: outside cagent the planted binary elevates the agent's user.
        let outside = try world.outside(probe)
        #expect(outside.output.contains("uid=1000") && outside.output.contains("euid=0") && outside.output.contains("suid=0"),
                "control: the setuid copy does not elevate outside cagent: \(outside.output) \(outside.error)")
        let result = try world.sh(probe)
        // The probe ran to its end (a dead probe prints none of these).
        #expect(result.output.contains("suid=0") && result.output.contains("su=") && result.output.contains("sudo="), "\(result.output) \(result.error)")
        #expect(result.output.contains("uid=1000") && !result.output.contains("euid=0"), "the setuid bit elevated: \(result.output)")
        #expect(!result.output.split(separator: "\n").contains("0"), "something ran as root: \(result.output)")
        #expect(result.output.contains("NoNewPrivs:\t1"))
        #expect(result.output.contains("CapBnd:\t0000000000000000"))
        let mounts = result.output.split(separator: "\n").filter { $0.hasPrefix("/") }.map { $0.split(separator: " ") }
        #expect(mounts.count >= 3 && mounts.allSatisfy { $0.count == 2 }, "the mount listing did not run: \(result.output)")
        for parts in mounts where parts.count == 2 { #expect(parts[1].contains("nosuid"), "mount without nosuid: \(parts)") }
    }

    /// H9: no host sockets: no /run, no docker.sock, no user bus. Control: listening unix sockets planted in
    /// host /run, host /tmp and the real home are connectable by the same user outside cagent; inside, the
    /// same probe finds none of them.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["setpriv"]), "needs root: real user, mount, pid and network namespaces"))
    func h9NoHostSockets() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let tag = UUID().uuidString.prefix(8)
        let planted = ["/run/cgt-h9-\(tag).sock", "/tmp/cgt-h9-\(tag).sock", world.home + "/.cgt-h9-\(tag).sock"]
        var listeners: [Int32] = []
        defer { for fd in listeners { close(fd) }; for path in planted { unlink(path) } }
        for path in planted { listeners.append(try listeningUnixSocket(path)) }
        let list = planted.map { "\"\($0)\"" }.joined(separator: ",")
        let probe = """
        /usr/bin/python3 -c '
        import socket
        for p in [\(list)]:
            s = socket.socket(socket.AF_UNIX)
            try: s.connect(p); print("connected", p)
            except OSError as e: print("refused", p, e.errno)
        '
        ls -d /run /var/run /run/docker.sock /var/run/docker.sock /run/user/1000/bus /tmp/.X11-unix 2>&1; find / -type s 2>/dev/null; echo done
        """
        // Positive control: outside cagent the agent's user reaches every planted socket.
        let outside = try world.outside(probe)
        for path in planted { #expect(outside.output.contains("connected \(path)\n"), "control: \(outside.output) \(outside.error)") }
        let result = try world.sh(probe)
        #expect(result.output.hasSuffix("done\n"))
        for path in planted {
            #expect(result.output.contains("refused \(path) 2\n"), "\(path) reachable or the probe did not run: \(result.output) \(result.error)")
        }
        #expect(!result.output.contains("docker.sock\n"), "\(result.output)")
        #expect(result.output.split(separator: "\n").filter { !$0.contains("No such file") && !$0.hasPrefix("refused ") && $0 != "done" }.isEmpty,
                "sockets or /run visible: \(result.output)")
    }

    /// H11: a symlink planted where a mount lands (shadow home, workspace) aborts the start.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h11SymlinkedMountTargetAbortsTheStart() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        // Positive control: the plan starts as it is.
        #expect(try world.sh("echo started").output == "started\n")
        // A symlink on a mount target's path (here a hidden path under a directory link in the workspace):
        // cagent-init refuses to follow it.
        try world.makeDirectory(world.root + "/elsewhere/x")
        symlink(world.root + "/elsewhere", world.workspace + "/lnk")
        var plan = try world.plan(["/bin/true"])
        plan.steps.insert(.init(.hide(world.workspace + "/lnk/x"), "test: a target behind a link"), at: plan.steps.count - 2)
        #expect {
            _ = try world.run(plan)
        } throws: { error in
            "\(error)".contains("hide \(world.workspace)/lnk/x") && "\(error)".contains("ELOOP")
        }
        // A symlinked .git is not pinned (nothing is mounted on it): the start goes on, with a notice.
        try world.makeDirectory(world.root + "/elsewhere/hooks")
        symlink(world.root + "/elsewhere", world.workspace + "/.git")
        let linked = try world.plan(["/bin/sh", "-c", "echo started"])
        #expect(linked.policyNotices.contains { $0.contains(".git is a symlink") }, "\(linked.policyNotices)")
        #expect(try world.run(linked).output == "started\n", "a .git symlink is not a git dir: no binds, start ok")
    }

    /// H13/H11: an earlier session that damaged its shadow home (`ln -s /root ~/.ssh`, a mount point replaced
    /// by a link to /etc/passwd) does not stop the next one: cagent repairs its own shadow home, says so,
    /// and never follows the links.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h13DamagedShadowHomeIsRepaired() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = Profile(agent: "test", filesystem: .init(read: ["~/.gitconfig"]))
        // Positive control: the profile's file is there, and the agent can damage its home.
        let damage = try world.sh("cat ~/.gitconfig; rm -rf ~/.ssh; ln -s /root ~/.ssh && echo linked", profile: profile)
        #expect(damage.output.contains("Fake User") && damage.output.contains("linked"), "\(damage.output) \(damage.error)")
        // The mount point of ~/.gitconfig replaced by a link to /etc/passwd (through the volume, as host-side
        // code reaches the shadow home).
        try world.withShadowHome { home in
            unlinkat(home, ".gitconfig", 0)
            #expect(symlinkat("/etc/passwd", home, ".gitconfig") == 0)
        }
        let plan = try world.plan(["/bin/sh", "-c", "cat ~/.gitconfig; ls -A ~/.ssh; echo started"], profile: profile)
        let next = try world.run(plan)
        #expect(next.notices.contains { $0.contains("~/.ssh -> /root") }, "\(next.notices)")
        #expect(next.notices.contains { $0.contains("~/.gitconfig -> /etc/passwd") }, "\(next.notices)")
        #expect(next.output.contains("Fake User") && next.output.hasSuffix("started\n"), "\(next.output) \(next.error)")
        #expect(!next.output.contains("root:x:0"))
        try world.withShadowHome { home in
            var info = stat()
            #expect(fstatat(home, ".ssh", &info, AT_SYMLINK_NOFOLLOW) != 0 || (info.st_mode & S_IFMT) != S_IFLNK, "the link is gone")
        }
        var info = stat()
        #expect(lstat("/etc/passwd", &info) == 0, "its target untouched")
    }

    /// H12: hard links out of the view fail (other mounts: EXDEV).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h12HardLinksOutOfTheViewFail() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let result = try world.sh("ln /etc/hostname x1 2>&1; ln /usr/bin/env x2 2>&1; ln /tmp x3 2>&1; ls")
        #expect(!FileSystem.exists(world.workspace + "/x1") && !FileSystem.exists(world.workspace + "/x2"))
        #expect(result.output.contains("Invalid cross-device link"), "\(result.output)")
    }

    /// H13 (inside): .git/hooks is read-only in the sandbox.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h13GitHooksReadOnly() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try world.write(world.workspace + "/.git/hooks/pre-commit.sample", "#!/bin/sh\n")
        try world.write(world.workspace + "/.git/config", "[core]\n\tbare = false\n")
        let result = try world.sh("{ echo 'touch /tmp/pwned' > .git/hooks/pre-commit; } 2>&1; echo rc=$?; echo x >> .git/config; echo cfg=$?")
        #expect(result.output.contains("Read-only file system"), "\(result.output)")
        #expect(!result.output.contains("rc=0"))
        #expect(!FileSystem.exists(world.workspace + "/.git/hooks/pre-commit"))
        #expect(result.output.contains("cfg=0"), "the rest of .git stays writable (RiskyChanges watches config)")
        // .git is a mount point: it cannot be renamed, removed or replaced; a plain rename works (control).
        let pinned = try world.sh("mv README R 2>&1; echo plain=$?; mv .git moved 2>&1; echo mv=$?; rmdir .git 2>&1; ln -sfn /tmp .git 2>&1; ls -ld .git")
        #expect(pinned.output.contains("plain=0"), "\(pinned.output)")
        #expect(pinned.output.contains("Device or resource busy") && pinned.output.contains("mv=1"), "\(pinned.output)")
        var info = stat()
        #expect(lstat(world.workspace + "/.git", &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR && !FileSystem.exists(world.workspace + "/moved"))
    }

    /// H14: a minimal /dev, private /dev/shm.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h14MinimalDev() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let marker = "cagent-shm-\(UUID().uuidString)"
        let result = try world.sh("ls /dev; ls /dev/mem /dev/kmsg /dev/kvm /dev/net/tun /dev/sda 2>&1; echo x > /dev/shm/\(marker); echo shm=$?; head -c 4 /dev/urandom | wc -c")
        let listed = Set(result.output.split(separator: "\n").prefix(13).map(String.init))
        #expect(listed.isSubset(of: ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]), "\(result.output)")
        for node in ["mem", "kmsg", "kvm", "net/tun", "sda"] { #expect(result.output.contains("'/dev/\(node)': No such file"), "\(node)") }
        #expect(result.output.contains("shm=0"))
        #expect(result.output.contains("\n4\n"))
        #expect(!FileSystem.exists("/dev/shm/" + marker), "/dev/shm must be private")
    }

    /// H15 (no terminal): stdin not a terminal -> the agent has no terminal at all, its own session, and
    /// TIOCSTI on everything it holds injects nothing into the user's terminal (here a pty we own).
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "needs root: real user, mount, pid and network namespaces"))
    func h15NoPathToTheUsersTerminal() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let (master, slave, slaveName) = try openTerminal()
        defer { close(master); close(slave) }
        // Positive control: TIOCSTI into that terminal is detectable by reading it (raw: no line wait).
        var settings = termios(); tcgetattr(slave, &settings); cfmakeraw(&settings); tcsetattr(slave, TCSANOW, &settings)
        #expect(try inject(into: slaveName) == 0)
        #expect(drain(slave) == "X")
        // The user's terminal is cagent's stderr; stdin is /dev/null.
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC); defer { close(null) }
        let outPath = world.root + "/out"
        let out = open(outPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600); defer { close(out) }
        let plan = try world.plan(["/usr/bin/python3", "-c", """
        import os, fcntl, termios
        print("sid", os.getsid(0) == os.getpid())
        targets = [0, 1, 2]
        try: targets.append(os.open("/dev/tty", os.O_RDWR))
        except OSError as e: print("devtty", e.errno)
        for fd in targets:
            try: fcntl.ioctl(fd, termios.TIOCSTI, b"P"); print("injected", fd)
            except OSError as e: print("tiocsti", fd, e.errno)
        print("isatty", [os.isatty(fd) for fd in (0, 1, 2)])
        """])
        let result = try world.run(plan, streams: StandardStreams(input: null, output: out, error: slave))
        #expect(result.status == 0)
        let text = world.read(outPath) ?? ""
        #expect(text.contains("sid True"))
        #expect(text.contains("devtty 6"), "opening /dev/tty must fail with ENXIO: \(text)")
        #expect(text.contains("isatty [False, False, False]"))
        #expect(!text.contains("injected"))
        #expect(!drain(slave).contains("P"), "keystrokes reached the user's terminal")
    }

    /// H15 (terminal): stdin a terminal -> the agent's terminal is a pty of the sandbox's own devpts
    /// (another devpts instance than the user's), its session is the sandbox's, and the user's terminal
    /// settings are restored afterwards.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h15TerminalIsTheSandboxsOwnPty() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let (master, slave, _) = try openTerminal()
        defer { close(master); close(slave) }
        var before = termios(); tcgetattr(slave, &before)
        var outer = stat(); fstat(slave, &outer)
        let plan = try world.plan(["/bin/sh", "-c", "stat -L -c 'dev=%d' /proc/self/fd/0; tty; stty size; echo sid=$(cut -d' ' -f6 /proc/self/stat)"],
                                  terminal: .init(rows: 33, columns: 101))
        let result = try world.run(plan, streams: StandardStreams(input: slave, output: slave, error: slave))
        #expect(result.status == 0)
        let text = drain(master)
        #expect(text.contains("/dev/pts/0"), "\(text)")
        #expect(text.contains("33 101"), "window size: \(text)")
        #expect(!text.contains("dev=\(outer.st_dev)\r"), "the agent's terminal is on the user's devpts: \(text)")
        #expect(text.contains("sid=1\r"), "the agent's session is the sandbox's (led by pid 1): \(text)")
        var after = termios(); tcgetattr(slave, &after)
        #expect(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag,
                "the user's terminal was not restored")
    }

    /// Ctrl-C on the user's terminal reaches the agent through the sandbox's pty (raw relay, ISIG there).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func ctrlCInterruptsTheAgentOnItsPty() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let (master, slave, _) = try openTerminal()
        defer { close(master); close(slave) }
        let plan = try world.plan(["/bin/sh", "-c", "echo ready; exec sleep 30"], terminal: .init(rows: 24, columns: 80))
        final class Seen: @unchecked Sendable { let lock = NSLock(); var bytes: [UInt8] = [] }
        let shown = Seen()
        let start = Date()
        let result = try world.run(plan, streams: StandardStreams(input: slave, output: slave, error: slave), started: { _ in
            Thread.detachNewThread {
                // Ctrl-C once the agent said it runs (its "ready" on the terminal), not after a guess.
                var seen: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 256)
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains("ready") {
                    var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, 100) > 0 else { continue }
                    let count = read(master, &buffer, buffer.count)
                    if count <= 0 { break }
                    seen += buffer[..<count]
                }
                shown.lock.withLock { shown.bytes = seen }   // before the Ctrl-C, so before the run returns
                var ctrlC: UInt8 = 3
                _ = write(master, &ctrlC, 1)
            }
        })
        #expect(result.status == 130, "SIGINT -> 128+2")
        #expect(Date().timeIntervalSince(start) < 10)
        let before = shown.lock.withLock { shown.bytes }
        #expect((String(decoding: before, as: UTF8.self) + drain(master)).contains("ready"))
    }

    /// H16: only 0-2 are open in the agent, its cwd is the workspace, its root the sandbox's. Control: a stray
    /// descriptor of cagent's (no CLOEXEC) is seen by the same probe started outside cagent.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["setpriv"]), "needs root: real user, mount, pid and network namespaces"))
    func h16OnlyStandardDescriptorsAndCwdInside() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let strayPath = world.root + "/stray-descriptor"
        try world.write(strayPath, "stray\n")
        let stray = open(strayPath, O_RDONLY)   // an fd of cagent's without CLOEXEC
        defer { close(stray) }
        #expect(stray >= 3)
        let program = """
        import os
        me = "/proc/%d/fd" % os.getpid()
        fds = [(int(f), os.readlink(me + "/" + f)) for f in os.listdir(me) if os.path.exists(me + "/" + f)]
        print("fds", sorted(f for f, target in fds if not target.startswith("/proc/")))
        for f, target in fds: print("fd", f, target)
        print("cwd", os.readlink("/proc/self/cwd"))
        print("root", os.readlink("/proc/self/root"))
        """
        // Positive control: started outside cagent, the same probe sees the stray descriptor.
        let outside = try world.outside("exec /usr/bin/python3 -c '\(program)'")
        #expect(outside.output.contains("fd \(stray) \(strayPath)\n"), "control: \(outside.output) \(outside.error)")
        let result = try world.python(program)
        #expect(result.status == 0 && result.output.contains("fds [0, 1, 2]\n"), "\(result.output) \(result.error)")
        #expect(!result.output.contains(strayPath), "the stray descriptor reached the agent: \(result.output)")
        #expect(result.output.contains("cwd \(world.workspace)\n"))
        #expect(result.output.contains("root /\n"))
    }

    /// H17: host processes are out of reach; the sandbox dies with cagent (tested in CLI tests too).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func h17SignalsToTheOutsideFail() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let me = getpid()
        let result = try world.sh("kill -STOP \(me) 2>&1; echo stop=$?; kill -9 -1; echo survived")
        #expect(result.output.contains("stop=1"), "\(result.output)")
        // ESRCH from the pid namespace, or EPERM from Landlock's signal scoping when the policy is on.
        #expect(result.output.contains("No such process") || result.output.contains("Operation not permitted"))
        #expect(result.status == 137 || result.output.contains("survived"))
    }

    /// Writes land where the view allows them, with the user's uid, and nowhere else.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func writesLandOnlyWhereAllowed() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let writable = world.root + "/writable"
        let readable = world.root + "/readable"
        try world.makeDirectory(writable)
        try world.makeDirectory(readable)
        try world.write(readable + "/file", "ro\n")
        let profile = Profile(agent: "test", filesystem: .init(read: [readable, "~/.gitconfig"], write: [writable]))
        let marker = world.root + "/marker"
        try world.write(marker, "")
        Thread.sleep(forTimeInterval: 0.05)
        // (world.root itself lies under the sandbox's private /tmp, so writing there is writing to that tmpfs.)
        let targets = ["/", "/etc", "/usr", "/usr/lib", "/dev", "/proc", "/proc/sys/kernel", "/var", "/root", "/opt", readable,
                       world.state, "/home", "/sys"]
        let tries = targets.map { "touch '\($0)/cagent-write-probe' 2>/dev/null && echo WROTE \($0)" }.joined(separator: "\n")
        let result = try world.sh("""
        echo ws > \(world.workspace)/from-agent && echo ok-ws
        echo home > ~/from-agent && echo ok-home
        echo tmp > /tmp/from-agent && echo ok-tmp
        echo w > \(writable)/from-agent && echo ok-write
        echo g >> ~/.gitconfig 2>/dev/null && echo WROTE gitconfig
        \(tries)
        true
        """, profile: profile)
        for ok in ["ok-ws", "ok-home", "ok-tmp", "ok-write"] { #expect(result.output.contains(ok), "\(ok): \(result.output) \(result.error)") }
        #expect(!result.output.contains("WROTE"), "\(result.output)")
        // Host paths carry the user's uid.
        for path in [world.workspace + "/from-agent", writable + "/from-agent"] {
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_uid == SandboxFixture.agentUID, "\(path)")
        }
        try world.withShadowHome { home in
            var info = stat()
            #expect(fstatat(home, "from-agent", &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_uid == SandboxFixture.agentUID, "shadow home")
        }
        // Nothing else changed on the host: find -newer over every tree the agent tried.
        let find = TestProcess()
        find.executableURL = URL(fileURLWithPath: "/usr/bin/find")
        for target in targets { #expect(!FileSystem.exists(target + "/cagent-write-probe"), "\(target)") }
        // Every host tree the view shows (other helpers' tests write elsewhere in /etc meanwhile: only the
        // bound /etc entries are checked).
        let etc = EnforcePlanner.etcEntries.map { "/etc/" + $0 }.filter { FileSystem.exists($0) }
        find.arguments = etc + ["/usr", world.root, "-xdev", "-newer", marker,
                          "-not", "-path", world.workspace + "*", "-not", "-path", writable + "*",
                          "-not", "-path", world.state + "*", "-not", "-path", world.root + "/.*"]
        let findOutput = world.root + "/.find-output"
        find.outputPath = findOutput
        try find.run(); find.waitUntilExit()
        let changed = (FileSystem.readText(findOutput) ?? "")
            .split(separator: "\n").filter { $0 != Substring(world.root) }
        #expect(changed.isEmpty, "changed outside the writable view: \(changed)")
    }

    /// A workspace inside the home (the common case) lands on top of the shadow home; the rest of the real
    /// home stays invisible.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func workspaceInsideTheHome() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let project = world.home + "/src/project"
        try world.write(project + "/main.c", "int main(void) { return 0; }\n")
        let request = EnforceRequest(profile: Profile(agent: "test"), workspace: project, user: world.user, paths: world.paths,
                                     command: ["/bin/sh", "-c", "pwd; cat main.c; ls -A ~; cat ~/.ssh/id_rsa 2>&1; echo x > made-inside"],
                                     environment: ProcessEnvironment.current)
        let result = try world.run(try EnforcePlanner.plan(request))
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.hasPrefix(project + "\nint main"), "\(result.output)")
        #expect(!result.output.contains(SandboxFixture.secretText))
        #expect(!result.output.contains(".gitconfig"), "the real home's files must not appear: \(result.output)")
        #expect(FileSystem.exists(project + "/made-inside"))
        #expect(throws: CagentError.self) {
            _ = try EnforcePlanner.plan(EnforceRequest(profile: Profile(), workspace: world.home, user: world.user,
                                                       paths: world.paths, command: ["/bin/true"], environment: [:]))
        }
    }

    /// The network hook: `beforeRelease` sees the sandbox's namespaces before anything inside ran; when it
    /// throws, the agent never starts and nothing is left.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func beforeReleaseRunsFirstAndCanAbort() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let plan = try world.plan(["/bin/sh", "-c", "touch \(world.workspace)/ran"])
        let launcher = Launcher(initPath: Products.initPath, streams: .inherited, forwardSignals: false)
        var seen: (own: String?, sandbox: String?, ranEarly: Bool) = (nil, nil, false)
        launcher.beforeRelease = { pid in
            seen.own = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
            seen.sandbox = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
            Thread.sleep(forTimeInterval: 0.2)
            seen.ranEarly = FileSystem.exists(world.workspace + "/ran")
        }
        #expect(try launcher.run(plan) == 0)
        #expect(seen.sandbox != nil && seen.sandbox != seen.own, "a network namespace of its own: \(seen)")
        #expect(!seen.ranEarly, "the agent ran before the release")
        #expect(FileSystem.exists(world.workspace + "/ran"))
        unlink(world.workspace + "/ran")
        launcher.beforeRelease = { _ in throw CagentError(stage: "network", "veth setup failed (test)") }
        #expect(throws: CagentError.self) { try launcher.run(plan) }
        #expect(!FileSystem.exists(world.workspace + "/ran"))
        #expect(processes(mentioning: plan.sessionID).isEmpty)
    }

    /// The cgroup hook: `beforeAgent` runs after the plan was sent (cagent-init is building the view) and the
    /// agent is forked only once it has returned; when it throws, the agent never starts and nothing is left.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func beforeAgentHoldsTheAgentAndCanAbort() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let plan = try world.plan(["/bin/sh", "-c", "touch \(world.workspace)/ran"])
        let launcher = Launcher(initPath: Products.initPath, streams: .inherited, forwardSignals: false)
        var order: [String] = []
        var ranEarly = true
        launcher.beforeRelease = { _ in order.append("release") }
        launcher.beforeAgent = { _ in
            order.append("agent")
            Thread.sleep(forTimeInterval: 0.3)   // long past the view's setup: only the go holds the agent back
            ranEarly = FileSystem.exists(world.workspace + "/ran")
        }
        #expect(try launcher.run(plan) == 0)
        #expect(order == ["release", "agent"])
        #expect(!ranEarly, "the agent ran before the go")
        #expect(FileSystem.exists(world.workspace + "/ran"), "control: the agent runs once released")
        unlink(world.workspace + "/ran")
        launcher.beforeAgent = { _ in throw CagentError(stage: "cgroup", "attach failed (test)") }
        #expect(throws: CagentError.self) { try launcher.run(plan) }
        #expect(!FileSystem.exists(world.workspace + "/ran"))
        #expect(processes(mentioning: plan.sessionID).isEmpty)
    }

    /// Every bundled profile (resolved with its `extends`) starts a sandbox: their paths (e.g.
    /// `/etc/default/locale`) must fit the constructed view.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func bundledProfilesStart() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let resolver = ProfileResolver(paths: world.paths, workspace: world.workspace,
                                       bundledDirectories: [repository + "/profiles"], home: world.home)
        let names = FileSystem.list(repository + "/profiles").filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }
        #expect(names.contains("base"))
        for name in names {
            let profile = try resolver.resolve(name).profile
            let result = try world.sh("echo started; cat \(world.home)/.ssh/id_rsa 2>/dev/null", profile: profile)
            #expect(result.status != 125 && result.output.hasPrefix("started\n"), "\(name): \(result.error)")
            #expect(!result.output.contains(SandboxFixture.secretText), "\(name)")
        }
    }

    /// The agent's exit status becomes the launcher's, 128+N for signal N.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func exitStatusIsTheAgents() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        #expect(try world.sh("exit 7").status == 7)
        #expect(try world.sh("kill -TERM $$").status == 143)
        #expect(try world.sh("echo out; echo err >&2").output == "out\n")
        // A command that cannot be executed is a setup failure: the agent never started.
        #expect(throws: CagentError.self) { try world.run(world.plan(["no-such-command-cagent"])) }
    }

    /// A failure injected at each setup stage names that stage, and leaves no process or mount behind.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real user, mount, pid and network namespaces"))
    func everySetupStageFailsClosed() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try world.write(world.workspace + "/.git/hooks/x.sample", "")
        let base = try world.plan(["/bin/sh", "-c", "touch \(world.workspace)/agent-ran"])
        var stages = ["child-credentials", "exec-init", "hostname", "loopback", "private-mounts", "base-root", "new-root"]
        stages += base.steps.map(\.operation.stageName)
        stages += ["pivot-root", "root-readonly", "cwd", "close-fds", "signals", "wait-go", "fork-agent", "agent-session",
                   "agent-identity", "agent-capabilities", "no-new-privs", "seccomp", "policy", "exec-agent", "init-privileges"]
        for stage in stages {
            var plan = base
            plan.failAtStage = SetupStage(stage)
            do {
                let outcome = try world.run(plan, timeout: 20)
                Issue.record("no error at stage \(stage): status \(outcome.status)")
            } catch {
                #expect("\(error)".contains("sandbox setup: \(stage) failed"), "\(error)")
                #expect("\(error)".contains("ECANCELED") || "\(error)".contains("errno 125"), "\(error)")
            }
            #expect(!FileSystem.exists(world.workspace + "/agent-ran"), "the agent ran despite a failure at \(stage)")
            #expect(processes(mentioning: plan.sessionID).isEmpty, "a process survived a failure at \(stage)")
            #expect(hostMounts(under: world.root).isEmpty, "a mount leaked at \(stage)")
        }
        // Positive control: without the injected failure the agent runs.
        #expect(try world.run(base).status == 0)
        #expect(FileSystem.exists(world.workspace + "/agent-ran"))
    }

    // MARK: helpers

    /// A unix socket listening at `path`, connectable by anyone (the backlog accepts without accept()).
    func listeningUnixSocket(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CagentError.system("test", "socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o666) == 0, listen(fd, 8) == 0 else {
            close(fd); throw CagentError.system("test", "listening unix socket \(path)")
        }
        return fd
    }

    func openTerminal() throws -> (Int32, Int32, String) {
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        guard cg_open_pty(&master, &slave, &name, name.count) == 0 else { throw CagentError.system("test", "cannot open a pty") }
        return (master, slave, String(nulTerminated: name))
    }

    /// TIOCSTI of "X" into a terminal by path, from a host process (root may inject anywhere).
    func inject(into path: String) throws -> Int32 {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import os, fcntl, termios; fd = os.open('\(path)', os.O_RDWR | os.O_NOCTTY); fcntl.ioctl(fd, termios.TIOCSTI, b'X')"]
        try process.run(); process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whatever can be read from fd right now.
    func drain(_ fd: Int32) -> String {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 200) > 0, entry.revents & Int16(POLLIN) != 0 else { break }
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text
    }
}
