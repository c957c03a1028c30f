import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// A process started for tracing (tests, benchmarks, and a stand-alone run outside the sandbox): in the
/// tracer's cgroup via CLONE_INTO_CGROUP and/or under the seccomp tracing filter. The sandbox launcher
/// does the same in its own clone3 child (docs/tracing.md, "Plugging into the launcher").
// @unchecked: its pidfd, listener and exec-error fds are taken and closed once by the owner.
package final class TracedProcess: @unchecked Sendable {
    package let pid: Int32
    package let pidfd: Int32
    /// The seccomp listener (when started with `notify`); the SeccompNotifyTracer takes ownership.
    package private(set) var listener: Int32
    private var execErrorFd: Int32
    private var reaped: Int32?

    /// Starts `argv[0]` (an absolute path) with `argv`, in `cgroup` when given, under the seccomp tracing
    /// filter when `notify`.
    package init(argv: [String], environment: [String] = ["PATH=/usr/bin:/bin"], workingDirectory: String? = nil,
                cgroup: TraceCgroup? = nil, notify: Bool = false) throws {
        precondition(!argv.isEmpty)
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = environment.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var listener: Int32 = -1, execError: Int32 = -1, pidfd: Int32 = -1
        let pid = cg_trace_spawn(argv[0], &cArgs, &cEnv, workingDirectory, cgroup?.fd ?? -1, notify ? 1 : 0,
                                 &listener, &execError, &pidfd)
        guard pid > 0 else {
            throw CagentError(stage: "trace spawn", "cannot start \(argv[0])", errno: -pid,
                              hint: notify ? "the seccomp tracer needs seccomp user notification (`cagent doctor`)" : nil)
        }
        self.pid = pid; self.pidfd = pidfd; self.listener = listener; self.execErrorFd = execError
    }

    /// Hands the listener fd over (the caller closes it).
    package func takeListener() -> Int32 {
        let fd = listener
        listener = -1
        return fd
    }

    /// Waits for execve's outcome: nil on success, else its errno. With `notify`, only call it once the
    /// listener is being serviced (execve is traced).
    package func execResult() -> Int32? {
        guard execErrorFd >= 0 else { return nil }
        var code: Int32 = 0
        var n: Int
        repeat { n = read(execErrorFd, &code, 4) } while n < 0 && errno == EINTR
        close(execErrorFd)
        execErrorFd = -1
        return n == 4 ? code : nil
    }

    /// Waits for the process and returns its exit code (128 + signal when killed).
    @discardableResult
    package func wait() -> Int32 {
        if let reaped { return reaped }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = EbpfTracer.exitCode(status)
        reaped = code
        return code
    }

    deinit {
        if reaped == nil { kill(pid, SIGKILL); wait() }
        if listener >= 0 { close(listener) }
        if execErrorFd >= 0 { close(execErrorFd) }
        if pidfd >= 0 { close(pidfd) }
    }
}
