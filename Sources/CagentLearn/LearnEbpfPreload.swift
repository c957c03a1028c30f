import CagentCore
import CagentTrace
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Learn mode's eBPF tracer and its cgroup, loaded on a thread of their own while the command plans the
/// sandbox and sets up its network (loading, verifying and relocating the programs takes ~30 ms that would
/// otherwise come before the agent starts). Attached but idle: the cgroup holds no task until `admit` moves
/// the sandbox's init into it (also on its own thread: a cgroup migration waits for an RCU grace period),
/// and the init runs nothing before its plan, which comes after `take` (the real sink is set by then).
/// Exactly one of `take` or `discard` owns the result; an admitted init is moved back out (to the root
/// cgroup) before the cgroup is removed on a failure path, since the init is still alive then.
package final class LearnEbpfPreload: Sendable {
    // Each outcome is nil until its event (the cgroup made, the programs loaded, the init moved); a wait for
    // it blocks until then.
    private let cgroup = Monitor<Result<TraceCgroup, any Error>?>(nil)
    private let tracer = Monitor<Result<EbpfTracer, any Error>?>(nil)
    private let admission = Monitor<Result<Int32, any Error>?>(nil)
    /// Whether an admission was asked for, and whether `take` or `discard` owns the result.
    private let owner = Mutex<(admitting: Bool, taken: Bool)>((false, false))

    package init() {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            learnTiming("preload begin")
            let made = Result { try TraceCgroup() }
            cgroup.update { $0 = made }
            let loaded: Result<EbpfTracer, any Error>
            switch made {
            case .success(let cgroup):
                loaded = Result { try EbpfTracer(cgroup: cgroup, sink: TraceSink(events: { _ in }), counts: false) }
            case .failure(let error):
                loaded = .failure(error)
            }
            learnTiming("preload end")
            tracer.update { $0 = loaded }
        }
    }

    private func waitLoaded() -> Result<EbpfTracer, any Error> { tracer.wait { $0 } }

    /// The admission's outcome (nil: none was asked for).
    private func waitAdmitted() -> Result<Int32, any Error>? {
        guard owner.withLock({ $0.admitting }) else { return nil }
        return admission.wait { $0 }
    }

    /// nil when the tracer loaded, else why not (the auto choice's probe).
    package func failure() -> String? {
        if case .failure(let error) = waitLoaded() { return "cannot load: \(error)" }
        return nil
    }

    /// Moves `pid` (the sandbox's init, waiting for its plan) into the cgroup as soon as the cgroup exists,
    /// on another thread; `take` waits for it. Once only.
    package func admit(pid: Int32) {
        let first = owner.withLock { state in
            defer { state.admitting = true }
            return !state.admitting
        }
        guard first else { return }
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let admitted: Result<Int32, any Error>
            switch cgroup.wait(for: { $0 }) {
            case .success(let cgroup):
                admitted = Result { try Self.write(pid, into: cgroup.path); return pid }
            case .failure(let error):
                admitted = .failure(error)
            }
            admission.update { $0 = admitted }
        }
    }

    /// The loaded tracer and its cgroup (with the init in it, when admitted), now the caller's; or the error
    /// of the load or the admission, with everything already released.
    package func take() throws -> (TraceCgroup, EbpfTracer) {
        let loadedTracer = waitLoaded()
        let admission = waitAdmitted()
        owner.withLock { $0.taken = true }
        do {
            let tracer = try loadedTracer.get()
            if let admission { _ = try admission.get() }
            let cgroup = try cgroup.wait { $0 }.get()  // made before the tracer loaded
            return (cgroup, tracer)
        } catch {
            release(tracer: try? loadedTracer.get(), admission: admission)
            throw error
        }
    }

    /// Stops and removes what nobody took (an exit before the sandbox started). Idempotent.
    package func discard() {
        let first = owner.withLock { state in
            defer { state.taken = true }
            return !state.taken
        }
        guard first else { return }
        let loadedTracer = waitLoaded()
        release(tracer: try? loadedTracer.get(), admission: waitAdmitted())
    }

    private func release(tracer: EbpfTracer?, admission: Result<Int32, Error>?) {
        if let tracer { _ = try? tracer.stop() }
        guard case .success(let cgroup) = cgroup.wait(for: { $0 }) else { return }
        if case .success(let pid) = admission, let root = TraceCgroup.cgroup2Mount() {
            try? Self.write(pid, into: root)  // the init is alive (the launcher ends it): out, so the cgroup can go
        }
        try? cgroup.remove()
    }

    private static func write(_ pid: Int32, into directory: String) throws {
        let procs = open(directory + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procs >= 0 else { throw CagentError.system("trace cgroup", "cannot open \(directory)/cgroup.procs") }
        let text = Array("\(pid)\n".utf8)
        let written = text.withUnsafeBytes { Glibc.write(procs, $0.baseAddress, $0.count) }
        let code = errno
        close(procs)
        guard written == text.count else {
            throw CagentError(stage: "trace cgroup", "cannot move pid \(pid) into \(directory)", errno: code)
        }
    }
}
