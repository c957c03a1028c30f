import CagentCore
import CagentLaunch
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// `CAGENT_TIMING=1`: a learn session's stages (Timing; docs/benchmarks.md "Learn mode").
package var learnTimingOn: Bool { Timing.on }
package func learnTiming(_ what: String) { Timing.mark(what) }

/// A value computed on another thread from now on; `get` waits for it (and rethrows its error).
package final class LearnPending<T>: @unchecked Sendable {
    /// Waits for the work to end (an event, not a lock); `outcome` is written before the signal.
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<T, Error> = .failure(CagentError(stage: "learn", "the pending work has not ended"))
    private var waited = false

    package init(_ work: @escaping @Sendable () throws -> T) {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            outcome = Result { try work() }
            done.signal()
        }
    }

    /// From one thread at a time (the command's).
    package func get() throws -> T {
        if !waited { done.wait(); waited = true }
        return try outcome.get()
    }
}
