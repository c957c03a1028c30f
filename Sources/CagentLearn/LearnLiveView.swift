import CagentCapture
import CagentCore
import CagentEvents
import CagentLaunch
import CagentStore
import Synchronization

/// The live lines (standard error, escaped): one per new domain, direct-IP flow, dropped flow, secret attempt
/// and new top-level directory; the summary at the end.
package final class LearnLiveView: Sendable {
    package let quiet: Bool
    package let home: String
    private struct Seen { var domains: Set<String> = []; var directIP: Set<String> = []; var secrets: Set<String> = []
                          var directories: Set<String> = []; var blocked: Set<String> = []; var binds: Set<String> = []
                          /// tcp/443 flows no DNS answer named when their SYN was logged: the ClientHello comes later.
                          var awaitingHello: Set<String> = []
                          var lastDirectory: [UInt8] = [] }
    private let seen = Mutex(Seen())

    package init(quiet: Bool, home: String) { self.quiet = quiet; self.home = home }

    package func say(_ text: String) { FileDescriptorStream.standardError.write("cagent learn: \(TerminalEscape.escape(text))\n") }
    private func line(_ text: String) { if !quiet { say(text) } }

    package func domain(_ name: String) {
        if seen.withLock({ $0.domains.insert(name).inserted }) { line("domain \(name)") }
    }

    package func flow(_ finding: FlowAttributor.Finding) {
        let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
        if finding.flow.verdict == .dropped {
            if seen.withLock({ $0.blocked.insert(key).inserted }) { line("blocked \(key) (metadata, host or LAN)") }
        } else if finding.basis == .directIP {
            if finding.flow.proto == 6 && finding.flow.port == 443 {
                // Its server name may still come: decided at the end (`summary`).
                seen.withLock { _ = $0.awaitingHello.insert(key) }
            } else if seen.withLock({ $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
    }

    package func bind(_ bind: BindObservation) {
        let host = bind.address.contains(":") ? "[\(bind.address)]" : bind.address
        let key = "\(bind.proto) \(host):\(bind.port)"
        let program = String(decoding: bind.program.bytes, as: UTF8.self)
        if seen.withLock({ $0.binds.insert(key).inserted }) {
            line("bind \(key) by \(program)" + (bind.result == 0 ? "" : " (\(Errno.name(bind.result)))"))
        }
    }

    package func secret(_ pattern: String, _ access: FileAccess) {
        let path = String(decoding: access.path.bytes, as: UTF8.self)
        if seen.withLock({ $0.secrets.insert(path).inserted }) {
            line("secret \(pattern): \(access.operation.rawValue) \(path) (\(access.result == 0 ? "ok" : Errno.name(access.result)))")
        }
    }

    /// Called for every file event: the common case (the same top-level directory as the previous event)
    /// compares bytes and allocates nothing.
    package func file(_ access: FileAccess) {
        let bytes = access.path.bytes
        guard bytes.first == UInt8(ascii: "/") else { return }
        // A top-level *directory*: the path goes below it (a missing `/x` is a file lookup, not a directory).
        var start = 1
        while start < bytes.count && bytes[start] == UInt8(ascii: "/") { start += 1 }
        var stop = start
        while stop < bytes.count && bytes[stop] != UInt8(ascii: "/") { stop += 1 }
        guard stop > start, stop + 1 < bytes.count else { return }  // something after the separator
        let top = bytes[start..<stop]
        let name: String? = seen.withLock { seen in
            if seen.lastDirectory.elementsEqual(top) { return nil }
            seen.lastDirectory = Array(top)
            let name = "/" + String(decoding: top, as: UTF8.self)
            return seen.directories.insert(name).inserted ? name : nil
        }
        if let name { line("directory \(name)") }
    }

    package func summary(_ summary: LearnObservation.Summary, sessionID: String, status: Int32, scratch: String?, followUp: LearnFollowUp = LearnFollowUp()) {
        // TLS flows held back for their ClientHello: a direct IP only if nothing named them by the end.
        for finding in summary.flows where finding.flow.verdict == .accepted && finding.basis == .directIP {
            let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
            if seen.withLock({ $0.awaitingHello.contains(key) && $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
        let counts = seen.withLock { ($0.domains.count, $0.directIP.count, $0.secrets.count, $0.directories.count, $0.blocked.count, $0.binds.count) }
        var text = "done (agent exit \(status)): \(counts.0) domains, \(counts.1) direct-IP flows, \(counts.4) blocked, \(counts.2) secret attempts, \(counts.3) top-level directories, \(counts.5) binds"
        if let trace = summary.trace {
            text += "; \(trace.backend.rawValue): \(trace.syscalls) syscalls traced, \(trace.lost) lost"
        }
        if summary.captureDropped > 0 { text += "; the DNS capture dropped \(summary.captureDropped) packets" }
        say(text)
        if let scratch {
            // Rootless: a directory of the user's (the overlays' layers); else an ext4 image.
            say(scratch.hasSuffix(".img") ? "scratch layer kept: \(scratch) (an ext4 image, root's: sudo mount -o loop,ro IMAGE DIR to look inside)"
                                          : "scratch layer kept: \(scratch) (a directory of yours: the overlays' upper layers)")
        }
        say("session \(sessionID): \(followUp.command("report \(sessionID)"))")
        // The next step of the loop: a profile from what the session did (docs/profiles.md "Proposals").
        say("propose a profile from it: \(followUp.command("profile propose --session \(sessionID)")) -o profile.yaml")
    }
}

/// How the commands the learn summary prints reach the session's database as typed: `--db` when one was
/// named, `--user UID` when the database is another user's than a plain invocation's default (`learn --user`),
/// with `sudo` first when learn itself ran under sudo (reading another user's database takes root).
package struct LearnFollowUp: Equatable {
    package var database: String?
    package var user: UInt32?
    package var sudo = false

    package init(database: String? = nil, user: UInt32? = nil, sudo: Bool = false) {
        self.database = database; self.user = user; self.sudo = sudo
    }

    /// "cagent report ID" or "sudo cagent report ID --user 1001": `words` (the command and its arguments),
    /// then what finds the database.
    package func command(_ words: String) -> String {
        var text = (sudo ? "sudo " : "") + "cagent " + words
        if let user { text += " --user \(user)" }
        if let database { text += " --db " + shellQuoted(database) }
        return text
    }
}

/// A word as a shell reads it back: bare when plain, else single-quoted.
package func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./=:,+@%".unicodeScalars.contains($0)
    }
    return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}
