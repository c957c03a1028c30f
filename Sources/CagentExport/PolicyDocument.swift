import CagentCore
/// A document to export: a tree of maps (keys kept in the order they were built, so the output reads like
/// the examples in the Cilium and Kubernetes docs), lists and scalars, rendered as YAML or JSON. The
/// exporters build every list in a sorted order, so the same profile always gives the same bytes.
package indirect enum PolicyNode: Equatable, Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([PolicyNode])
    case map([(String, PolicyNode)])

    package static func == (lhs: PolicyNode, rhs: PolicyNode) -> Bool {
        switch (lhs, rhs) {
        case let (.string(a), .string(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        case let (.list(a), .list(b)): return a == b
        case let (.map(a), .map(b)): return a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        default: return false
        }
    }

    /// The value under `key` of a map (nil for anything else): for tests and callers that inspect a document.
    package subscript(key: String) -> PolicyNode? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    package var items: [PolicyNode] {
        if case .list(let items) = self { return items }
        return []
    }

    package var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}

/// One exported policy: the document, the comment lines that head its YAML form, and what could not be
/// expressed (also written into the document's annotations, so that JSON output carries it too).
package struct ExportedPolicy: Sendable {
    package var document: PolicyNode
    package var headerComments: [String]
    /// One line each: a profile entry that is not in the policy, and why.
    package var notExported: [String]

    package init(document: PolicyNode, headerComments: [String], notExported: [String]) {
        self.document = document; self.headerComments = headerComments; self.notExported = notExported
    }

    package var yaml: String {
        let comments = headerComments.map { "# " + PolicyRendering.commentSafe($0) + "\n" }.joined()
        return comments + PolicyRendering.yaml(document)
    }

    package var json: String { PolicyRendering.json(document) + "\n" }
}

package enum PolicyRendering {
    /// Block-style YAML, two spaces per level, lists indented under their key.
    package static func yaml(_ node: PolicyNode) -> String {
        yamlLines(node, indent: 0).map { $0 + "\n" }.joined()
    }

    static func yamlLines(_ node: PolicyNode, indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        switch node {
        case .map(let pairs):
            if pairs.isEmpty { return [pad + "{}"] }
            var lines: [String] = []
            for (key, value) in pairs {
                let label = pad + yamlScalar(key) + ":"
                if let inline = inlineYAML(value) {
                    lines.append(label + " " + inline)
                } else {
                    lines.append(label)
                    lines += yamlLines(value, indent: indent + 2)
                }
            }
            return lines
        case .list(let items):
            if items.isEmpty { return [pad + "[]"] }
            var lines: [String] = []
            for item in items {
                if let inline = inlineYAML(item) {
                    lines.append(pad + "- " + inline)
                } else {
                    // The item's own lines, two deeper; its first line carries the dash.
                    var nested = yamlLines(item, indent: indent + 2)
                    nested[0] = pad + "- " + nested[0].dropFirst(indent + 2)
                    lines += nested
                }
            }
            return lines
        default:
            return [pad + (inlineYAML(node) ?? "")]
        }
    }

    /// Scalars and empty collections fit on their key's line.
    static func inlineYAML(_ node: PolicyNode) -> String? {
        switch node {
        case .string(let text): return yamlScalar(text)
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .list(let items) where items.isEmpty: return "[]"
        case .map(let pairs) where pairs.isEmpty: return "{}"
        default: return nil
        }
    }

    /// Plain when it cannot be read as anything but this string (starts with a letter, no YAML
    /// indicators, not a boolean or null word of YAML 1.1 or 1.2); double-quoted with JSON escapes
    /// otherwise, which YAML reads the same way.
    static func yamlScalar(_ text: String) -> String {
        let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"]
        var plain = !text.isEmpty && !reserved.contains(text.lowercased())
        for (index, scalar) in text.unicodeScalars.enumerated() {
            let letter = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
            let digit = scalar >= "0" && scalar <= "9"
            if index == 0 ? !letter : !(letter || digit || scalar == "." || scalar == "-" || scalar == "_" || scalar == "/") {
                plain = false
                break
            }
        }
        return plain ? text : quoted(text)
    }

    /// A JSON string literal (also a valid YAML double-quoted scalar): JSONText's quoting.
    package static func quoted(_ text: String) -> String { JSONText.quote(text) }

    package static func json(_ node: PolicyNode, indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2)
        let close = String(repeating: " ", count: indent)
        switch node {
        case .string(let text): return quoted(text)
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .list(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { pad + json($0, indent: indent + 2) }.joined(separator: ",\n") + "\n" + close + "]"
        case .map(let pairs):
            if pairs.isEmpty { return "{}" }
            return "{\n" + pairs.map { pad + quoted($0.0) + ": " + json($0.1, indent: indent + 2) }.joined(separator: ",\n")
                + "\n" + close + "}"
        }
    }

    /// A comment stays one comment line whatever the text holds.
    static func commentSafe(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}" ? " " : Character($0) })
    }
}
