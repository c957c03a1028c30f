import CagentCore
import CagentProfile

/// `cagent profile propose --update PROFILE`: a proposal's network entries added to an existing profile's
/// text, everything else of the file (comments, order, other keys) left byte for byte, and the change as a
/// unified-diff-like text (`+` lines: each entry with its evidence comments). Block-style lists are extended
/// in place; a missing list or `network:` section is added; a flow-style list (`domains: [a, b]`) is not
/// rewritten (an error says so: the file would lose its shape).
package struct ProfileUpdate: Sendable, Equatable {
    package var text: String
    package var diff: String
    /// How many entries were added.
    package var added: Int

    package struct Problem: Error, CustomStringConvertible, Sendable {
        package var description: String
    }

    /// One edit of the original lines: at `start`, remove `removed` lines, insert `lines`.
    struct Edit { var start: Int; var removed: Int; var lines: [String] }

    package static func apply(_ proposal: Proposal, to original: String, file: String) throws(Problem) -> ProfileUpdate {
        let keyed: [(String, [Proposal.Entry])] = [("domains", proposal.domains), ("endpoints", proposal.endpoints),
                                                   ("cidrs", proposal.cidrs)].filter { !$0.1.isEmpty }
        var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let endsWithNewline = lines.last == ""
        if endsWithNewline { lines.removeLast() }
        guard !keyed.isEmpty else { return ProfileUpdate(text: original, diff: "", added: 0) }

        func indent(_ line: String) -> Int { line.prefix { $0 == " " }.count }
        func isContent(_ line: String) -> Bool {
            let trimmed = line.drop { $0 == " " }
            return !trimmed.isEmpty && !trimmed.hasPrefix("#")
        }
        func key(_ line: String) -> (name: String, rest: String)? {
            let trimmed = line.drop { $0 == " " }
            guard let colon = trimmed.firstIndex(of: ":") else { return nil }
            let name = String(trimmed[..<colon])
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0 == "_" || $0 == "-" }) else { return nil }
            var rest = String(trimmed[trimmed.index(after: colon)...])
            if let hash = rest.range(of: " #") { rest = String(rest[..<hash.lowerBound]) }
            if rest.hasPrefix("#") { rest = "" }
            return (name, rest.trimmingSpaces)
        }
        func rendered(_ entries: [Proposal.Entry], indent: Int) -> [String] {
            let pad = String(repeating: " ", count: indent)
            var out: [String] = []
            for entry in entries {
                for comment in entry.comments { out.append(pad + "# " + TerminalEscape.escape(comment)) }
                for risk in entry.risks { out.append(pad + "# RISK: " + TerminalEscape.escape(risk)) }
                out.append(pad + "- " + ProposalRenderer.quotedIfNeeded(entry.value))
            }
            return out
        }
        let source = "# added by cagent profile propose --update from " + TerminalEscape.escape(proposal.sessions.joined(separator: ", "))

        var edits: [Edit] = []
        if let network = lines.firstIndex(where: { indent($0) == 0 && key($0)?.name == "network" }) {
            guard key(lines[network])?.rest.isEmpty == true else {
                throw Problem(description: "\(file):\(network + 1): `network:` is not a block mapping; write it as `network:` with its lists below")
            }
            var end = network + 1
            while end < lines.count && (!isContent(lines[end]) || indent(lines[end]) > 0) { end += 1 }
            let children = (network + 1)..<end
            let childIndent = children.first { isContent(lines[$0]) }.map { indent(lines[$0]) } ?? 2
            let lastContent = children.last { isContent(lines[$0]) } ?? network
            var appended: [String] = []
            for (name, entries) in keyed {
                guard let at = children.first(where: { indent(lines[$0]) == childIndent && key(lines[$0])?.name == name }) else {
                    appended += [String(repeating: " ", count: childIndent) + name + ":",
                                 String(repeating: " ", count: childIndent + 2) + source]
                        + rendered(entries, indent: childIndent + 2)
                    continue
                }
                let rest = key(lines[at])!.rest
                if rest == "[]" {
                    edits.append(Edit(start: at, removed: 1, lines: [String(repeating: " ", count: childIndent) + name + ":",
                                                                     String(repeating: " ", count: childIndent + 2) + source]
                                      + rendered(entries, indent: childIndent + 2)))
                    continue
                }
                guard rest.isEmpty else {
                    throw Problem(description: "\(file):\(at + 1): `\(name):` is a flow-style list; write it one `- entry` a line to let propose add to it")
                }
                var last = at
                var itemIndent: Int?
                var index = at + 1
                while index < end {
                    let line = lines[index]
                    if isContent(line) {
                        let level = indent(line)
                        let item = line.drop { $0 == " " }.hasPrefix("-")
                        guard level > childIndent || (level == childIndent && item) else { break }
                        if item && itemIndent == nil { itemIndent = level }
                        last = index
                    }
                    index += 1
                }
                let pad = itemIndent ?? childIndent + 2
                edits.append(Edit(start: last + 1, removed: 0,
                                  lines: [String(repeating: " ", count: pad) + source] + rendered(entries, indent: pad)))
            }
            if !appended.isEmpty { edits.append(Edit(start: lastContent + 1, removed: 0, lines: appended)) }
        } else {
            var block = ["", "network:"]
            for (name, entries) in keyed { block += ["  " + name + ":", "    " + source] + rendered(entries, indent: 4) }
            edits.append(Edit(start: lines.count, removed: 0, lines: block))
        }
        edits.sort { $0.start < $1.start }

        var updated: [String] = []
        var cursor = 0
        for edit in edits {
            updated += lines[cursor..<edit.start]
            updated += edit.lines
            cursor = edit.start + edit.removed
        }
        updated += lines[cursor...]
        let text = updated.joined(separator: "\n") + (endsWithNewline || lines.isEmpty ? "\n" : "")
        let added = keyed.reduce(0) { $0 + $1.1.count }
        return ProfileUpdate(text: text, diff: diff(lines, edits, file: file), added: added)
    }

    /// `--- FILE` / `+++ FILE (proposed)` and one hunk per edit, three lines of context either side.
    static func diff(_ lines: [String], _ edits: [Edit], file: String, context: Int = 3) -> String {
        let shown = TerminalEscape.escape(file)
        var out = "--- \(shown)\n+++ \(shown) (proposed)\n"
        var shift = 0
        for edit in edits {
            let before = max(0, edit.start - context)
            let after = min(lines.count, edit.start + edit.removed + context)
            let oldCount = after - before
            let newCount = oldCount - edit.removed + edit.lines.count
            out += "@@ -\(oldCount == 0 ? before : before + 1),\(oldCount) +\(newCount == 0 ? before + shift : before + shift + 1),\(newCount) @@\n"
            for line in lines[before..<edit.start] { out += " " + TerminalEscape.escape(line) + "\n" }
            for line in lines[edit.start..<(edit.start + edit.removed)] { out += "-" + TerminalEscape.escape(line) + "\n" }
            for line in edit.lines { out += "+" + line + "\n" }
            for line in lines[(edit.start + edit.removed)..<after] { out += " " + TerminalEscape.escape(line) + "\n" }
            shift += edit.lines.count - edit.removed
        }
        return out
    }
}

fileprivate extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
