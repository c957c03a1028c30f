import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// How one session's process and memory limits hold: through its own cgroups (SessionCgroup) where a
/// hierarchy with the pids and memory controllers is mounted and writable, or else through rlimits
/// (`ResourceLimits.withoutCgroup`): under `ip netns exec` (a fresh sysfs, /sys/fs/cgroup empty), in a
/// container with a read-only or namespaced /sys/fs/cgroup, or as a plain user without a delegated cgroup.
/// The fallback is announced in one line (`notice`) instead of refusing to start: the rlimits still stop a
/// fork bomb (RLIMIT_NPROC is counted in the sandbox's own user namespace) and bound each process's memory.
package final class SessionLimits: Sendable {
    package let cgroup: SessionCgroup?
    /// Why no cgroup is used (nil when one is).
    package let fallbackReason: String?
    package let limits: ResourceLimits

    /// Creates the session's cgroups, or decides on the rlimit fallback. Never throws: every cgroup failure
    /// (no controller, no write access, no cgroup2 delegation) is a reason for the fallback.
    package init(id: String, limits: ResourceLimits, layout: CgroupLayout = .detect(), paths: CagentPaths? = nil) {
        var limits = limits
        do {
            cgroup = try SessionCgroup(id: id, limits: limits, layout: layout, paths: paths)
            fallbackReason = nil
        } catch {
            cgroup = nil
            let described = error as? CagentError
            fallbackReason = described.map { error in
                error.errno.map { "\(error.stage): \(error.message): \(String(cString: strerror($0)))" } ?? "\(error.stage): \(error.message)"
            } ?? "\(error)"
            limits.withoutCgroup = true
        }
        self.limits = limits
    }

    /// The process policy's limits: with `withoutCgroup` set when the rlimits must hold them.
    package var withoutCgroup: Bool { cgroup == nil }

    /// The one line shown at the start when the rlimits hold the limits.
    package var notice: String? {
        guard let reason = fallbackReason else { return nil }
        return "limits: no usable cgroup (\(TerminalEscape.escape(reason))): RLIMIT_NPROC holds the process limit (\(limits.processes), counted in the sandbox's user namespace), RLIMIT_DATA the memory limit per process (\(limits.memoryBytes >> 20) MiB, not the session's total); `cagent doctor` shows which limits hold"
    }

    package func add(pid: pid_t) throws { try cgroup?.add(pid: pid) }
    package func exhaustionReport() -> [String] { cgroup?.exhaustionReport() ?? [] }
    package func remove() { cgroup?.remove() }
}
