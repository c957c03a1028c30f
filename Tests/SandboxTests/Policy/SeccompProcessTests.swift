import CagentCore
import CagentSandbox
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real filter on real processes: each probe runs once without the filter (the positive control: the
/// kernel answers something else, so it is the filter that refuses) and once under it.
@Suite("Seccomp policy: real processes", .serialized)
struct SeccompProcessTests {
    static let filtered = ProcessPolicy(seccomp: PolicyProbe.filter)

    /// Runs probes with and without the filter (both in a private mount namespace, so a mount that got
    /// through could not reach the host) and checks the filter's answer and that the control differs.
    func expect(_ expected: [String: String], flags: ProcessPolicy.SpawnFlags = [.newMountNamespace],
                extra: [String] = [], controlMustDiffer: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = expected.keys.sorted()
        let control = try PolicyProbe.python(names, policy: ProcessPolicy(), flags: flags, extra: extra)
        let inside = try PolicyProbe.python(names, policy: Self.filtered, flags: flags, extra: extra)
        #expect(inside.termination == .exited(0), "\(inside.output)", sourceLocation: sourceLocation)
        let got = inside.answers, reference = control.answers
        for name in names {
            #expect(got[name] == expected[name], "\(name): filtered answer \(got[name] ?? "none"), wanted \(expected[name]!)",
                    sourceLocation: sourceLocation)
            if controlMustDiffer.contains(name) {
                #expect(reference[name] != nil && reference[name] != expected[name],
                        "\(name): positive control answered \(reference[name] ?? "none") without the filter",
                        sourceLocation: sourceLocation)
            }
        }
    }

    @Test("Seccomp: 2 in /proc/self/status under the filter", .enabled(if: Requirements.mayRun(root: true), "forks probes"))
    func seccompModeShown() throws {
        try Requirements.root()
        let result = try PolicyProbe.run(["/bin/grep", "^Seccomp:", "/proc/self/status"], policy: Self.filtered)
        #expect(result.termination == .exited(0))
        #expect(result.output.contains("Seccomp:\t2"), "\(result.output)")
        let control = try PolicyProbe.run(["/bin/grep", "^Seccomp:", "/proc/self/status"], policy: ProcessPolicy())
        #expect(control.output.contains("Seccomp:\t0"), "\(control.output)")
    }

    @Test("H5: mount, the new mount API, unshare, setns and clone with namespace flags fail with EPERM; clone3 ENOSYS",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root: the control mounts in a private namespace"))
    func h5MountsAndNamespaces() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        try expect([
            "mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "open_tree": "EPERM",
            "move_mount": "EPERM", "fsopen": "EPERM", "fsconfig": "EPERM", "fsmount": "EPERM", "fspick": "EPERM",
            "mount_setattr": "EPERM", "open_tree_attr": "EPERM", "unshare_user": "EPERM", "unshare_mount": "EPERM",
            "setns": "EPERM", "clone_newuser": "EPERM", "clone3": "ENOSYS",
        ], extra: [dir], controlMustDiffer: ["mount", "open_tree", "fsopen", "fspick", "unshare_user", "unshare_mount",
                                           "clone_newuser", "clone3", "setns", "umount2", "pivot_root",
                                           "move_mount", "fsconfig", "fsmount", "mount_setattr", "open_tree_attr"])
    }

    @Test("H5: `unshare -Ur` and `mount -t tmpfs` fail under the filter (and work without it)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["unshare", "mount"]), "root, util-linux"))
    func h5Tools() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        let unshare = ["/usr/bin/unshare", "-Ur", "/bin/true"]
        let mount = ["/bin/mount", "-t", "tmpfs", "none", dir]
        #expect(try PolicyProbe.run(unshare, policy: ProcessPolicy()).termination == .exited(0), "control: unshare -Ur works")
        let u = try PolicyProbe.run(unshare, policy: Self.filtered)
        #expect(u.termination != .exited(0), "unshare -Ur got through: \(u.output)")
        #expect(u.output.contains("Operation not permitted"), "\(u.output)")
        #expect(try PolicyProbe.run(mount, policy: ProcessPolicy(), flags: .newMountNamespace).termination == .exited(0),
                "control: mount works in a private namespace")
        let m = try PolicyProbe.run(mount, policy: Self.filtered, flags: .newMountNamespace)
        #expect(m.termination != .exited(0), "mount got through: \(m.output)")
    }

    @Test("H6: mounting cgroup v1 (release_agent) fails", .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func h6CgroupMount() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        try expect(["mount_cgroup_v1": "EPERM"], extra: [dir], controlMustDiffer: ["mount_cgroup_v1"])
    }

    @Test("H7: keyctl, add_key, request_key fail with EPERM", .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func h7Keyring() throws {
        try Requirements.root()
        try expect(["keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM"],
                   controlMustDiffer: ["keyctl", "add_key", "request_key"])
    }

    @Test("H3: process_vm_readv is refused, and ptrace of pid 1 in the pid namespace is refused",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func h3Ptrace() throws {
        try Requirements.root()
        try expect(["process_vm_readv": "EPERM"], controlMustDiffer: ["process_vm_readv"])
        // python3 is pid 1 of a fresh pid namespace; its forked probe tries PTRACE_SEIZE on pid 1.
        try expect(["ptrace_init": "EPERM"], flags: [.newPidNamespace, .newMountNamespace], controlMustDiffer: ["ptrace_init"])
    }

    @Test("kernel-admin and inspection calls fail with EPERM (bpf, perf_event_open, userfaultfd, syslog, reboot, swapoff, modules, open_by_handle_at)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func kernelAdmin() throws {
        try Requirements.root()
        try expect(["bpf": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM", "syslog": "EPERM",
                    "reboot": "EPERM", "swapoff": "EPERM", "init_module": "EPERM", "delete_module": "EPERM",
                    "open_by_handle_at": "EPERM"],
                   controlMustDiffer: ["bpf", "userfaultfd", "syslog", "reboot", "swapoff", "delete_module"])
    }

    @Test("H19: io_uring_setup answers ENOSYS; unknown syscall numbers answer ENOSYS",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func h19IoUring() throws {
        try Requirements.root()
        try expect(["io_uring_setup": "ENOSYS", "unknown_470": "ENOSYS"], controlMustDiffer: ["io_uring_setup"])
    }

    @Test("N8, N17: AF_PACKET, raw IPv4/IPv6 and AF_VSOCK sockets fail with EPERM; TCP and netlink still open",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root: the control opens raw sockets"))
    func n8n17Sockets() throws {
        try Requirements.root()
        try expect(["af_packet": "EPERM", "af_packet_dgram": "EPERM", "raw_inet": "EPERM", "raw_inet6": "EPERM",
                    "af_vsock": "EPERM", "tcp": "ok", "netlink_raw": "ok"],
                   controlMustDiffer: ["af_packet", "af_packet_dgram", "raw_inet", "raw_inet6", "af_vsock"])
    }

    @Test("H15: TIOCSTI (also with high bits set) and TIOCLINUX fail with EPERM",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root: the control pushes into its own pty"))
    func h15Tiocsti() throws {
        try Requirements.root()
        try expect(["tiocsti": "EPERM", "tiocsti_high": "EPERM", "tioclinux_high": "EPERM"],
                   controlMustDiffer: ["tiocsti", "tiocsti_high", "tioclinux_high"])
    }

    @Test("H18: x32 syscall numbers fail with EPERM", .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root"))
    func h18X32() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        try expect(["x32_getpid": "EPERM", "x32_mount": "EPERM"], extra: [dir], controlMustDiffer: ["x32_getpid", "x32_mount"])
    }

    @Test("H18: `int 0x80` (the i386 entry) kills the process", .enabled(if: Requirements.mayRun(root: true, tools: ["cc"]), "needs cc"))
    func h18Int80() throws {
        try Requirements.root()
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        // i386 getpid (20) through int 0x80: prints the pid when the kernel runs it.
        let source = """
        #include <stdio.h>
        int main(void) { long r; __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory"); printf("int80 %ld\\n", r); return 0; }
        """
        let file = dir + "/int80.c"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = source.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let cc = try PolicyProbe.run(["/usr/bin/cc", "-o", dir + "/int80", file], policy: ProcessPolicy())
        try #require(cc.termination == .exited(0), "\(cc.output)")
        let control = try PolicyProbe.run([dir + "/int80"], policy: ProcessPolicy())
        #expect(control.termination == .exited(0) && control.output.contains("int80 "), "control: \(control.output)")
        let inside = try PolicyProbe.run([dir + "/int80"], policy: Self.filtered)
        #expect(inside.termination == .signaled(SIGSYS), "int 0x80 under the filter: \(inside.termination) \(inside.output)")
    }
}
