#if canImport(Glibc)
import Glibc
#endif

/// `CAGENT_TIMING=1`: a session prints a monotonic timestamp at each stage of its start and end to standard
/// error, so where the fixed cost goes can be read from one run (docs/benchmarks.md). Off, a mark is one branch.
package enum Timing {
    package static let on = getenv("CAGENT_TIMING") != nil

    package static func mark(_ what: @autoclosure () -> String) {
        guard on else { return }
        var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t)
        let micros = String(Int(t.tv_nsec) / 1000)
        let padded = String(repeating: "0", count: max(0, 6 - micros.count)) + micros
        let line = "T \(Int(t.tv_sec) % 1000).\(padded) \(what())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
