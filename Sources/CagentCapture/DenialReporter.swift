#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CagentCore
import CagentDNS
import CagentNetwork

/// Turns gate events and denied packets into one escaped line per new (verdict, name or address, port,
/// proto), rate-limited so a flood cannot bury the terminal, and keeps the counts and the full list for
/// the end of the session.
package final class DenialReporter: Sendable {
    /// `failed`: the upstream resolver failed (SERVFAIL, timeout) — the network's failure, not a refusal.
    package enum Verdict: String, Sendable { case blocked, refused, allowed, failed }

    /// One distinct finding and how often it happened.
    package struct Entry: Sendable, Equatable {
        package var verdict: Verdict
        /// The name (escaped display form) or, for blocked packets, the address.
        package var subject: String
        package var name: String?
        package var port: UInt16?
        package var proto: String
        package var reason: String?
        package var count: Int
        /// Wall-clock nanoseconds since the epoch (the session record's evidence).
        package var firstSeen: Int64 = 0
        package var lastSeen: Int64 = 0
        /// Whether a profile entry could allow it (a name not in the profile, a blocked packet): the
        /// entries `cagent profile propose --update` proposes from.
        package var allowable = false
    }

    package struct Summary: Sendable, Equatable {
        package var allowed: Int
        package var refused: Int
        package var blocked: Int
        package var suppressedLines: Int
        /// Upstream DNS failures (not refusals: the profile allowed the name).
        package var failed: Int
        /// Distinct findings counted but not kept in the list (it holds `maxEntries`: a flood of fresh names
        /// must not grow cagent's memory without bound).
        package var unlisted: Int
        package init(allowed: Int, refused: Int, blocked: Int, suppressedLines: Int, failed: Int = 0, unlisted: Int = 0) {
            self.allowed = allowed; self.refused = refused; self.blocked = blocked
            self.suppressedLines = suppressedLines; self.failed = failed; self.unlisted = unlisted
        }
    }

    struct Key: Hashable { var verdict: Verdict; var subject: String; var port: UInt16?; var proto: String }

    struct State {
        var entries: [Key: Entry] = [:]
        var order: [Key] = []
        var allowed = 0, refused = 0, blocked = 0, failed = 0
        var tokens: Double
        var lastRefill: Double
        var suppressed = 0
        var suppressedSinceLine = 0
        var unlisted = 0
    }

    /// Distinct findings kept for the list; later new ones are only counted (`Summary.unlisted`).
    package let maxEntries: Int

    private let book: AddressBook?
    private let output: @Sendable (String) -> Void
    private let linesPerSecond: Double
    private let burst: Double
    private let clock: @Sendable () -> Double
    private let wallClock: @Sendable () -> Int64
    /// Appended to every line of a denial a profile entry could allow (" — allow: COMMAND"), escaped.
    private let allowSuffix: String
    private let state: Mutex<State>

    /// `output` gets whole lines without the newline. `book` maps addresses back to names.
    /// `allowHint`: the command that proposes allowing a denial (`cagent profile propose --update P --session
    /// ID`), already quoted for a shell; escaped here for the terminal.
    package init(book: AddressBook?, linesPerSecond: Double = 5, burst: Double = 20,
                clock: @escaping @Sendable () -> Double = DenialReporter.monotonic,
                wallClock: @escaping @Sendable () -> Int64 = DenialReporter.realtime,
                allowHint: String? = nil, maxEntries: Int = 20_000,
                output: @escaping @Sendable (String) -> Void) {
        self.maxEntries = maxEntries
        self.book = book; self.output = output; self.linesPerSecond = linesPerSecond; self.burst = burst
        self.clock = clock; self.wallClock = wallClock
        self.allowSuffix = allowHint.map { " — allow: " + TerminalEscape.escape($0) } ?? ""
        self.state = Mutex(State(tokens: burst, lastRefill: clock()))
    }

    package static let monotonic: @Sendable () -> Double = {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    package static let realtime: @Sendable () -> Int64 = {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func show(_ name: DNSName) -> String { TerminalEscape.escape(name.display) }

    package func record(_ event: GateEvent) {
        switch event {
        case .resolved(let name, _, _):
            note(Key(verdict: .allowed, subject: DenialReporter.show(name).lowercased(), port: 53, proto: "dns"),
                 name: nil, reason: nil, line: nil)
        case .notAllowed(let name, _):
            let shown = DenialReporter.show(name)
            // A name that looks like encoded data is never proposed (EncodedLabel): no allow command for it.
            let encoded = EncodedLabel.nameLooksEncoded(name.display)
            note(Key(verdict: .refused, subject: shown.lowercased(), port: 53, proto: "dns"), name: shown, reason: "not in profile",
                 line: "cagent: refused DNS \(shown) (not in profile)"
                    + (encoded ? " — looks like encoded data (DNS exfiltration?): never proposed" : allowSuffix),
                 allowable: !encoded)
        case .noData(let name, let type):
            guard type != DNSType.aaaa else { return }   // AAAA without IPv6 is routine, not a denial
            let shown = DenialReporter.show(name)
            let typeName = DNSType.name(type)
            note(Key(verdict: .refused, subject: shown.lowercased() + " " + typeName, port: 53, proto: "dns"), name: shown,
                 reason: "\(typeName) not forwarded", line: "cagent: refused DNS \(shown) \(typeName) (only A/AAAA are forwarded)")
        case .refused(let name, let reason):
            let shown = name.map(DenialReporter.show) ?? "(unreadable query)"
            let why = TerminalEscape.escape(reason)
            note(Key(verdict: .refused, subject: shown.lowercased() + " " + why, port: 53, proto: "dns"), name: shown, reason: why,
                 line: "cagent: refused DNS \(shown) (\(why))")
        case .failed(let name, let reason):
            let shown = DenialReporter.show(name)
            let why = TerminalEscape.escape(reason)
            note(Key(verdict: .failed, subject: shown.lowercased(), port: 53, proto: "dns"), name: shown, reason: why,
                 line: "cagent: DNS failed for \(shown) (\(why))")
        }
    }

    package func record(_ packet: DeniedPacket) {
        let address = packet.destination
        let shownAddress = address.isV4 ? "\(address)" : "[\(address)]"
        let target = packet.port.map { "\(shownAddress):\($0)" } ?? "\(address)"
        let name = book?.name(for: address).map(DenialReporter.show)
        let line = "cagent: blocked \(packet.protoName) \(target)" + (name.map { " (\($0))" } ?? "")
        note(Key(verdict: .blocked, subject: "\(address)", port: packet.port, proto: packet.protoName), name: name, reason: nil,
             line: line + allowSuffix, allowable: true)
    }

    private func note(_ key: Key, name: String?, reason: String?, line: String?, allowable: Bool = false) {
        let now = wallClock()
        let text: String? = state.withLock { state in
            switch key.verdict {
            case .allowed: state.allowed += 1
            case .refused: state.refused += 1
            case .blocked: state.blocked += 1
            case .failed: state.failed += 1
            }
            if var entry = state.entries[key] {
                entry.count += 1
                entry.lastSeen = max(entry.lastSeen, now)
                state.entries[key] = entry
                return nil
            }
            // Bounded: past the cap a new finding is counted, neither kept nor shown (the exit line says how many).
            guard state.entries.count < maxEntries else {
                state.unlisted += 1
                return nil
            }
            state.entries[key] = Entry(verdict: key.verdict, subject: key.subject, name: name, port: key.port,
                                       proto: key.proto, reason: reason, count: 1, firstSeen: now, lastSeen: now,
                                       allowable: allowable)
            state.order.append(key)
            guard let line else { return nil }
            let now = clock()
            state.tokens = min(burst, state.tokens + (now - state.lastRefill) * linesPerSecond)
            state.lastRefill = now
            guard state.tokens >= 1 else {
                state.suppressed += 1; state.suppressedSinceLine += 1
                return nil
            }
            state.tokens -= 1
            var text = line
            if state.suppressedSinceLine > 0 {
                text = "cagent: (\(state.suppressedSinceLine) more not shown, see the list at exit)\n" + line
                state.suppressedSinceLine = 0
            }
            return text
        }
        if let text { for part in text.split(separator: "\n") { output(String(part)) } }
    }

    package var summary: Summary {
        state.withLock { Summary(allowed: $0.allowed, refused: $0.refused, blocked: $0.blocked, suppressedLines: $0.suppressed,
                                 failed: $0.failed, unlisted: $0.unlisted) }
    }

    /// Distinct findings in first-seen order.
    package var entries: [Entry] { state.withLock { s in s.order.compactMap { s.entries[$0] } } }

    /// The exit line: counts and where the full list is.
    package func summaryLine(listPath: String?) -> String {
        let s = summary
        var line = "cagent: \(s.allowed) allowed, \(s.refused) refused, \(s.blocked) blocked"
        if s.failed > 0 { line += ", \(s.failed) upstream DNS failure" + (s.failed == 1 ? "" : "s") }
        if s.unlisted > 0 { line += "; \(s.unlisted) more distinct not listed (the list keeps the first \(maxEntries))" }
        if let listPath { line += " (full list: \(TerminalEscape.escape(listPath)))" }
        return line
    }

    /// The full list as JSON (`--json`): counts and every distinct entry.
    package func json() -> String {
        let s = summary
        let items = entries.map { e in
            var fields = ["\"verdict\":\(JSONText.quote(e.verdict.rawValue))", "\"subject\":\(JSONText.quote(e.subject))",
                          "\"proto\":\(JSONText.quote(e.proto))", "\"count\":\(e.count)",
                          "\"first_seen\":\(e.firstSeen)", "\"last_seen\":\(e.lastSeen)"]
            if e.allowable { fields.append("\"allowable\":true") }
            if let name = e.name { fields.append("\"name\":\(JSONText.quote(name))") }
            if let port = e.port { fields.append("\"port\":\(port)") }
            if let reason = e.reason { fields.append("\"reason\":\(JSONText.quote(reason))") }
            return "{" + fields.joined(separator: ",") + "}"
        }
        return "{\"allowed\":\(s.allowed),\"refused\":\(s.refused),\"blocked\":\(s.blocked),\"failed\":\(s.failed),"
            + (s.unlisted > 0 ? "\"unlisted\":\(s.unlisted)," : "") + "\"entries\":["
            + items.joined(separator: ",") + "]}"
    }
}
