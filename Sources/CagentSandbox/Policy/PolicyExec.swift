import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Everything applied to the agent's process right before execve, in this order: join the session's
/// cgroups, lower rlimits, Landlock, seccomp. cagent-init does the same through `cg_policy_apply`; this
/// type runs a command under it directly (tests, and probes that need no full sandbox).
package struct ProcessPolicy: Sendable {
    package var cgroupProcs: [String] = []
    package var rlimits: [cg_rlimit_setting] = []
    package var landlock: LandlockRuleset?
    package var seccomp: SeccompProgram?

    package init(cgroupProcs: [String] = [], rlimits: [cg_rlimit_setting] = [], landlock: LandlockRuleset? = nil,
                seccomp: SeccompProgram? = nil) {
        self.cgroupProcs = cgroupProcs; self.rlimits = rlimits; self.landlock = landlock; self.seccomp = seccomp
    }

    /// Flags for `spawn`.
    package struct SpawnFlags: OptionSet, Sendable {
        package let rawValue: Int32
        package init(rawValue: Int32) { self.rawValue = rawValue }
        /// The child is pid 1 of a new pid namespace.
        package static let newPidNamespace = SpawnFlags(rawValue: CG_SPAWN_NEWPID)
        /// New session with stdin as its controlling terminal.
        package static let newSession = SpawnFlags(rawValue: CG_SPAWN_SETSID)
        /// A new mount namespace, all mounts private.
        package static let newMountNamespace = SpawnFlags(rawValue: CG_SPAWN_NEWNS)
    }

    /// The agent's policy for a sandbox: the compiled filter, the Landlock ruleset for the view narrowed to
    /// the running kernel, and the limits' rlimits. Cgroup placement is left to the supervisor
    /// (`SessionCgroup.add(pid:)` on the init). `notices` say what an older kernel loses; show them.
    package static func forSandbox(limits: ResourceLimits, readOnly: [String], readWrite: [String],
                                  devices: [LandlockRule] = LandlockRuleset.standardDevices,
                                  kernelABI: Int? = LandlockRuleset.kernelABI()) throws -> (policy: ProcessPolicy, notices: [String]) {
        let view = LandlockRuleset.forView(readOnly: readOnly, readWrite: readWrite, devices: devices)
        let (landlock, notices) = view.adapted(toABI: kernelABI ?? 0)
        return (ProcessPolicy(rlimits: limits.rlimits, landlock: landlock, seccomp: try SeccompCompiler.compile()), notices)
    }

    /// The policy as the flat message `cg_policy_decode` reads (format in cg_policy.h): what the supervisor
    /// sends to cagent-init, which applies it with `cg_policy_decode` + `cg_policy_apply` before execve.
    package func serialized() throws -> [UInt8] {
        guard cgroupProcs.count <= Int(CG_POLICY_MAX_CGROUPS), rlimits.count <= Int(CG_POLICY_MAX_RLIMITS),
              (landlock?.rules.count ?? 0) <= Int(CG_POLICY_MAX_RULES) else {
            throw CagentError(stage: "policy: encode", "too many cgroups, rlimits or Landlock rules for cagent-init")
        }
        var out: [UInt8] = Array("CGP1".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func string(_ s: String) throws {
            guard !s.utf8.contains(0) else { throw CagentError(stage: "policy: encode", "a path contains NUL") }
            out += Array(s.utf8); out.append(0)
        }
        u32(UInt32(cgroupProcs.count))
        for path in cgroupProcs { try string(path) }
        u32(UInt32(rlimits.count))
        for limit in rlimits { u32(UInt32(bitPattern: limit.resource)); u64(limit.soft); u64(limit.hard) }
        if let landlock {
            u32(1); u32(UInt32(landlock.abi)); u64(landlock.handled.rawValue); u64(landlock.scoped.rawValue)
            u32(UInt32(landlock.rules.count))
            for rule in landlock.rules { u64(rule.access.rawValue); try string(rule.path) }
        } else {
            u32(0)
        }
        let filter = seccomp?.bytes ?? []
        u32(UInt32(filter.count / 8))
        out += filter
        return out
    }

    /// Forks, applies the policy in the child (C only after fork) and execs `argv[0]` (an absolute path).
    /// The policy goes through `serialized()` and `cg_policy_decode`, the path cagent-init uses.
    /// Returns the pid once the exec succeeded; throws with the failing stage otherwise.
    package func spawn(_ argv: [String], environment: [String], stdin: Int32 = -1, stdout: Int32 = -1,
                      stderr: Int32 = -1, flags: SpawnFlags = []) throws -> pid_t {
        precondition(!argv.isEmpty && argv[0].hasPrefix("/"), "argv[0] must be an absolute path")
        let message = try serialized()
        let cArgv = argv.map { strdup($0) }, cEnv = environment.map { strdup($0) }
        defer { (cArgv + cEnv).forEach { free($0) } }
        let argvArray: [UnsafeMutablePointer<CChar>?] = cArgv + [nil]
        let envArray: [UnsafeMutablePointer<CChar>?] = cEnv + [nil]
        let storage = UnsafeMutablePointer<cg_policy_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        var stage: Int32 = 0
        let result: pid_t = message.withUnsafeBytes { bytes in
            let decoded = cg_policy_decode(bytes.baseAddress, UInt(bytes.count), storage)
            guard decoded == 0 else { stage = -1; return decoded }
            return withUnsafePointer(to: &storage.pointee.policy) { policy in
                cg_policy_spawn(policy, argv[0], argvArray, envArray, stdin, stdout, stderr, flags.rawValue, &stage)
            }
        }
        if result < 0 {
            let where_ = stage < 0 ? "decode" : String(cString: cg_policy_stage_name(stage))
            throw CagentError(stage: "policy: \(where_)", "cannot start \(argv[0]) under the sandbox policy",
                              errno: -result)
        }
        return result
    }

    /// How a child ended.
    package enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Still running at the deadline: killed (SIGKILL) and reaped.
        case timedOut
    }

    /// Waits for `pid`, killing it at the deadline. Polls, so no thread blocks in waitpid past the deadline.
    package static func wait(_ pid: pid_t, timeout seconds: Double) -> Termination {
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
