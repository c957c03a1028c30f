import CagentCore
import CagentDNS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The filtering proxy's live lines (`enforce --proxy`): each distinct refusal printed once, at most
/// `linesPerSecond` after a burst (an agent looping over refused requests must not flood the terminal),
/// and a count line at the end. The proxy's requests are not DNS rows or flows, so they stay out of the
/// DenialReporter's list and the session record.
final class ProxyDenialLines: Sendable {
    private struct State {
        var forwarded = 0, refused = 0, suppressed = 0
        var shown: Set<String> = []
        var tokens: Double
        var lastRefill: Double
    }
    private let state: Mutex<State>
    private let output: @Sendable (String) -> Void
    private let linesPerSecond: Double, burst: Double
    static let maxDistinct = 4096

    init(linesPerSecond: Double = 5, burst: Double = 20, output: @escaping @Sendable (String) -> Void) {
        self.output = output; self.linesPerSecond = linesPerSecond; self.burst = burst
        state = Mutex(State(tokens: burst, lastRefill: Self.now()))
    }

    func record(_ event: ProxyEvent) {
        guard let line = event.denialLine else {
            state.withLock { $0.forwarded += 1 }
            return
        }
        let show: Bool = state.withLock { state in
            state.refused += 1
            guard !state.shown.contains(line) else { return false }
            let now = Self.now()
            state.tokens = min(burst, state.tokens + (now - state.lastRefill) * linesPerSecond)
            state.lastRefill = now
            guard state.tokens >= 1, state.shown.count < Self.maxDistinct else { state.suppressed += 1; return false }
            state.tokens -= 1
            state.shown.insert(line)
            return true
        }
        if show { output(line) }
    }

    /// The end-of-session line, or nil when the agent never used the proxy.
    var summaryLine: String? {
        state.withLock { s in
            guard s.forwarded + s.refused > 0 else { return nil }
            return "cagent: proxy: \(s.forwarded) forwarded, \(s.refused) refused" + (s.suppressed > 0 ? " (\(s.suppressed) refusal lines not shown)" : "")
        }
    }

    private static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
