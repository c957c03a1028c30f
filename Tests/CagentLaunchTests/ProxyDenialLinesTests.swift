import CagentDNS
@testable import CagentLaunch
import Synchronization
import Testing

/// The filtering proxy's live lines: each distinct refusal once, a burst then a rate, counts at the end.
@Suite struct ProxyDenialLinesTests {
    @Test func distinctRefusalsOnceAndBounded() {
        let printed = Mutex<[String]>([])
        let lines = ProxyDenialLines(linesPerSecond: 0.001, burst: 3) { line in printed.withLock { $0.append(line) } }
        #expect(lines.summaryLine == nil)
        for _ in 0..<5 { lines.record(.refused(method: "CONNECT", target: "evil.test:443", reason: "not in profile")) }
        lines.record(.forwarded(method: "CONNECT", target: "www.allowed.test:443"))
        for index in 0..<10 { lines.record(.refused(method: "GET", target: "h\(index).test:80", reason: "not in profile")) }
        let shown = printed.withLock { $0 }
        #expect(shown == ["cagent: refused proxy CONNECT evil.test:443 (not in profile)",
                          "cagent: refused proxy request GET h0.test:80 (not in profile)",
                          "cagent: refused proxy request GET h1.test:80 (not in profile)"])
        #expect(lines.summaryLine == "cagent: proxy: 1 forwarded, 15 refused (8 refusal lines not shown)")
        // Escaped for the terminal: a target or reason never carries a control byte through.
        #expect(ProxyEvent.refused(method: nil, target: nil, reason: "x\u{1b}[2Jy").denialLine == "cagent: refused proxy request (x\\x1B[2Jy)")
    }
}
