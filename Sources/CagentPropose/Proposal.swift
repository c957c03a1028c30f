import CagentCore

/// A proposed profile: entries with the comments that justify them, and notes that are not entries (names
/// only looked up, flows not proposed, risks without an entry). `ProposalRenderer` writes it as YAML.
package struct Proposal: Sendable, Equatable {
    package struct Entry: Sendable, Equatable {
        /// The value as the profile writes it (`api.example.com`, `*.example.com`, `~/.gitconfig`).
        package var value: String
        /// Comment lines written above it: evidence, then any `RISK: ...`.
        package var comments: [String]
        package var risks: [String]
        package init(value: String, comments: [String], risks: [String] = []) {
            self.value = value; self.comments = comments; self.risks = risks
        }
    }

    package var sessions: [String]
    package var extends: [String]
    package var domains: [Entry] = []
    package var endpoints: [Entry] = []
    package var cidrs: [Entry] = []
    package var read: [Entry] = []
    package var write: [Entry] = []
    /// Comment lines after the network entries (lookups only, flows left out, network risks).
    package var networkNotes: [String] = []
    /// Comment lines after the filesystem entries (probes left out, hidden-path attempts, run-later writes).
    package var filesystemNotes: [String] = []

    package init(sessions: [String], extends: [String]) { self.sessions = sessions; self.extends = extends }

    /// Every `RISK: ...` line, entries' and notes' (for a summary on standard error).
    package var riskCount: Int {
        (domains + endpoints + cidrs + read + write).reduce(0) { $0 + $1.risks.count }
            + (networkNotes + filesystemNotes).filter { $0.hasPrefix("RISK:") }.count
    }
}

/// The YAML text of a proposal: stable (the same proposal gives the same bytes), every value quoted when it
/// needs to be, every comment escaped (text from a sandbox never reaches a reader's terminal raw, nor
/// breaks out of its comment line).
package enum ProposalRenderer {
    package static func render(_ proposal: Proposal) -> String {
        var out = ""
        func comment(_ text: String, indent: String) {
            out += indent + "# " + TerminalEscape.escape(text) + "\n"
        }
        comment("Proposed by `cagent profile propose` from " + (proposal.sessions.count == 1 ? "session " : "sessions ")
                + proposal.sessions.joined(separator: ", ") + ".", indent: "")
        comment("For review: nothing is applied. Each entry cites its evidence (count, first .. last seen in UTC,",
                indent: "")
        comment("programs); lines starting with RISK need a decision. Check with `cagent profile lint FILE`.", indent: "")
        out += "cagent: 1\n"
        out += "description: " + quoted("Proposed from " + proposal.sessions.joined(separator: ", ") + "; review before use.") + "\n"
        if !proposal.extends.isEmpty {
            out += "extends: [" + proposal.extends.map(quotedIfNeeded).joined(separator: ", ") + "]\n"
        }
        func list(_ key: String, _ entries: [Entry], indent: String) {
            guard !entries.isEmpty else { return }
            out += indent + key + ":\n"
            for entry in entries {
                for line in entry.comments { comment(line, indent: indent + "  ") }
                for risk in entry.risks { comment("RISK: " + risk, indent: indent + "  ") }
                out += indent + "  - " + quotedIfNeeded(entry.value) + "\n"
            }
        }
        typealias Entry = Proposal.Entry
        let network = !(proposal.domains.isEmpty && proposal.endpoints.isEmpty && proposal.cidrs.isEmpty && proposal.networkNotes.isEmpty)
        if network {
            out += "\nnetwork:\n"
            list("domains", proposal.domains, indent: "  ")
            list("endpoints", proposal.endpoints, indent: "  ")
            list("cidrs", proposal.cidrs, indent: "  ")
            for note in proposal.networkNotes { comment(note, indent: "  ") }
        }
        let filesystem = !(proposal.read.isEmpty && proposal.write.isEmpty && proposal.filesystemNotes.isEmpty)
        if filesystem {
            out += "\nfilesystem:\n"
            list("read", proposal.read, indent: "  ")
            list("write", proposal.write, indent: "  ")
            for note in proposal.filesystemNotes { comment(note, indent: "  ") }
        }
        return out
    }

    /// Plain values stay bare; anything YAML could read differently (a leading `*`, `[`, `!`, `~` alone is
    /// fine; `: `, ` #`, quotes, ...) is double-quoted with escapes.
    static func quotedIfNeeded(_ value: String) -> String {
        if value == "~" { return value }
        let plainCharacters = !value.isEmpty && value.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "-", "_", "/", "~", "+", "@": return true
            default: return false
            }
        }
        let plain = plainCharacters && !value.hasPrefix("-") && !value.hasPrefix("@")
            && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"].contains(value.lowercased())
            && value.unicodeScalars.contains { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "/" }
        return plain ? value : quoted(value)
    }

    static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x00..<0x20, 0x7F..<0xA0:
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" : "") + hex
            case 0x061C, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF:
                // Bidi controls and invisible characters: escaped, so the file reads the same on a terminal.
                out += "\\u" + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
