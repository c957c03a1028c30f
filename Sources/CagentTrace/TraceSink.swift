import CagentEvents
#if canImport(Glibc)
import Glibc
#endif

/// Learn mode's tracing backends (docs/tracing.md).
package enum TracerBackend: String, Sendable, CaseIterable {
    /// Raw syscall tracepoints scoped to the session's cgroup, deduplicated in the kernel.
    case ebpf
    /// seccomp user notification: records and always continues; results inferred from the sandbox's view.
    case seccomp
    /// An external `tracee` process scoped to the session, its JSON lines fed to the importer.
    case tracee
}

/// Where a tracer delivers what it sees. `events` usually is a `Recorder`'s `record`; called from the tracer's
/// own thread, one event at a time.
package struct TraceSink: Sendable {
    package var events: @Sendable (ObservedEvent) -> Void

    package init(events: @escaping @Sendable (ObservedEvent) -> Void) {
        self.events = events
    }

    package static func recording(into recorder: some EventSink) -> TraceSink {
        TraceSink(events: { recorder.record($0) })
    }
}

/// What a tracer counted over a session.
package struct TraceSummary: Sendable, Hashable {
    package var backend: TracerBackend
    /// Traced syscalls of the tree.
    package var syscalls: UInt64 = 0
    /// Records that crossed to user space (eBPF) or notifications handled (seccomp).
    package var delivered: UInt64 = 0
    /// Repeats of an (operation, path, result) already seen: only counted.
    package var duplicates: UInt64 = 0
    /// Records lost (eBPF ring buffer full).
    package var lost: UInt64 = 0
    /// Paths or addresses that could not be read from the process.
    package var unreadable: UInt64 = 0
    /// How often each deduplicated (operation, path, result) was seen, first sight included.
    package var counts: [PathCount] = []

    package init(backend: TracerBackend) { self.backend = backend }
}

package struct PathCount: Sendable, Hashable {
    package var operation: FileOperation
    package var path: RawText
    package var result: Int32
    package var count: UInt64
}

/// A running tracer. `stop()` delivers what is still pending, releases every kernel object and returns the
/// counters; it is idempotent.
package protocol LearnTracer: AnyObject, Sendable {
    var backend: TracerBackend { get }
    func stop() throws -> TraceSummary
}

enum TraceClock {
    /// Wall-clock nanoseconds now.
    static func realtime() -> Nanoseconds {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Nanoseconds(t.tv_sec) * 1_000_000_000 + Nanoseconds(t.tv_nsec)
    }

    /// Realtime minus monotonic: adds to a bpf_ktime_get_ns() value to give wall-clock time.
    static func monotonicOffset() -> Nanoseconds {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return realtime() - (Nanoseconds(t.tv_sec) * 1_000_000_000 + Nanoseconds(t.tv_nsec))
    }
}
