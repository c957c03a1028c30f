import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The session cgroups' leases: `<runtime>/sessions/cg-<id>.lease`, one `cgroup PATH` line per directory the
/// session creates, written (under the setup lock) before the first mkdir and held while the session lives.
///
/// Why: a cagent killed with SIGKILL never runs `SessionCgroup.remove()`. Its sandbox dies with it, but its
/// cgroups stay; without a record, a cleaner can only guess from names and ages (an empty `cagent-*` cgroup
/// may be a session starting right now in another runtime directory). A lease nobody holds names exactly what
/// is left: the next session start and `cagent doctor --clean` remove it at once.
package enum SessionCgroupLeases {
    static let prefix = "cg-"

    package static func leaseID(_ sessionID: String) -> String { prefix + sessionID }

    /// The lease's text for these directories.
    static func contents(_ directories: [String]) -> String {
        directories.map { "cgroup \($0)\n" }.joined()
    }

    /// The cgroup directories a lease names. Only session cgroups (`/sys/fs/cgroup/.../cagent-*`, no `..`)
    /// are taken: the lease sits in root's runtime directory, but a cleaner must never rmdir anything else.
    package static func directories(in contents: String) -> [String] {
        contents.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("cgroup ") else { return nil }
            let path = String(line.dropFirst(7))
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard path.hasPrefix("/sys/fs/cgroup/"), !parts.contains(".."), !parts.contains("."),
                  parts.last?.hasPrefix("cagent-") == true else { return nil }
            return path
        }
    }

    /// Removes the cgroups of every dead session's lease under `paths`, then the lease. The caller holds the
    /// setup lock (a lease is created under it, so none is caught between its creation and its flock).
    @discardableResult
    package static func removeDead(paths: CagentPaths) -> (removed: [String], failed: [String]) {
        var removed: [String] = [], failed: [String] = []
        for lease in SessionLease.all(paths: paths) where !lease.live && lease.sessionID.hasPrefix(prefix) {
            var complete = true
            // Deepest first: a hierarchy's session cgroup has no children, but the order costs nothing.
            for directory in directories(in: lease.contents).reversed() where FileSystem.exists(directory) {
                if removeDirectory(directory) { removed.append("cgroup \(directory)") } else {
                    complete = false
                    failed.append("cgroup \(directory)")
                }
            }
            if complete { unlink(lease.path) }
        }
        return (removed, failed)
    }

    /// Kills whatever is in a session cgroup and removes it (retrying while the kernel finishes the exits).
    /// Returns whether it is gone.
    @discardableResult
    package static func removeDirectory(_ directory: String) -> Bool {
        // Stop further forks first (pids hierarchies), so the kill loop converges even on a fork bomb.
        if FileSystem.exists(directory + "/pids.max") { try? SessionCgroup.writeFile(directory + "/pids.max", "0") }
        for _ in 0..<200 {
            if FileSystem.exists(directory + "/cgroup.kill") { try? SessionCgroup.writeFile(directory + "/cgroup.kill", "1") }
            let pids = (FileSystem.readText(directory + "/cgroup.procs") ?? "").split(separator: "\n").compactMap { pid_t(String($0)) }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(5_000)
        }
        for _ in 0..<200 {
            if rmdir(directory) == 0 || errno == ENOENT { return true }
            usleep(5_000)
        }
        return false
    }
}
