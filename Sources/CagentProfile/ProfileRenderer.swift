import CagentCore

/// Writes profiles back as YAML: every key, in schema order, canonical values, and (for a resolved profile)
/// a comment per entry naming the file and line it came from, followed by the comment written with it.
/// The output is a valid profile: `cagent profile lint` reads it back to the same `Profile`.
package enum ProfileRenderer {
    package static func render(_ resolved: ResolvedProfile, name: String? = nil) -> String {
        var out: [String] = []
        out.append("# cagent profile, resolved" + (name.map { ": " + comment($0) } ?? ""))
        out.append("# Layers in merge order (later ones add to, remove from and override earlier ones):")
        for layer in resolved.layers {
            out.append("#   \(comment(layer.display))  sha256:\(layer.sha256.prefix(16))  (\(layer.origin.rawValue))")
        }
        if !resolved.profile.extends.isEmpty {
            out.append("# extends (already merged above): " + comment(resolved.profile.extends.joined(separator: ", ")))
        }
        out.append("cagent: 1")
        if let agent = resolved.agent { out.append("agent: " + scalar(agent.value) + provenance(agent.location, agent.remark)) }
        if let text = resolved.description {
            out.append("description: " + scalar(text.value) + provenance(text.location, text.remark))
        }
        for section in ["network", "filesystem", "env"] {
            out.append("\(section):")
            for key in ListKey.allCases where key.section == section {
                let entries = resolved.lists[key] ?? []
                if entries.isEmpty { out.append("  \(key.key): []"); continue }
                out.append("  \(key.key):")
                for entry in entries {
                    for line in lines(entry.comment) { out.append("    # " + line) }
                    out.append("    - " + scalar(entry.value) + provenance(entry.location, entry.remark))
                }
            }
        }
        out.append("limits:")
        for key in LimitKey.allCases {
            if let value = resolved.limits[key] {
                for line in lines(value.comment) { out.append("  # " + line) }
                out.append("  \(key.key): \(format(key, value.value))" + provenance(value.location, value.remark))
            } else {
                out.append("  # \(key.key): not set (cagent's built-in default)")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func format(_ key: LimitKey, _ value: UInt64) -> String {
        key.isSize ? ValueSyntax.formatSize(value) : String(value)
    }

    /// `  # from file:line -- comment`
    private static func provenance(_ location: SourceLocation, _ note: String?) -> String {
        var text = "  # from \(comment(location.file)):\(location.line)"
        if let note, !note.isEmpty { text += " -- " + comment(note) }
        return text
    }

    private static func lines(_ comment: String?) -> [String] {
        guard let comment else { return [] }
        return comment.split(separator: "\n", omittingEmptySubsequences: false).map { self.comment(String($0)) }
    }

    /// Comment text with anything that could move a terminal cursor or reorder text made visible.
    static func comment(_ text: String) -> String {
        TerminalEscape.escape(text).replacing("\n", with: " ")
    }

    /// A YAML scalar: plain when that reads back as the same text, otherwise double-quoted with escapes.
    package static func scalar(_ text: String) -> String {
        if isPlainSafe(text) { return text }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                let value = scalar.value
                let invisible = value < 0x20 || value == 0x7F || (0x80..<0xA0).contains(value)
                    || (0x200B...0x200F).contains(value) || (0x202A...0x202E).contains(value)
                    || (0x2060...0x2069).contains(value) || value == 0xFEFF || value == 0x061C
                if invisible {
                    let hex = String(value, radix: 16, uppercase: true)
                    out += value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                        : "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ""]

    private static func isPlainSafe(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !reserved.contains(text.lowercased()) else { return false }
        let isLetter = { (s: Unicode.Scalar) in (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") }
        let isDigit = { (s: Unicode.Scalar) in s >= "0" && s <= "9" }
        let startsWell = isLetter(first) || isDigit(first) || first == "/" || first == "_" || text.hasPrefix("~/")
        guard startsWell, !text.hasSuffix(":") else { return false }
        for s in text.unicodeScalars {
            if !(isLetter(s) || isDigit(s) || "_./:@+~-".unicodeScalars.contains(s)) { return false }
        }
        if isDigit(first) && (Int(text) != nil || Double(text) != nil || text.contains(":") && !text.contains(".") && !text.contains("/")) {
            return false
        }
        return true
    }
}

/// The differences between two resolved profiles, one line per entry: `+` only in the second, `-` only in
/// the first, `~` a single value that changed. Each line names where the entry came from.
package enum ProfileDiff {
    package static func lines(from old: ResolvedProfile, to new: ResolvedProfile) -> [String] {
        var out: [String] = []
        func single(_ name: String, _ a: Located<String>?, _ b: Located<String>?) {
            if a?.value != b?.value {
                out.append("~ \(name): \(show(a?.value)) -> \(show(b?.value))" + at(b?.location ?? a?.location))
            }
        }
        single("agent", old.agent, new.agent)
        single("description", old.description, new.description)
        for key in ListKey.allCases {
            let a = old.lists[key] ?? [], b = new.lists[key] ?? []
            for entry in a where !b.contains(where: { $0.value == entry.value }) {
                out.append("- \(key.rawValue): \(TerminalEscape.escape(entry.value))" + at(entry.location))
            }
            for entry in b where !a.contains(where: { $0.value == entry.value }) {
                out.append("+ \(key.rawValue): \(TerminalEscape.escape(entry.value))" + at(entry.location))
            }
        }
        for key in LimitKey.allCases {
            let a = old.limits[key], b = new.limits[key]
            if a?.value != b?.value {
                let format = { (v: UInt64?) in v.map { ProfileRenderer.format(key, $0) } ?? "default" }
                out.append("~ \(key.rawValue): \(format(a?.value)) -> \(format(b?.value))" + at(b?.location ?? a?.location))
            }
        }
        return out
    }

    private static func show(_ value: String?) -> String {
        value.map { ProfileText.quote($0) } ?? "(none)"
    }

    private static func at(_ location: SourceLocation?) -> String {
        location.map { "  (\(TerminalEscape.escape($0.file)):\($0.line))" } ?? ""
    }
}
