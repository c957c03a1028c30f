import CagentCore

/// Reads one profile file into a `ProfileLayer`, checking every key and value and naming
/// `file:line:column` for each problem. It collects all problems of a file rather than stopping at the first.
package enum ProfileParser {
    /// Files larger than this are refused before parsing: a profile is a page of text.
    package static let maximumBytes = 1 << 20

    package static func parse(text: String, file: String) -> (layer: ProfileLayer?, diagnostics: [ProfileDiagnostic]) {
        var walker = Walker(file: file, text: text)
        let layer = walker.run()
        let failed = walker.diagnostics.contains { $0.severity == .error }
        return (failed ? nil : layer, walker.diagnostics)
    }
}

private typealias Node = YAMLNode

private struct Walker {
    let file: String
    let text: String
    let comments: CommentScanner
    var diagnostics: [ProfileDiagnostic] = []
    var layer = ProfileLayer()

    init(file: String, text: String) {
        self.file = file; self.text = text; self.comments = CommentScanner(text)
    }

    mutating func run() -> ProfileLayer {
        if text.utf8.count > ProfileParser.maximumBytes {
            error(at: nil, "the file is larger than \(ProfileParser.maximumBytes >> 10) KiB; a profile is a page of text")
            return layer
        }
        if let (line, column) = AnchorScanner.firstAnchorOrAlias(text) {
            diagnostics.append(ProfileDiagnostic(SourceLocation(file: file, line: line, column: column),
                                                 "anchors and aliases (&name, *name) are not used in profiles",
                                                 hint: "write each entry where it applies (quote values that start with '*' or '&'); "
                                                     + "use 'extends' to share entries between profiles"))
            return layer
        }
        let root: Node?
        do {
            root = try YAMLDocument.compose(text)
        } catch {
            report(error)
            return layer
        }
        guard let root else {
            self.error(at: nil, "empty profile", hint: "a profile starts with 'cagent: 1'")
            return layer
        }
        top(root)
        return layer
    }

    // MARK: Structure

    mutating func top(_ root: Node) {
        guard case .mapping(let mapping) = root, noAnchor(root) else {
            if root.anchor == nil {
                error(at: root, "expected a mapping of keys (cagent:, agent:, network:, ...), found \(kind(root))")
            }
            return
        }
        var sawVersion = false
        for (keyNode, value) in mapping.pairs {
            guard let key = keyName(keyNode) else { continue }
            switch key {
            case "cagent":
                sawVersion = true
                version(value)
            case "agent":
                if let name = string(value, expected: "an agent name, e.g. claude-code") {
                    if isName(name) {
                        layer.agent = Located(name, at: location(value), comment: comments.above(value.mark), remark: comments.after(value.mark))
                    } else {
                        error(at: value, "\(ProfileText.quote(name)) is not an agent name",
                              hint: "lowercase letters, digits, '.', '_' and '-', e.g. claude-code")
                    }
                }
            case "description":
                if let text = string(value, expected: "a description (text)") {
                    layer.description = Located(text, at: location(value), comment: comments.above(value.mark), remark: comments.after(value.mark))
                }
            case "extends":
                extends(value)
            case "network", "filesystem", "env", "limits":
                section(key, value)
            case "dns":
                dnsKey(keyNode, path: "dns")
            default:
                unknown(keyNode, key, in: nil)
            }
        }
        if !sawVersion {
            error(at: root, "missing 'cagent: 1' (the schema version)", hint: "add 'cagent: 1' as the first line")
        }
    }

    mutating func version(_ value: Node) {
        guard let text = string(value, expected: "the schema version 1") else { return }
        if text != "1" {
            if Int(text) != nil {
                error(at: value, "schema version \(ProfileText.quote(text)) is not supported; this cagent reads version 1")
            } else {
                error(at: value, "expected the schema version 1, found \(ProfileText.quote(text))")
            }
        }
    }

    mutating func extends(_ value: Node) {
        let items: [Node]
        switch value {
        case .scalar where isNull(value): return
        case .scalar: items = [value]
        case .sequence(let sequence): items = sequence.items
        default:
            error(at: value, "expected a profile name or a list of them, found \(kind(value))",
                  hint: "e.g. 'extends: [base]'")
            return
        }
        for item in items {
            guard let reference = string(item, expected: "a profile name or path") else { continue }
            if reference.hasPrefix("!") {
                error(at: item, "an 'extends' entry cannot be removed; leave it out instead")
            } else if ProfileReference(reference) == nil {
                error(at: item, "\(ProfileText.quote(reference)) is neither a profile name nor a path to a .yaml file",
                      hint: "a name such as 'base', or a path such as './team.yaml'")
            } else {
                layer.extends.append(Located(reference, at: location(item)))
            }
        }
    }

    mutating func section(_ name: String, _ value: Node) {
        if isNull(value) { return }
        guard case .mapping(let mapping) = value, noAnchor(value) else {
            if value.anchor == nil {
                let keys = ProfileSchema.sections[name]!.joined(separator: ", ")
                error(at: value, "expected a mapping under '\(name):' (keys: \(keys)), found \(kind(value))")
            }
            return
        }
        for (keyNode, item) in mapping.pairs {
            guard let key = keyName(keyNode) else { continue }
            if name == "limits", let limit = LimitKey(rawValue: "limits." + key) {
                self.limit(limit, item)
            } else if let list = ListKey(rawValue: name + "." + key) {
                self.list(list, item)
            } else if name == "network" && key == "dns" {
                dnsKey(keyNode, path: "network.dns")
            } else {
                unknown(keyNode, key, in: name)
            }
        }
    }

    mutating func dnsKey(_ keyNode: Node, path: String) {
        error(at: keyNode, "'\(path)' is not a profile key: the DNS upstream is host configuration",
              hint: "a shared profile must not choose the resolver whose answers get pinned; "
                  + "set the upstream in cagent's own configuration on the host")
    }

    mutating func unknown(_ keyNode: Node, _ key: String, in section: String?) {
        let place = section.map { "under '\($0):'" } ?? "at the top level"
        let allowed = section.map { ProfileSchema.sections[$0]! } ?? ProfileSchema.topLevel
        error(at: keyNode, "unknown key \(ProfileText.quote(key)) \(place)"
                  + (ProfileSchema.suggestion(for: key, in: section).map { "; " + $0 } ?? ""),
              hint: "expected one of: " + allowed.joined(separator: ", "))
    }

    // MARK: Lists

    mutating func list(_ key: ListKey, _ value: Node) {
        if isNull(value) { return }
        guard case .sequence(let sequence) = value, noAnchor(value) else {
            if value.anchor == nil {
                error(at: value, "expected a list under '\(key.key):', found \(kind(value))",
                      hint: "write '- item' lines or [a, b]")
            }
            return
        }
        var seen: [String: SourceLocation] = [:]
        for item in sequence.items {
            if case .mapping(let mapping) = item, key == .endpoints || key == .domains,
               let first = mapping.pairs.first, let host = first.key.scalar?.string {
                error(at: item, "expected a string, found a mapping (a ': ' inside the entry)",
                      hint: "write it without a space and quote it: \"\(TerminalEscape.escape(host)):\(TerminalEscape.escape(first.value.scalar?.string ?? "PORT"))/tcp\"")
                continue
            }
            guard let raw = string(item, expected: "a string") else { continue }
            let removes = raw.hasPrefix("!")
            let body = removes ? String(raw.dropFirst()) : raw
            let canonical: String
            do {
                canonical = try Self.canonical(key, body)
            } catch {
                self.error(at: item, "\(ProfileText.quote(body)) in \(key.rawValue): \(error.message)", hint: error.hint)
                continue
            }
            let here = location(item)
            let mark = (removes ? "!" : "") + canonical
            if let earlier = seen[mark] {
                warning(at: item, "\(ProfileText.quote(canonical)) is listed twice in \(key.rawValue) (first at line \(earlier.line))")
                continue
            }
            if seen[(removes ? "" : "!") + canonical] != nil {
                error(at: item, "\(ProfileText.quote(canonical)) is both added and removed in \(key.rawValue)")
                continue
            }
            seen[mark] = here
            layer.lists[key, default: []].append(ListEntry(value: canonical, removes: removes, location: here,
                                                           comment: comments.above(item.mark), remark: comments.after(item.mark)))
        }
    }

    static func canonical(_ key: ListKey, _ text: String) throws(ValueProblem) -> String {
        if text.isEmpty { throw ValueProblem("empty entry") }
        switch key {
        case .domains: return try ValueSyntax.domainPattern(text)
        case .endpoints: return try ValueSyntax.endpoint(text).description
        case .cidrs: return try ValueSyntax.cidr(text)
        case .read, .write: return try ValueSyntax.path(text)
        case .hide: return try ValueSyntax.hideEntry(text)
        case .pass: return try ValueSyntax.environmentName(text)
        }
    }

    // MARK: Limits

    mutating func limit(_ key: LimitKey, _ value: Node) {
        let expected = key.isSize ? "a size, e.g. 2GiB or 512MiB" : "a whole number"
        guard let raw = string(value, expected: expected) else { return }
        if isNull(value) {
            error(at: value, "expected \(expected) for '\(key.key)'", hint: "leave the key out for the default")
            return
        }
        do throws(ValueProblem) {
            let number: UInt64
            switch key {
            case .memory, .tmp, .shm, .disk:
                number = try ValueSyntax.size(raw)
                if key == .memory && number < 16 << 20 {
                    throw ValueProblem("less than 16MiB of memory cannot run an agent")
                }
                // ext4 needs room for its own metadata; an image below 8MiB holds almost nothing.
                if key == .disk && number < 8 << 20 {
                    throw ValueProblem("less than 8MiB of disk cannot hold a home directory")
                }
            case .processes: number = UInt64(try ValueSyntax.count(raw, range: 1...4_194_304))
            case .openFiles: number = UInt64(try ValueSyntax.count(raw, range: 1...1_048_576))
            }
            layer.limits[key] = Located(number, at: location(value), comment: comments.above(value.mark), remark: comments.after(value.mark))
        } catch {
            self.error(at: value, "\(key.rawValue): \(error.message)", hint: error.hint)
        }
    }

    // MARK: Scalars

    /// The key's name, or nil after reporting a key that is not a plain string.
    mutating func keyName(_ node: Node) -> String? {
        guard case .scalar(let scalar) = node, noAnchor(node), !hasExplicitTag(scalar) else {
            if node.anchor == nil { error(at: node, "expected a key name, found \(kind(node))") }
            return nil
        }
        return scalar.string
    }

    /// A scalar's text; reports anything else (a list, a mapping, an alias, a YAML tag) as not `expected`.
    mutating func string(_ node: Node, expected: String) -> String? {
        guard noAnchor(node) else { return nil }
        guard case .scalar(let scalar) = node else {
            error(at: node, "expected \(expected), found \(kind(node))")
            return nil
        }
        if hasExplicitTag(scalar) {
            let tag = scalar.tag ?? ""
            let written = tag + (scalar.string.isEmpty ? "" : " " + scalar.string)
            if tag.hasPrefix("!") && !tag.hasPrefix("!!") {
                error(at: node, "YAML read \(ProfileText.quote(written)) as a tag, not as text",
                      hint: "to remove an inherited entry, quote it: \"\(TerminalEscape.escape(written))\"")
            } else {
                error(at: node, "YAML tags (\(ProfileText.quote(tag))) are not used in profiles; expected \(expected)")
            }
            return nil
        }
        return scalar.string
    }

    /// A tag that changes what the text means; `!` (non-specific) and `!!str` leave it text.
    func hasExplicitTag(_ scalar: Node.Scalar) -> Bool {
        guard let name = scalar.tag else { return false }
        return !name.isEmpty && name != "!" && name != YAMLDocument.stringTag
    }

    /// Anchors and aliases would let one entry apply in several places out of sight; profiles are read by
    /// people, so every entry is written where it applies.
    /// (`AnchorScanner` refuses them before composing; this is the composed tree's own check. The composer
    /// never resolves an alias: it stays an `.alias` node, reported where the alias is written.)
    mutating func noAnchor(_ node: Node) -> Bool {
        guard node.anchor == nil else {
            error(at: node, "anchors and aliases (&name, *name) are not used in profiles",
                  hint: "write each entry where it applies; use 'extends' to share entries between profiles")
            return false
        }
        return true
    }

    func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func isName(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 64 else { return false }
        let ok = { (b: UInt8) in (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F }
        return ok(first) && first != 0x2D && first != 0x2E && text.utf8.allSatisfy(ok)
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return isNull(node) ? "nothing" : "the text " + ProfileText.quote(scalar.string)
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    // MARK: Reporting

    func location(_ node: Node?) -> SourceLocation {
        let mark = node?.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    mutating func error(at node: Node?, _ message: String, hint: String? = nil) {
        let diagnostic = ProfileDiagnostic(location(node), message, hint: hint)
        // A node with an anchor can fail two checks at the same place: report it once.
        if !diagnostics.contains(diagnostic) { diagnostics.append(diagnostic) }
    }

    mutating func warning(at node: Node?, _ message: String) {
        diagnostics.append(ProfileDiagnostic(location(node), message, severity: .warning))
    }

    mutating func report(_ yaml: YAMLError) {
        func here(_ mark: YAMLMark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch yaml {
        case .syntax(let problem, let mark, let context, let contextMark):
            var message = "invalid YAML: \(problem)"
            if let context, let contextMark { message += " (\(context) at line \(contextMark.line), column \(contextMark.column))" }
            let hint = problem.contains("tab") || comments.character(at: mark) == "\t"
                ? "indent with spaces; YAML does not allow tabs" : nil
            diagnostics.append(ProfileDiagnostic(here(mark), message, hint: hint))
        case .duplicateKeys(let duplicates, let mark):
            let names = duplicates.map { ProfileText.quote($0) }.joined(separator: ", ")
            diagnostics.append(ProfileDiagnostic(here(mark), "key \(names) appears more than once in the same mapping",
                                                 hint: "merge the entries under one key"))
        case .unreadable(let problem, let mark, let value):
            // libyaml names the offending byte (not UTF-8) or character (one YAML does not allow).
            let character = problem.contains("character")
            var message = "unreadable text: \(problem)"
            if let value {
                let hex = String(value, radix: 16, uppercase: true)
                message += character ? " (U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + ")" : " (byte 0x\(hex))"
            }
            diagnostics.append(ProfileDiagnostic(here(mark), message, hint: character
                ? "remove it, or write it as an escape in a double-quoted string (\"\\t\", \"\\u00e9\")"
                : "a profile is UTF-8 text"))
        case .tooDeep(let limit, let mark):
            diagnostics.append(ProfileDiagnostic(here(mark), "lists and mappings nested more than \(limit) deep",
                                                 hint: "a profile needs three levels (section, key, list)"))
        case .secondDocument(let mark):
            diagnostics.append(ProfileDiagnostic(here(mark), "a second YAML document ('---'); a profile file holds one",
                                                 hint: "put each profile in a file of its own, and share entries with 'extends'"))
        case .memory:
            diagnostics.append(ProfileDiagnostic(SourceLocation(file: file, line: 1, column: 1), "cannot parse: libyaml ran out of memory"))
        }
    }
}

/// Finds the comments written with an entry, so `show --resolved` can carry them along.
struct CommentScanner {
    let lines: [[Unicode.Scalar]]

    init(_ text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
    }

    /// The character at a mark, if the mark is inside the text.
    func character(at mark: YAMLMark) -> Unicode.Scalar? {
        guard mark.line >= 1, mark.line <= lines.count, mark.column >= 1, mark.column <= lines[mark.line - 1].count else { return nil }
        return lines[mark.line - 1][mark.column - 1]
    }

    /// The comment lines directly above a block entry ("- value", "key: value"), joined with newlines.
    func above(_ mark: YAMLMark?) -> String? {
        guard let (line, _) = blockEntry(mark) else { return nil }
        var leading: [String] = []
        var index = line - 2
        while index >= 0, let text = commentOnly(lines[index]) { leading.insert(text, at: 0); index -= 1 }
        let joined = leading.joined(separator: "\n")
        return leading.isEmpty ? nil : joined
    }

    /// The comment after a block entry on its line.
    func after(_ mark: YAMLMark?) -> String? {
        guard let (line, start) = blockEntry(mark) else { return nil }
        return trailing(lines[line - 1], from: start).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The entry's line and 0-based start, when it is a block entry: in a flow list ("[a, b]  # note") one
    /// comment covers the whole line and belongs to no single entry.
    private func blockEntry(_ mark: YAMLMark?) -> (Int, Int)? {
        guard let mark, mark.line >= 1, mark.line <= lines.count else { return nil }
        let line = lines[mark.line - 1]
        let start = min(max(mark.column - 1, 0), line.count)
        if line[..<start].contains(where: { $0 == "[" || $0 == "{" || $0 == "," }) { return nil }
        return (mark.line, start)
    }

    private func commentOnly(_ line: [Unicode.Scalar]) -> String? {
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        guard trimmed.first == "#" else { return nil }
        return clean(trimmed.dropFirst())
    }

    private func trailing(_ line: [Unicode.Scalar], from start: Int) -> String? {
        var index = start
        if index < line.count, line[index] == "\"" || line[index] == "'" {
            let quote = line[index]
            index += 1
            while index < line.count {
                if quote == "\"" && line[index] == "\\" { index += 2; continue }
                if line[index] == quote {
                    if quote == "'" && index + 1 < line.count && line[index + 1] == "'" { index += 2; continue }
                    index += 1
                    break
                }
                index += 1
            }
        }
        while index < line.count {
            if line[index] == "#" && index > 0 && (line[index - 1] == " " || line[index - 1] == "\t") {
                return clean(line[(index + 1)...])
            }
            index += 1
        }
        return nil
    }

    private func clean(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var text = String(String.UnicodeScalarView(scalars))
        while text.hasPrefix(" ") { text.removeFirst() }
        while text.hasSuffix(" ") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}
