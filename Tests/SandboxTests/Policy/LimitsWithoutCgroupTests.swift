import CagentCore
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Hosts where /sys looks different (issue #16 item 4): under `ip netns exec` (a fresh sysfs) or in a container,
/// /sys/fs/cgroup may be empty. cagent then still starts, holds the limits with rlimits, and says so in one line,
/// instead of refusing with "no pids controller (neither cgroup v1 nor cgroup2)".
@Suite("Limits where no cgroup is usable", .serialized)
struct LimitsWithoutCgroupTests {
    /// A profile with a small process limit, so the fork probe reaches it quickly.
    static func profile(in world: SandboxFixture, processes: Int) throws -> String {
        let path = world.root + "/limited.yaml"
        try "cagent: 1\nagent: limited\nextends: [base]\nlimits:\n  processes: \(processes)\n  memory: 512MiB\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// Forks until the kernel refuses (at most 400 children), then reports how many it got and why it stopped.
    static let forkProbe = #"""
    grep -E '^Max (processes|data size)' /proc/self/limits
    /usr/bin/python3 -c '
    import errno, os, time
    kids = []
    try:
        while len(kids) < 400:
            pid = os.fork()
            if pid == 0:
                time.sleep(2); os._exit(0)
            kids.append(pid)
        print("FORKED-ALL %d" % len(kids), flush=True)
    except OSError as x:
        print("FORK-FAILED after %d: %s" % (len(kids), errno.errorcode[x.errno]), flush=True)
    for k in kids: os.kill(k, 9)
    for k in kids: os.waitpid(k, 0)
    '
    """#

    /// Where cagent runs: the host's own view, a fresh sysfs as `ip netns exec` mounts it (no cgroup
    /// hierarchy in the mount table at all), or an empty tmpfs over /sys/fs/cgroup (the hierarchies still in
    /// the mount table, but unreachable: a container's picture). Both in a private mount namespace of the test's
    /// own, which nothing outlives.
    enum View: String { case host, freshSysfs, coveredCgroupMount }

    func run(_ view: View, world: SandboxFixture, profile: String) throws -> (status: Int32, output: String, error: String) {
        let enforce = [Products.cagent, "enforce", "--profile", profile, "--user", String(SandboxFixture.agentUID),
                       "--workspace", world.workspace, "--state-dir", world.state, "--offline",
                       "--", "/bin/sh", "-c", Self.forkProbe]
        let setup: String? = switch view {
        case .host: nil
        case .freshSysfs: "umount -l /sys && mount -t sysfs cgt-sysfs /sys && [ -z \"$(ls /sys/fs/cgroup)\" ]"
        case .coveredCgroupMount: "mount -t tmpfs cgt-empty /sys/fs/cgroup"
        }
        let argv = setup.map { ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                                $0 + " && exec \"$@\"", "sh"] + enforce } ?? enforce
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        let out = world.root + "/out-\(view)", err = world.root + "/err-\(view)"
        let process = try SpawnedProcess.start(argv, stdout: out, stderr: err, environment: environment)
        let status = process.wait(timeout: 60)
        return (status, world.read(out) ?? "", world.read(err) ?? "")
    }

    @Test("no reachable cgroup hierarchy (ip netns exec's fresh sysfs, a covered /sys/fs/cgroup): the sandbox starts, rlimits hold the process limit, one notice says so",
          .enabled(if: Requirements.mayRun(root: true, tools: ["unshare", "python3"]), "root: a private mount namespace and real sandboxes"))
    func emptyCgroupHierarchy() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = try Self.profile(in: world, processes: 40)

        // Control: with the host's cgroups the pids controller stops the bomb, and no notice is shown.
        let control = try run(.host, world: world, profile: profile)
        #expect(control.status == 0, "control: \(control.error)")
        #expect(control.output.contains("FORK-FAILED after"), "control: the fork probe ran: \(control.output)")
        #expect(!control.error.contains("no usable cgroup"), "control: cgroups in use")

        for view in [View.freshSysfs, .coveredCgroupMount] {
            let bare = try run(view, world: world, profile: profile)
            #expect(bare.status == 0, "\(view): \(bare.error)")
            #expect(!bare.error.contains("sandbox setup: cgroup"), "\(view): refused instead of falling back: \(bare.error)")
            #expect(bare.error.contains("cagent: notice: limits: no usable cgroup"), "\(view): the notice: \(bare.error)")
            // RLIMIT_NPROC is counted in the sandbox's own user namespace: the agent's processes alone.
            #expect(bare.output.contains("Max processes             40"), "\(view): RLIMIT_NPROC set: \(bare.output)")
            #expect(bare.output.contains("Max data size             536870912"), "\(view): RLIMIT_DATA set: \(bare.output)")
            let stopped = bare.output.split(separator: "\n").first { $0.hasPrefix("FORK-FAILED after") }
            #expect(stopped?.hasSuffix("EAGAIN") == true, "\(view): the fork probe stopped at the limit: \(bare.output)")
            let count = stopped?.split(separator: " ").dropFirst(2).first.flatMap { Int($0.dropLast()) }
            #expect(count.map { $0 < 40 } == true, "\(view): forked \(count ?? -1) children under a limit of 40")
        }
    }

    @Test("mountinfo: a cgroup mount of a subtree (a container's view) maps /proc/self/cgroup paths into it")
    func mountinfoSubtree() {
        let mountinfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        39 31 0:36 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
        let cgroups = "8:pids:/docker/abc\n4:memory:/docker/abc/inner\n0::/\n"
        let layout = CgroupLayout.parse(mountinfo: mountinfo, cgroups: cgroups, v2Controllers: { _ in "" })
        #expect(layout.pids == .init(mountPoint: "/sys/fs/cgroup/pids", ownPath: "/", isV2: false))
        #expect(layout.memory == .init(mountPoint: "/sys/fs/cgroup/memory", ownPath: "/inner", isV2: false))
        #expect(layout.unified == .init(mountPoint: "/sys/fs/cgroup/unified", ownPath: "/", isV2: true))
        // Our cgroup outside the mounted subtree: that hierarchy is not usable from here.
        let outside = CgroupLayout.parse(mountinfo: mountinfo, cgroups: "8:pids:/other\n4:memory:/docker/abc\n0::/\n",
                                         v2Controllers: { _ in "" })
        #expect(outside.pids == nil)
    }

    @Test("the rlimit fallback adds RLIMIT_NPROC and RLIMIT_DATA; with a cgroup they stay out")
    func fallbackRlimits() {
        var limits = ResourceLimits(processes: 40, memoryBytes: 512 << 20, openFiles: 256, tmpBytes: 1 << 20, shmBytes: 1 << 20)
        #expect(!limits.rlimits.contains { $0.resource == Int32(__RLIMIT_NPROC.rawValue) })
        limits.withoutCgroup = true
        #expect(limits.rlimits.contains { $0.resource == Int32(__RLIMIT_NPROC.rawValue) && $0.hard == 40 })
        #expect(limits.rlimits.contains { $0.resource == Int32(RLIMIT_DATA.rawValue) && $0.hard == 512 << 20 })
    }
}
