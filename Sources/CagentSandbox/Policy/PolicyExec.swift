import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Everything applied to the agent's process right before execve, in this order: join the session's
/// cgroups, lower rlimits, Landlock, seccomp. cagent-init does the same through `cg_policy_apply`; this
/// type runs a command under it directly (tests, and probes that need no full sandbox).
public struct ProcessPolicy: Sendable {
    public var cgroupProcs: [String] = []
    public var rlimits: [cg_rlimit_setting] = []
    public var landlock: LandlockRuleset?
    public var seccomp: SeccompProgram?

    public init(cgroupProcs: [String] = [], rlimits: [cg_rlimit_setting] = [], landlock: LandlockRuleset? = nil,
                seccomp: SeccompProgram? = nil) {
        self.cgroupProcs = cgroupProcs; self.rlimits = rlimits; self.landlock = landlock; self.seccomp = seccomp
    }

    /// Flags for `spawn`.
    public struct SpawnFlags: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        /// The child is pid 1 of a new pid namespace.
        public static let newPidNamespace = SpawnFlags(rawValue: CG_SPAWN_NEWPID)
        /// New session with stdin as its controlling terminal.
        public static let newSession = SpawnFlags(rawValue: CG_SPAWN_SETSID)
        /// A new mount namespace, all mounts private.
        public static let newMountNamespace = SpawnFlags(rawValue: CG_SPAWN_NEWNS)
    }

    /// Forks, applies the policy in the child (C only after fork) and execs `argv[0]` (an absolute path).
    /// Returns the pid once the exec succeeded; throws with the failing stage otherwise.
    public func spawn(_ argv: [String], environment: [String], stdin: Int32 = -1, stdout: Int32 = -1,
                      stderr: Int32 = -1, flags: SpawnFlags = []) throws -> pid_t {
        precondition(!argv.isEmpty && argv[0].hasPrefix("/"), "argv[0] must be an absolute path")
        let cArgv = argv.map { strdup($0) }, cEnv = environment.map { strdup($0) }
        let cProcs = cgroupProcs.map { strdup($0) }
        defer { (cArgv + cEnv + cProcs).forEach { free($0) } }
        let argvArray: [UnsafeMutablePointer<CChar>?] = cArgv + [nil]
        let envArray: [UnsafeMutablePointer<CChar>?] = cEnv + [nil]
        let procsArray: [UnsafePointer<CChar>?] = cProcs.map { UnsafePointer($0) }
        let filter = seccomp?.bytes ?? []
        var stage: Int32 = 0
        let result: pid_t = procsArray.withUnsafeBufferPointer { procs in
            rlimits.withUnsafeBufferPointer { limits in
                filter.withUnsafeBytes { filterBytes in
                    func run(_ ruleset: UnsafePointer<cg_landlock_ruleset>?) -> pid_t {
                        var policy = cg_policy(cgroup_procs: procs.baseAddress, cgroup_count: UInt32(procs.count),
                                               rlimits: limits.baseAddress, rlimit_count: UInt32(limits.count),
                                               landlock: ruleset,
                                               seccomp_filter: filter.isEmpty ? nil : filterBytes.baseAddress,
                                               seccomp_count: UInt32(filter.count / 8))
                        return cg_policy_spawn(&policy, argv[0], argvArray, envArray, stdin, stdout, stderr,
                                               flags.rawValue, &stage)
                    }
                    if let landlock { return landlock.withCRuleset { run($0) } }
                    return run(nil)
                }
            }
        }
        if result < 0 {
            throw CagentError(stage: "policy: \(String(cString: cg_policy_stage_name(stage)))",
                              "cannot start \(argv[0]) under the sandbox policy", errno: -result)
        }
        return result
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Still running at the deadline: killed (SIGKILL) and reaped.
        case timedOut
    }

    /// Waits for `pid`, killing it at the deadline. Polls, so no thread blocks in waitpid past the deadline.
    public static func wait(_ pid: pid_t, timeout seconds: Double) -> Termination {
        let deadline = monotonicSeconds() + seconds
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return .exited(-1) }
            if monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return .timedOut
            }
            usleep(2_000)
        }
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signaled(status & 0x7F)
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
