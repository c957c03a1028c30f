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
package final class LearnPending<T: Sendable>: Sendable {
    /// nil until the work has ended.
    private let outcome = Monitor<Result<T, any Error>?>(nil)

    package init(_ work: @escaping @Sendable () throws -> T) {
        DispatchQueue.global(qos: .userInitiated).async { [outcome] in
            let result = Result { try work() }
            outcome.update { $0 = result }
        }
    }

    /// Waits for the work to end; from any thread, any number of times.
    package func get() throws -> T {
        try outcome.wait { $0 }.get()
    }
}
