import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// A cgroup2 directory a traced tree runs in. The eBPF tracer follows every task under it; the spawn
/// helper starts the tree there with CLONE_INTO_CGROUP (`fd` is what clone3 needs). The sandbox launcher
/// may use its own session cgroup instead: `TraceCgroup(existing:)`.
// @unchecked: a cgroup directory fd, removed once by the owner.
package final class TraceCgroup: @unchecked Sendable {
    package let path: String
    /// An O_DIRECTORY fd on the cgroup directory (for clone3's cgroup field and the BPF scope map).
    package let fd: Int32
    private let owned: Bool
    private var removed = false

    /// Creates `<cgroup2 mount>/cagent-trace-<unique>`.
    package convenience init() throws {
        guard let root = Self.cgroup2Mount() else {
            throw CagentError(stage: "trace cgroup", "no cgroup2 hierarchy is mounted",
                              hint: "mount cgroup2 (this host: /sys/fs/cgroup/unified) for the eBPF tracer's scope")
        }
        // A cagent killed with SIGKILL never removed its trace cgroup: those of dead cagents go first.
        Self.removeOrphans(under: root)
        let random = UInt64.random(in: 0...UInt64.max)
        let path = "\(root)/cagent-trace-\(getpid())-\(String(random & 0xffffff, radix: 16))"
        guard mkdir(path, 0o755) == 0 else {
            throw CagentError(stage: "trace cgroup", "cannot create \(path)", errno: errno)
        }
        try self.init(path: path, owned: true)
    }

    /// Uses an existing cgroup2 directory (not removed by `remove()`).
    package convenience init(existing path: String) throws { try self.init(path: path, owned: false) }

    private init(path: String, owned: Bool) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if owned { rmdir(path) }
            throw CagentError(stage: "trace cgroup", "cannot open \(path)", errno: code)
        }
        self.path = path; self.fd = fd; self.owned = owned
    }

    /// Closes the fd and, for a cgroup this object created, removes it (after the tree has exited).
    package func remove() throws {
        guard !removed else { return }
        removed = true
        close(fd)
        guard owned else { return }
        for _ in 0..<1000 {  // the last task leaves the cgroup a moment after it is reaped
            if rmdir(path) == 0 || errno == ENOENT { return }
            if errno != EBUSY { break }
            usleep(1_000)
        }
        throw CagentError(stage: "trace cgroup", "cannot remove \(path)", errno: errno)
    }

    deinit { try? remove() }

    /// The cgroup2 mount point (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid).
    /// Whether `name` is a trace cgroup (`cagent-trace-<pid>-<random>`) whose cagent is dead: its name carries
    /// the pid of the cagent that made it, and a live cagent removes its own. (A cagent in another pid
    /// namespace names a pid this one cannot see: callers remove only cgroups that are empty or emptying, whose
    /// traced tree has gone with its cagent.)
    package static func isOrphan(name: String) -> Bool {
        guard name.hasPrefix("cagent-trace-") else { return false }
        let fields = name.dropFirst("cagent-trace-".count).split(separator: "-")
        guard fields.count == 2, let pid = pid_t(fields[0]), pid > 0 else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Removes the trace cgroups of dead cagents under `root` (the cgroup2 mount); returns their paths.
    @discardableResult
    package static func removeOrphans(under root: String) -> [String] {
        var removed: [String] = []
        for name in FileSystem.list(root) where isOrphan(name: name) {
            let path = root + "/" + name
            // Its tree died with its cagent (parent-death signal): at most a moment of exiting is left.
            for _ in 0..<200 {
                if rmdir(path) == 0 || errno == ENOENT { removed.append(path); break }
                if errno != EBUSY { break }
                let kill = open(path + "/cgroup.kill", O_WRONLY | O_CLOEXEC)
                if kill >= 0 { _ = write(kill, "1", 1); close(kill) }
                usleep(5_000)
            }
        }
        return removed
    }

    package static func cgroup2Mount() -> String? {
        guard let mounts = FileSystem.readText("/proc/self/mounts") else { return nil }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count >= 3 && fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }
}
