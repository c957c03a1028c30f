import CagentCore
import CagentTrace
import Dispatch
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
package final class LearnEbpfPreload: @unchecked Sendable {
    // Each semaphore waits for an event (the cgroup made, the programs loaded, the init moved), not a lock:
    // its result is written before the signal and read after the wait.
    private let created = DispatchSemaphore(value: 0)
    private let loaded = DispatchSemaphore(value: 0)
    private let admitted = DispatchSemaphore(value: 0)
    private var cgroup: Result<TraceCgroup, Error> = .failure(LearnEbpfPreload.notYet)       // set before `created`
    private var tracer: Result<EbpfTracer, Error> = .failure(LearnEbpfPreload.notYet)        // set before `loaded`
    private var admission: Result<Int32, Error> = .failure(LearnEbpfPreload.notYet)          // set before `admitted`
    private var loadWaited = false, admitWaited = false, admitting = false, taken = false

    private static var notYet: CagentError { CagentError(stage: "trace cgroup", "the eBPF preload has not finished") }

    package init() {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            learnTiming("preload begin")
            let made = Result { try TraceCgroup() }
            cgroup = made
            created.signal()
            switch made {
            case .success(let cgroup):
                tracer = Result { try EbpfTracer(cgroup: cgroup, sink: TraceSink(events: { _ in }), counts: false) }
            case .failure(let error):
                tracer = .failure(error)
            }
            learnTiming("preload end")
            loaded.signal()
        }
    }

    private func waitLoaded() -> Result<EbpfTracer, Error> {
        if !loadWaited { loaded.wait(); loadWaited = true }
        return tracer
    }

    /// The admission's outcome (nil: none was asked for).
    private func waitAdmitted() -> Result<Int32, Error>? {
        guard admitting else { return nil }
        if !admitWaited { admitted.wait(); admitWaited = true }
        return admission
    }

    /// nil when the tracer loaded, else why not (the auto choice's probe).
    package func failure() -> String? {
        if case .failure(let error) = waitLoaded() { return "cannot load: \(error)" }
        return nil
    }

    /// Moves `pid` (the sandbox's init, waiting for its plan) into the cgroup as soon as the cgroup exists,
    /// on another thread; `take` waits for it. Once only.
    package func admit(pid: Int32) {
        guard !admitting else { return }
        admitting = true
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            created.wait()
            created.signal()  // for anyone else waiting on the cgroup
            switch cgroup {
            case .success(let cgroup):
                admission = Result { try Self.write(pid, into: cgroup.path); return pid }
            case .failure(let error):
                admission = .failure(error)
            }
            admitted.signal()
        }
    }

    /// The loaded tracer and its cgroup (with the init in it, when admitted), now the caller's; or the error
    /// of the load or the admission, with everything already released.
    package func take() throws -> (TraceCgroup, EbpfTracer) {
        let loadedTracer = waitLoaded()
        let admission = waitAdmitted()
        taken = true
        do {
            let tracer = try loadedTracer.get()
            if let admission { _ = try admission.get() }
            guard case .success(let cgroup) = cgroup else { throw CagentError(stage: "trace cgroup", "no cgroup") }
            return (cgroup, tracer)
        } catch {
            release(tracer: try? loadedTracer.get(), admission: admission)
            throw error
        }
    }

    /// Stops and removes what nobody took (an exit before the sandbox started). Idempotent.
    package func discard() {
        guard !taken else { return }
        taken = true
        let loadedTracer = waitLoaded()
        release(tracer: try? loadedTracer.get(), admission: waitAdmitted())
    }

    private func release(tracer: EbpfTracer?, admission: Result<Int32, Error>?) {
        if let tracer { _ = try? tracer.stop() }
        guard case .success(let cgroup) = cgroup else { return }
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
