import CShim
import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// The sandbox's resource limits: the profile's `limits` over built-in defaults.
package struct ResourceLimits: Sendable, Equatable {
    /// Processes and threads in the session's cgroup (pids controller). A fork bomb stops here.
    package var processes: Int
    /// Memory of the whole session (memory controller; swap included where the kernel accounts it).
    package var memoryBytes: UInt64
    /// RLIMIT_NOFILE, lowered only.
    package var openFiles: Int
    /// Size of the sandbox's /tmp and /dev/shm tmpfs mounts (tmpfs pages count against memory too).
    package var tmpBytes: UInt64
    package var shmBytes: UInt64
    /// Size of the ext4 image holding the shadow home (enforce) or the scratch layer (learn): DiskVolume.
    /// Sparse: the host gives it only what the agent wrote, never more than this.
    package var diskBytes: UInt64

    package static let defaults = ResourceLimits(processes: 1024, memoryBytes: 4 << 30, openFiles: 4096,
                                                tmpBytes: 1 << 30, shmBytes: 64 << 20, diskBytes: 8 << 30)

    package init(processes: Int, memoryBytes: UInt64, openFiles: Int, tmpBytes: UInt64, shmBytes: UInt64,
                diskBytes: UInt64 = ResourceLimits.defaults.diskBytes) {
        self.processes = processes; self.memoryBytes = memoryBytes; self.openFiles = openFiles
        self.tmpBytes = tmpBytes; self.shmBytes = shmBytes; self.diskBytes = diskBytes
    }

    package init(profile: Limits) {
        let d = Self.defaults
        self.init(processes: profile.processes ?? d.processes, memoryBytes: profile.memoryBytes ?? d.memoryBytes,
                  openFiles: profile.openFiles ?? d.openFiles, tmpBytes: profile.tmpBytes ?? d.tmpBytes,
                  shmBytes: profile.shmBytes ?? d.shmBytes, diskBytes: profile.diskBytes ?? d.diskBytes)
    }

    /// Mount options for the sandbox's /tmp and /dev/shm.
    package var tmpMountOptions: String { "mode=1777,size=\(tmpBytes),nosuid,nodev" }
    package var shmMountOptions: String { "mode=1777,size=\(shmBytes),nosuid,nodev" }

    /// No usable cgroup (SessionLimits.start fell back): the process and memory limits are held by rlimits
    /// instead (`rlimits` below), and the start says so.
    package var withoutCgroup = false

    /// rlimits applied in the child, lower-only (raising needs CAP_SYS_RESOURCE, which root may lack).
    /// Core dumps are off (they would write the agent's memory, secrets included, into the workspace).
    ///
    /// With a cgroup, the pids and memory controllers hold the session's totals and nothing more is set.
    /// Without one (`withoutCgroup`):
    /// - RLIMIT_NPROC = limits.processes. The kernel (5.14+) counts it per user namespace and uid (ucounts),
    ///   and the sandbox has a user namespace of its own: the count is the agent's processes alone, not every
    ///   process of the uid on the host. Checked at every fork; the agent holds no capability to bypass it.
    /// - RLIMIT_DATA = limits.memory, per process (heap and private writable mappings; address space merely
    ///   reserved, as V8 and Go do, is not counted, so this does not break them the way RLIMIT_AS would).
    ///   Weaker than the memory controller: N processes may use N times the bound.
    package var rlimits: [cg_rlimit_setting] {
        var settings = [
            cg_rlimit_setting(resource: Int32(RLIMIT_NOFILE.rawValue), soft: UInt64(openFiles), hard: UInt64(openFiles)),
            cg_rlimit_setting(resource: Int32(RLIMIT_CORE.rawValue), soft: 0, hard: 0),
        ]
        if withoutCgroup {
            settings.append(cg_rlimit_setting(resource: Int32(__RLIMIT_NPROC.rawValue), soft: UInt64(processes), hard: UInt64(processes)))
            settings.append(cg_rlimit_setting(resource: Int32(RLIMIT_DATA.rawValue), soft: memoryBytes, hard: memoryBytes))
        }
        return settings
    }
}

/// Where the cgroup controllers live: cgroup v1 hierarchies, the cgroup2 (unified) tree, or both (hybrid).
package struct CgroupLayout: Sendable, Equatable {
    package struct Hierarchy: Sendable, Equatable {
        /// Mount point, e.g. /sys/fs/cgroup/pids or /sys/fs/cgroup/unified.
        package var mountPoint: String
        /// This process's cgroup in it (from /proc/self/cgroup).
        package var ownPath: String
        package var isV2: Bool

        package init(mountPoint: String, ownPath: String, isV2: Bool) {
            self.mountPoint = mountPoint; self.ownPath = ownPath; self.isV2 = isV2
        }
    }

    /// The hierarchy that carries the pids controller, the memory controller, and the cgroup2 tree (nil
    /// when absent). On a pure v2 host all three are the same.
    package var pids: Hierarchy?
    package var memory: Hierarchy?
    package var unified: Hierarchy?

    /// Reads /proc/self/mountinfo and /proc/self/cgroup: the hierarchies wherever they are mounted (not
    /// assumed at /sys/fs/cgroup), and a mount of a subtree (a container's view) mapped correctly.
    package static func detect() -> CgroupLayout {
        parse(mountinfo: FileSystem.readText("/proc/self/mountinfo") ?? "",
              cgroups: FileSystem.readText("/proc/self/cgroup") ?? "",
              v2Controllers: { FileSystem.readText($0 + "/cgroup.controllers") ?? "" })
    }

    /// /proc/self/mountinfo -> the `mounts` form `parse` reads, keeping each mount's root in the hierarchy:
    /// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
    /// A hierarchy mounted from a subtree (ROOT not "/") serves only the cgroups inside that subtree; a
    /// cgroup of ours outside it is unreachable through this mount, and the controller counts as absent.
    package static func parse(mountinfo: String, cgroups: String, v2Controllers: (String) -> String) -> CgroupLayout {
        var mounts = ""
        var roots: [String: String] = [:]   // mount point -> root within its hierarchy
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { continue }
            let type = fields[dash + 1]
            guard type == "cgroup" || type == "cgroup2" else { continue }
            let point = unescapeOctal(String(fields[4]))
            roots[point] = unescapeOctal(String(fields[3]))
            mounts += "\(fields[dash + 2]) \(point) \(type) \(fields[dash + 3]) 0 0\n"
        }
        var layout = parse(mounts: mounts, cgroups: cgroups, v2Controllers: v2Controllers)
        func relocate(_ hierarchy: Hierarchy?) -> Hierarchy? {
            guard var hierarchy, let root = roots[hierarchy.mountPoint], root != "/" else { return hierarchy }
            if hierarchy.ownPath == root { hierarchy.ownPath = "/"; return hierarchy }
            guard hierarchy.ownPath.hasPrefix(root + "/") else { return nil }
            hierarchy.ownPath = String(hierarchy.ownPath.dropFirst(root.count))
            return hierarchy
        }
        layout.pids = relocate(layout.pids)
        layout.memory = relocate(layout.memory)
        layout.unified = relocate(layout.unified)
        return layout
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescapeOctal(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "\\"), index + 3 < source.count,
               let value = UInt8(String(decoding: source[(index + 1)...(index + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value); index += 4
            } else {
                bytes.append(source[index]); index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Pure parser (testable with any text): v1 controllers win where both exist, because a controller
    /// bound to a v1 hierarchy is absent from cgroup2.
    package static func parse(mounts: String, cgroups: String, v2Controllers: (String) -> String) -> CgroupLayout {
        var v1: [String: String] = [:]   // controller -> mount point
        var v2Mount: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            if f[2] == "cgroup2" { v2Mount = v2Mount ?? String(f[1]) }
            if f[2] == "cgroup" {
                for option in f[3].split(separator: ",") where option == "pids" || option == "memory" {
                    v1[String(option)] = String(f[1])
                }
            }
        }
        var v1Paths: [String: String] = [:]
        var v2Path = "/"
        for line in cgroups.split(separator: "\n", omittingEmptySubsequences: true) {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            if f[0] == "0" && f[1].isEmpty { v2Path = String(f[2]); continue }
            for controller in f[1].split(separator: ",") { v1Paths[String(controller)] = String(f[2]) }
        }
        var layout = CgroupLayout()
        if let mount = v2Mount { layout.unified = Hierarchy(mountPoint: mount, ownPath: v2Path, isV2: true) }
        let v2Has = Set((v2Mount.map { v2Controllers($0) } ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        for controller in ["pids", "memory"] {
            let hierarchy: Hierarchy?
            if let mount = v1[controller] {
                hierarchy = Hierarchy(mountPoint: mount, ownPath: v1Paths[controller] ?? "/", isV2: false)
            } else if v2Has.contains(controller) {
                hierarchy = layout.unified
            } else {
                hierarchy = nil
            }
            if controller == "pids" { layout.pids = hierarchy } else { layout.memory = hierarchy }
        }
        return layout
    }

    package var summary: String {
        func describe(_ h: Hierarchy?) -> String {
            guard let h else { return "absent" }
            return (h.isV2 ? "cgroup2 " : "cgroup v1 ") + h.mountPoint
        }
        return "pids: \(describe(pids)); memory: \(describe(memory)); cgroup2: \(unified?.mountPoint ?? "not mounted")"
    }
}

/// The session's cgroups, one `cagent-<id>` directory per hierarchy used, created under cagent's own
/// cgroup (nested, so whatever limits cagent itself runs under still apply). Removed by `remove()`, which
/// kills anything left inside first.
// @unchecked: `directories` changes only in init and remove(), on the owner's thread.
package final class SessionCgroup: @unchecked Sendable {
    package let name: String
    /// Directories created, in creation order.
    package private(set) var directories: [String] = []
    package let pidsDirectory: String?
    package let memoryDirectory: String?
    package let unifiedDirectory: String?
    package let limits: ResourceLimits
    /// The lease naming the directories (`cg-<id>`, SessionCgroupLeases) while the session lives; nil without
    /// `paths`. A cagent killed before `remove()` leaves it unheld: the next start removes what it names.
    private var lease: SessionLease?

    /// Creates the cgroups and writes the limits. Fails closed: when the pids or memory controller is
    /// missing or a limit cannot be written, nothing is left behind and the error says which.
    /// With `paths`, dead sessions' cgroups are removed first and this session's are leased before they exist.
    package init(id: String, limits: ResourceLimits, layout: CgroupLayout = .detect(), paths: CagentPaths? = nil) throws {
        let name = "cagent-\(id)"
        self.name = name
        self.limits = limits
        func dir(_ h: CgroupLayout.Hierarchy) -> String {
            (h.mountPoint + (h.ownPath == "/" ? "" : h.ownPath) + "/" + name)
        }
        guard let pids = layout.pids else {
            throw CagentError(stage: "cgroup", "no pids controller (neither cgroup v1 nor cgroup2)",
                              hint: "a kernel with CONFIG_CGROUP_PIDS; without it a fork bomb is not contained")
        }
        guard let memory = layout.memory else {
            throw CagentError(stage: "cgroup", "no memory controller (neither cgroup v1 nor cgroup2)",
                              hint: "a kernel with CONFIG_MEMCG (boot without cgroup_disable=memory)")
        }
        pidsDirectory = dir(pids)
        memoryDirectory = dir(memory)
        unifiedDirectory = layout.unified.map { dir($0) }
        if let paths {
            let planned = [pidsDirectory, memoryDirectory, unifiedDirectory].compactMap { $0 }
            let lock = try SetupLock(paths: paths)
            defer { lock.release() }
            SessionCgroupLeases.removeDead(paths: paths)
            lease = try SessionLease(paths: paths, sessionID: SessionCgroupLeases.leaseID(id),
                                     contents: SessionCgroupLeases.contents(planned))
        }
        do {
            for h in [pids, memory] where h.isV2 {
                try Self.enableControllers(parent: h.mountPoint + (h.ownPath == "/" ? "" : h.ownPath))
            }
            for path in [pidsDirectory, memoryDirectory, unifiedDirectory].compactMap({ $0 })
            where !directories.contains(path) {
                if mkdir(path, 0o755) != 0 {
                    throw CagentError.system("cgroup: mkdir \(path)", "cannot create the session cgroup")
                }
                directories.append(path)
            }
            try write(pidsDirectory!, "pids.max", "\(limits.processes)")
            if memory.isV2 {
                try write(memoryDirectory!, "memory.max", "\(limits.memoryBytes)")
                if FileSystem.exists(memoryDirectory! + "/memory.swap.max") {
                    try write(memoryDirectory!, "memory.swap.max", "0")
                }
            } else {
                try write(memoryDirectory!, "memory.limit_in_bytes", "\(limits.memoryBytes)")
                // memsw = memory + swap; equal limits mean no swap. Absent when swap accounting is off.
                if FileSystem.exists(memoryDirectory! + "/memory.memsw.limit_in_bytes") {
                    try write(memoryDirectory!, "memory.memsw.limit_in_bytes", "\(limits.memoryBytes)")
                }
            }
        } catch {
            remove()
            throw error
        }
    }

    /// The cgroup.procs files the child writes "0" to (cg_policy.cgroup_procs), before anything else.
    package var procsFiles: [String] { directories.map { $0 + "/cgroup.procs" } }

    /// How the sandbox's init can be cloned straight into every session cgroup (cg_spawn_request's
    /// `join_tasks`/`leave_tasks`/`cgroup_fd`): the cgroup v1 `tasks` files the cloning thread joins and the
    /// ones of the cgroups it leaves back to (this process's own: the session's are created right below them),
    /// and the cgroup2 directory for CLONE_INTO_CGROUP. Nil when a directory fits neither (the caller adds the
    /// init with `add(pid:)`).
    package var cloneTargets: (joinTasks: [String], leaveTasks: [String], unified: String?)? {
        var join: [String] = [], leave: [String] = []
        for directory in directories where directory != unifiedDirectory {
            // A v1 hierarchy (a v2 one other than the unified tree does not exist: one cgroup2 per machine).
            guard FileSystem.exists(directory + "/tasks"), let slash = directory.lastIndex(of: "/") else { return nil }
            join.append(directory + "/tasks")
            leave.append(String(directory[..<slash]) + "/tasks")
        }
        return (join, leave, unifiedDirectory.flatMap { directories.contains($0) ? $0 : nil })
    }

    /// Moves a process (the sandbox's init, right after clone and before it is released) into every
    /// session cgroup. Its descendants inherit the placement. On a pure cgroup2 host, clone3 with
    /// CLONE_INTO_CGROUP and a descriptor of `unifiedDirectory` does the same atomically.
    package func add(pid: pid_t) throws {
        for file in procsFiles { try Self.writeFile(file, "\(pid)") }
    }

    /// Tasks (processes and threads) the pids controller counts now.
    package func taskCount() -> Int {
        guard let dir = pidsDirectory, let text = FileSystem.readText(dir + "/pids.current") else { return 0 }
        return Int(text.split(separator: "\n").first ?? "") ?? 0
    }

    /// Processes now in the session (pids cgroup).
    package func members() -> [pid_t] {
        guard let dir = pidsDirectory, let text = FileSystem.readText(dir + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { pid_t(String($0)) }
    }

    /// What the limits stopped, in words the user sees at the end of a session.
    package func exhaustionReport() -> [String] {
        var report: [String] = []
        if let dir = pidsDirectory, let events = FileSystem.readText(dir + "/pids.events"),
           let hits = Self.counter("max", in: events), hits > 0 {
            report.append("process limit (\(limits.processes)) reached: \(hits) fork/clone calls failed with EAGAIN")
        }
        if let dir = memoryDirectory {
            let file = FileSystem.exists(dir + "/memory.events") ? "/memory.events" : "/memory.oom_control"
            if let events = FileSystem.readText(dir + file), let kills = Self.counter("oom_kill", in: events), kills > 0 {
                report.append("memory limit (\(limits.memoryBytes >> 20) MiB) reached: \(kills) process(es) killed by the OOM killer")
            }
        }
        return report
    }

    /// Kills whatever is left and removes every directory; safe to call twice.
    package func remove() {
        // The pids hierarchy first (its pids.max goes to 0: no more forks), so the kill loops converge.
        let ordered = directories.filter { $0 == pidsDirectory } + directories.reversed().filter { $0 != pidsDirectory }
        let gone = ordered.map { SessionCgroupLeases.removeDirectory($0) }.allSatisfy { $0 }
        directories.removeAll()
        // A directory that would not go stays named by an unheld lease: the next start or `doctor --clean` retries.
        if gone { lease?.end() } else { lease?.abandon() }
        lease = nil
    }

    deinit { remove() }

    static func counter(_ key: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == key { return Int(f[1]) }
        }
        return nil
    }

    private static func enableControllers(parent: String) throws {
        let wanted = ["pids", "memory"]
        let enabled = (FileSystem.readText(parent + "/cgroup.subtree_control") ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        for controller in wanted where !enabled.contains(controller) {
            do {
                try writeFile(parent + "/cgroup.subtree_control", "+\(controller)")
            } catch var error as CagentError {
                error.hint = "cgroup2 allows controllers only in cgroups without processes: run cagent in its own cgroup (systemd-run --scope, or a delegated slice)"
                throw error
            }
        }
    }

    private func write(_ dir: String, _ file: String, _ value: String) throws {
        try Self.writeFile(dir + "/" + file, value)
    }

    static func writeFile(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CagentError.system("cgroup: open \(path)", "cannot write \(value)") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw CagentError.system("cgroup: write \(path)", "cannot write \(value)") }
    }
}
