import CagentCore
import CagentProfile
import CagentSandbox
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Limits: defaults and cgroup layouts")
struct LimitsLayoutTests {
    @Test("profile limits override the defaults one by one")
    func profileOverrides() {
        let limits = ResourceLimits(profile: Limits(processes: 100, memoryBytes: nil, openFiles: 512))
        #expect(limits.processes == 100 && limits.openFiles == 512)
        #expect(limits.memoryBytes == ResourceLimits.defaults.memoryBytes)
        #expect(limits.tmpMountOptions.contains("size=\(ResourceLimits.defaults.tmpBytes)"))
        #expect(limits.shmMountOptions.contains("size=\(ResourceLimits.defaults.shmBytes)"))
    }

    @Test("hybrid layout: pids and memory from v1, cgroup2 under unified/")
    func hybrid() {
        let mounts = """
        tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
        cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
        cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
        """
        let cgroups = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
        let layout = CgroupLayout.parse(mounts: mounts, cgroups: cgroups, v2Controllers: { _ in "hugetlb" })
        #expect(layout.pids == .init(mountPoint: "/sys/fs/cgroup/pids", ownPath: "/", isV2: false))
        #expect(layout.memory == .init(mountPoint: "/sys/fs/cgroup/memory", ownPath: "/process_api/abc", isV2: false))
        #expect(layout.unified == .init(mountPoint: "/sys/fs/cgroup/unified", ownPath: "/", isV2: true))
    }

    @Test("pure cgroup2 layout: both controllers on the unified tree")
    func pureV2() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
        let layout = CgroupLayout.parse(mounts: mounts, cgroups: "0::/user.slice/session-1.scope\n",
                                        v2Controllers: { _ in "cpuset cpu io memory hugetlb pids rdma misc\n" })
        let unified = CgroupLayout.Hierarchy(mountPoint: "/sys/fs/cgroup", ownPath: "/user.slice/session-1.scope", isV2: true)
        #expect(layout.pids == unified && layout.memory == unified && layout.unified == unified)
    }

    @Test("no controllers: no session cgroup; the session's limits fall back to rlimits and say why")
    func missingControllers() {
        let layout = CgroupLayout.parse(mounts: "", cgroups: "", v2Controllers: { _ in "" })
        #expect(throws: CagentError.self) { _ = try SessionCgroup(id: "never", limits: .defaults, layout: layout) }
        let limits = SessionLimits(id: "never", limits: .defaults, layout: layout)
        #expect(limits.cgroup == nil && limits.limits.withoutCgroup)
        #expect(limits.notice?.contains("no pids controller") == true)
    }
}

/// The limits on real processes in a real session cgroup (`cagent-<id>`, removed on every path).
@Suite("Limits: fork bomb and memory hog", .serialized)
struct LimitsProcessTests {
    static func uniqueID() -> String { "t\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    @Test("a fork bomb stays inside the pids limit, the host keeps forking, the agent sees EAGAIN",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root: creates cgroups"))
    func forkBomb() throws {
        try Requirements.root()
        let limits = ResourceLimits(processes: 48, memoryBytes: 512 << 20, openFiles: 256, tmpBytes: 1 << 20, shmBytes: 1 << 20)
        let cgroup = try SessionCgroup(id: Self.uniqueID(), limits: limits)
        let directories = cgroup.directories
        #expect(!directories.isEmpty, "no cgroup made: the left-behind check below would check nothing")
        defer {
            cgroup.remove()
            for dir in directories { #expect(!FileSystem.exists(dir), "cgroup \(dir) left behind") }
        }
        let script = #"""
        /usr/bin/python3 -c '
        import errno, os, time
        kids = []
        try:
            while True:
                pid = os.fork()
                if pid == 0:
                    time.sleep(3); os._exit(0)
                kids.append(pid)
        except OSError as x:
            print("FORK-FAILED after %d: %s %s" % (len(kids), errno.errorcode[x.errno], x.strerror), flush=True)
        for k in kids: os.kill(k, 9)
        for k in kids: os.waitpid(k, 0)
        '
        bomb() { bomb | bomb & }; bomb
        exec /usr/bin/python3 -c '
        import os, time
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.005)
        '
        """#
        let policy = ProcessPolicy(cgroupProcs: cgroup.procsFiles, rlimits: limits.rlimits, seccomp: PolicyProbe.filter)
        var template = Array("/tmp/cagent-bomb-out-XXXXXX".utf8CString)
        let out = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let outPath = PolicyProbe.string(template)
        defer { close(out); unlink(outPath) }
        // pid 1 of its own pid namespace: when it is killed, the kernel kills every bomb process with it.
        let pid = try policy.spawn(["/bin/sh", "-c", script], environment: PolicyProbe.environment,
                                   stdout: out, stderr: out, flags: [.newPidNamespace])
        // Until the kernel refused a fork at the limit (pids.events: the count was at the limit then), and at
        // least 4 s of the bomb for the host's spawns; a loaded machine only makes it take longer (up to 60 s).
        // The sampled peak can miss the moments at the limit, so the event, not the sample, proves it was hit.
        var peak = 0, slowestHostSpawn = 0.0
        let start = Self.now()
        func limitHit() -> Bool { cgroup.exhaustionReport().contains { $0.contains("process limit") } }
        while Self.now() - start < 60 && (Self.now() - start < 4 || !limitHit()) {
            peak = max(peak, cgroup.taskCount())
            let t0 = Self.now()
            let probe = try ProcessPolicy().spawn(["/bin/true"], environment: [])
            _ = ProcessPolicy.wait(probe, timeout: 10)
            slowestHostSpawn = max(slowestHostSpawn, Self.now() - t0)
            usleep(100_000)
        }
        kill(pid, SIGKILL)
        _ = ProcessPolicy.wait(pid, timeout: 10)
        let output = String(decoding: FileSystem.read(outPath) ?? [], as: UTF8.self)
        print("fork bomb: peak \(peak) processes (limit \(limits.processes)); slowest host /bin/true \(Int(slowestHostSpawn * 1000)) ms; report \(cgroup.exhaustionReport())")
        // The bomb really ran (it filled the session: the kernel refused forks at the limit, checked below) and
        // never got past the limit in any sample; it was seen running at all.
        #expect(peak > 1 && peak <= limits.processes, "peak \(peak) processes in the session, limit \(limits.processes)")
        #expect(output.contains("FORK-FAILED") && output.contains("EAGAIN"), "agent saw no clear error:\n\(output.prefix(2000))")
        #expect(slowestHostSpawn < 2, "the host took \(slowestHostSpawn) s to start /bin/true during the bomb")
        #expect(cgroup.exhaustionReport().contains { $0.contains("process limit") }, "\(cgroup.exhaustionReport())")
    }

    @Test("a memory hog is killed at the memory limit and the report says so",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "root: creates cgroups"))
    func memoryHog() throws {
        try Requirements.root()
        let limits = ResourceLimits(processes: 64, memoryBytes: 96 << 20, openFiles: 256, tmpBytes: 1 << 20, shmBytes: 1 << 20)
        let cgroup = try SessionCgroup(id: Self.uniqueID(), limits: limits)
        let directories = cgroup.directories
        #expect(!directories.isEmpty, "no cgroup made: the left-behind check below would check nothing")
        defer {
            cgroup.remove()
            for dir in directories { #expect(!FileSystem.exists(dir), "cgroup \(dir) left behind") }
        }
        let hog = #"""
        import sys
        chunks = []
        for i in range(1, 129):
            chunks.append(b"x" * (8 << 20))
            print("MiB", i * 8, flush=True)
        print("HOG-SURVIVED", flush=True)
        """#
        let policy = ProcessPolicy(cgroupProcs: cgroup.procsFiles, rlimits: limits.rlimits, seccomp: PolicyProbe.filter)
        let result = try PolicyProbe.run([PolicyProbe.python, "-c", hog], policy: policy, timeout: 60)
        #expect(result.termination == .signaled(SIGKILL), "\(result.termination): \(result.output.suffix(300))")
        #expect(!result.output.contains("HOG-SURVIVED"))
        #expect(cgroup.exhaustionReport().contains { $0.contains("memory limit") }, "\(cgroup.exhaustionReport())")
    }

    @Test("the supervisor places a running process (the init) into the session; remove() kills what is left",
          .enabled(if: Requirements.mayRun(root: true), "root: creates cgroups"))
    func placeAndRemove() throws {
        try Requirements.root()
        let cgroup = try SessionCgroup(id: Self.uniqueID(), limits: .defaults)
        let directories = cgroup.directories
        let sleeper = try ProcessPolicy().spawn(["/bin/sleep", "30"], environment: [])
        try cgroup.add(pid: sleeper)
        #expect(cgroup.members() == [sleeper])
        #expect(!directories.isEmpty && directories.allSatisfy { (FileSystem.readText($0 + "/cgroup.procs") ?? "").contains("\(sleeper)") })
        cgroup.remove()
        #expect(ProcessPolicy.wait(sleeper, timeout: 5) == .signaled(SIGKILL))
        for dir in directories { #expect(!FileSystem.exists(dir), "cgroup \(dir) left behind") }
    }

    @Test("the /tmp and /dev/shm mount options cap the tmpfs size (ENOSPC past the limit)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["mount", "dd"]), "root: mounts in a private namespace"))
    func tmpfsSizes() throws {
        try Requirements.root()
        let limits = ResourceLimits(processes: 64, memoryBytes: 1 << 30, openFiles: 256, tmpBytes: 2 << 20, shmBytes: 1 << 20)
        let dir = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(dir) }
        for (options, fits) in [(limits.tmpMountOptions, 2), (limits.shmMountOptions, 1)] {
            let script = "mount -t tmpfs -o \(options) cagent-tmp \(dir) && dd if=/dev/zero of=\(dir)/fill bs=64k count=\(fits * 16 - 1) status=none && echo FITS && dd if=/dev/zero of=\(dir)/more bs=64k count=32 status=none"
            let result = try PolicyProbe.run(["/bin/sh", "-c", script], policy: ProcessPolicy(), flags: .newMountNamespace)
            #expect(result.output.contains("FITS"), "\(options): \(result.output)")
            #expect(result.output.contains("No space left on device"), "\(options): \(result.output)")
        }
    }

    @Test("open files are capped by RLIMIT_NOFILE (lowered, never raised)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "forks probes"))
    func openFiles() throws {
        try Requirements.root()
        let limits = ResourceLimits(processes: 64, memoryBytes: 1 << 30, openFiles: 40, tmpBytes: 1 << 20, shmBytes: 1 << 20)
        let script = #"""
        import errno, resource
        print("NOFILE", resource.getrlimit(resource.RLIMIT_NOFILE))
        fds = []
        try:
            while True: fds.append(open("/dev/null"))
        except OSError as x:
            print("OPEN-FAILED after", len(fds), errno.errorcode[x.errno])
        """#
        let result = try PolicyProbe.run([PolicyProbe.python, "-c", script],
                                         policy: ProcessPolicy(rlimits: limits.rlimits, seccomp: PolicyProbe.filter))
        #expect(result.output.contains("NOFILE (40, 40)"), "\(result.output)")
        #expect(result.output.contains("EMFILE"), "\(result.output)")
        // Asking for more than the hard limit lowers nothing and fails nothing.
        let huge = ResourceLimits(processes: 64, memoryBytes: 1 << 30, openFiles: Int(Int32.max), tmpBytes: 1, shmBytes: 1)
        let raised = try PolicyProbe.run([PolicyProbe.python, "-c", "import resource; print('NOFILE', resource.getrlimit(resource.RLIMIT_NOFILE))"],
                                         policy: ProcessPolicy(rlimits: huge.rlimits))
        #expect(raised.termination == .exited(0), "\(raised.output)")
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
