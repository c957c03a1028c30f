import CagentCore
import CagentSandbox
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Ordinary developer tools keep working under the whole policy (seccomp + Landlock + rlimits).
@Suite("Policy: ordinary tools still work", .serialized)
struct ToolsUnderPolicyTests {
    /// Host root read-only, one work directory read-write, the standard devices.
    static func policy(workDirectory: String,
                       devices: [LandlockRule] = LandlockRuleset.standardDevices) -> ProcessPolicy {
        let view = LandlockRuleset.forView(readOnly: ["/"], readWrite: [workDirectory], devices: devices)
        return ProcessPolicy(rlimits: ResourceLimits.defaults.rlimits,
                             landlock: view.adapted(toABI: LandlockRuleset.kernelABI() ?? 0).ruleset,
                             seccomp: PolicyProbe.filter)
    }

    static let toolScript = #"""
    cd "$1"; mkdir tmp; export HOME="$1" TMPDIR="$1/tmp" GIT_CONFIG_NOSYSTEM=1
    { git init -q repo && cd repo && git config user.email agent@example.test && git config user.name agent &&
      echo hi > f && git add f && git commit -qm first && git log --oneline | grep -q first && cd .. && echo TOOL:git; } 2>&1
    /usr/bin/python3 -c 'import subprocess, threading
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    print("TOOL:python3" if subprocess.run(["echo", "x"], capture_output=True).stdout == b"x\n" else "python3 broken")' 2>&1
    printf 'int main(void) { return 0; }\n' > m.c && cc -o m m.c && ./m && echo TOOL:cc
    printf 'all:\n\t@echo made\n' > Makefile && make | grep -q made && echo TOOL:make
    strace -f -o st.txt sh -c '/bin/true' 2>&1 && grep -q 'execve("/bin/true"' st.txt && echo TOOL:strace
    sleep 30 & child=$!
    gdb -p "$child" -batch -ex 'info inferiors' > gdb.txt 2>&1; kill "$child"
    grep -q "process $child" gdb.txt && echo TOOL:gdb || cat gdb.txt
    """#

    @Test("git, python3 (threads, subprocess), cc, make, strace -f of a child, gdb attach to a child",
          .enabled(if: Requirements.mayRun(root: true, tools: ["git", "python3", "cc", "make", "strace", "gdb"]), "needs the developer tools"))
    func developerTools() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        let result = try PolicyProbe.run(["/bin/sh", "-c", Self.toolScript, "sh", dir], policy: Self.policy(workDirectory: dir),
                                         timeout: 120)
        for tool in ["git", "python3", "cc", "make", "strace", "gdb"] {
            #expect(result.output.contains("TOOL:\(tool)"), "\(tool) failed under the policy:\n\(result.output)")
        }
    }

    static let passphraseScript = #"""
    import os, pty, sys
    key = sys.argv[1]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv("/usr/bin/ssh-keygen", ["ssh-keygen", "-y", "-f", key])
    out = b""
    while b"passphrase" not in out:
        chunk = os.read(fd, 200)
        if not chunk: break
        out += chunk
    os.write(fd, b"cagent-pass\n")
    try:
        while True:
            chunk = os.read(fd, 500)
            if not chunk: break
            out += chunk
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    print(out.decode(errors="replace"))
    print("STATUS", status)
    """#

    @Test("ssh's passphrase prompt works on a pty (opens /dev/tty, turns echo off: Landlock ioctl rights)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["ssh-keygen", "python3"]), "needs openssh-client"))
    func sshPromptOnPty() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        let keygen = try PolicyProbe.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "cagent-pass", "-f", dir + "/key"],
                                         policy: ProcessPolicy())
        try #require(keygen.termination == .exited(0), "\(keygen.output)")
        let result = try PolicyProbe.run([PolicyProbe.python, "-c", Self.passphraseScript, dir + "/key"],
                                         policy: Self.policy(workDirectory: dir), timeout: 30)
        #expect(result.output.contains("Enter passphrase"), "\(result.output)")
        #expect(result.output.contains("ssh-ed25519 "), "the prompt did not accept the passphrase:\n\(result.output)")
        #expect(result.output.contains("STATUS 0"), "\(result.output)")
        #expect(!result.output.contains("cagent-pass"), "echo stayed on: the passphrase was echoed\n\(result.output)")

        // Control: without the ioctl right on /dev/tty, tcsetattr is refused and the passphrase is echoed.
        let withoutIoctl = LandlockRuleset.standardDevices.map {
            $0.path == "/dev/tty" ? LandlockRule("/dev/tty", [.readFile, .writeFile]) : $0
        }
        let control = try PolicyProbe.run([PolicyProbe.python, "-c", Self.passphraseScript, dir + "/key"],
                                          policy: Self.policy(workDirectory: dir, devices: withoutIoctl), timeout: 30)
        #expect(control.output.contains("cagent-pass"), "control: the ioctl rule made no difference\n\(control.output)")
    }
}
