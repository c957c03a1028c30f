import Testing
@testable import CagentProfile

/// The composer over libyaml's event parser (Sources/CagentProfile/YAMLDocument.swift): what it keeps of each
/// node, and how it fails.
@Suite("YAML composer")
struct YAMLDocumentTests {
    func compose(_ text: String) throws -> YAMLNode {
        try #require(try YAMLDocument.compose(text))
    }

    func failure(_ text: String) -> YAMLError? {
        failure(bytes: Array(text.utf8))
    }

    func failure(bytes: [UInt8]) -> YAMLError? {
        do {
            _ = try YAMLDocument.compose(bytes: bytes)
            return nil
        } catch {
            return error
        }
    }

    func pairs(_ node: YAMLNode) throws -> [(key: YAMLNode, value: YAMLNode)] {
        guard case .mapping(let mapping) = node else { Issue.record("not a mapping: \(node)"); return [] }
        return mapping.pairs
    }

    func items(_ node: YAMLNode) throws -> [YAMLNode] {
        guard case .sequence(let sequence) = node else { Issue.record("not a sequence: \(node)"); return [] }
        return sequence.items
    }

    @Test("marks are 1-based lines and columns in Unicode scalars")
    func marks() throws {
        let root = try compose("cagent: 1\nnetwork:\n  domains:\n    - a.example\n    - \"b.example\"\nnamé: [x, y]\n")
        #expect(root.mark == YAMLMark(line: 1, column: 1))
        let top = try pairs(root)
        #expect(top.map(\.key.scalar?.string) == ["cagent", "network", "namé"])
        #expect(top[0].value.mark == YAMLMark(line: 1, column: 9))
        #expect(top[1].key.mark == YAMLMark(line: 2, column: 1))
        #expect(top[1].value.mark == YAMLMark(line: 3, column: 3))
        let domains = try pairs(top[1].value)[0].value
        #expect(domains.mark == YAMLMark(line: 4, column: 5))
        #expect(try items(domains).map(\.mark) == [YAMLMark(line: 4, column: 7), YAMLMark(line: 5, column: 7)])
        #expect(try items(domains).map(\.scalar?.string) == ["a.example", "b.example"])
        // "namé: [" is 7 scalars (8 bytes) before 'x'.
        #expect(try items(top[2].value).map(\.mark) == [YAMLMark(line: 6, column: 8), YAMLMark(line: 6, column: 11)])
    }

    @Test("a byte-order mark takes no column")
    func byteOrderMark() throws {
        let root = try compose("\u{FEFF}cagent: 1\n")
        #expect(try pairs(root).first?.key.mark == YAMLMark(line: 1, column: 1))
        let (layer, diagnostics) = ProfileParser.parse(text: "\u{FEFF}cagent: 1\nagent: tester\n", file: "bom.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(layer?.agent?.value == "tester")
    }

    @Test("styles, tags and implicit flags as written")
    func scalars() throws {
        let root = try compose("""
            plain: text
            single: 'text'
            double: "text"
            literal: |
              text
            folded: >
              text
            str: !!str 1
            local: !~/.ssh
            nonspecific: ! x
            """)
        let values = try pairs(root).map { try #require($0.value.scalar) }
        #expect(values.map(\.style) == [.plain, .singleQuoted, .doubleQuoted, .literal, .folded, .plain, .plain, .plain])
        #expect(values.map(\.string) == ["text", "text", "text", "text\n", "text\n", "1", "", "x"])
        #expect(values.map(\.tag) == [nil, nil, nil, nil, nil, "tag:yaml.org,2002:str", "!~/.ssh", "!"])
        #expect(values.map(\.plainImplicit) == [true, false, false, false, false, false, false, true])
        #expect(values.map(\.quotedImplicit) == [false, true, true, true, true, false, false, false])
    }

    @Test("null written plainly is nothing; quoted it is text")
    func nulls() throws {
        let root = try compose("a: null\nb: \"null\"\nc: ~\nd: '~'\ne:\n")
        let values = try pairs(root).map { try #require($0.value.scalar) }
        #expect(values.map(\.string) == ["null", "null", "~", "~", ""])
        #expect(values.map(\.style) == [.plain, .doubleQuoted, .plain, .singleQuoted, .plain])
        #expect(values.map(\.plainImplicit) == [true, false, true, false, true])

        // Through the profile parser: a plain null is an absent value, a quoted one is the text.
        for text in ["cagent: 1\nnetwork: null\nextends: ~\n", "cagent: 1\nnetwork:\nextends:\n"] {
            let (layer, diagnostics) = ProfileParser.parse(text: text, file: "p.yaml")
            #expect(diagnostics.isEmpty, "\(diagnostics)")
            #expect(layer?.extends.isEmpty == true)
        }
        let (_, quoted) = ProfileParser.parse(text: "cagent: 1\nnetwork: \"null\"\nextends: '~'\n", file: "p.yaml")
        #expect(quoted.map(\.location.description) == ["p.yaml:2:10", "p.yaml:3:10"])
        #expect(quoted.first?.message.hasPrefix("expected a mapping under 'network:'") == true)
        #expect(quoted.first?.message.hasSuffix("found the text 'null'") == true)
        #expect(quoted.last?.message == "'~' is neither a profile name nor a path to a .yaml file")
    }

    @Test("anchors are kept, aliases stay aliases at their own position")
    func anchorsAndAliases() throws {
        let root = try compose("a: &x [1]\nb: *x\n")
        let top = try pairs(root)
        #expect(top[0].value.anchor == "x")
        #expect(top[0].value.mark == YAMLMark(line: 1, column: 4))
        guard case .alias(let alias) = top[1].value else {
            Issue.record("not an alias: \(top[1].value)")
            return
        }
        #expect(alias.anchor == "x")
        #expect(alias.mark == YAMLMark(line: 2, column: 4))
        // An undefined alias is not an error of the composer (nothing is resolved); the profile refuses both.
        #expect(try pairs(compose("b: *nowhere\n"))[0].value.anchor == "nowhere")
        let (layer, diagnostics) = ProfileParser.parse(text: "cagent: 1\nextends: *nowhere\n", file: "p.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.location.description) == ["p.yaml:2:10"])
        #expect(diagnostics.first?.message == "anchors and aliases (&name, *name) are not used in profiles")
    }

    @Test("libyaml's syntax errors keep their problem, context and position")
    func syntax() throws {
        #expect(failure("a: [b, c\n") == .syntax(problem: "did not find expected ',' or ']'", mark: YAMLMark(line: 2, column: 1),
                                                  context: "while parsing a flow sequence", contextMark: YAMLMark(line: 1, column: 4)))
        let (_, diagnostics) = ProfileParser.parse(text: "cagent: 1\nnetwork:\n\tdomains: []\n", file: "tab.yaml")
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.location.description == "tab.yaml:3:1")
        #expect(diagnostics.first?.message.hasPrefix("invalid YAML: found character that cannot start any token") == true, "\(diagnostics)")
        #expect(diagnostics.first?.hint == "indent with spaces; YAML does not allow tabs")
    }

    @Test("duplicate keys are named, at the first one's first use")
    func duplicates() {
        #expect(failure("b: 1\na: 2\nb: 3\na: 4\nc: 5\n") == .duplicateKeys(["a", "b"], mark: YAMLMark(line: 2, column: 1)))
        // Nested mappings are checked too, and quoting does not make a key different.
        #expect(failure("x:\n  k: 1\n  \"k\": 2\n") == .duplicateKeys(["k"], mark: YAMLMark(line: 2, column: 3)))
    }

    @Test("documents: none, empty, and a second one")
    func documents() throws {
        #expect(try YAMLDocument.compose("") == nil)
        #expect(try YAMLDocument.compose("# only a comment\n\n") == nil)
        let empty = try compose("---\n")
        #expect(empty.scalar?.string == "" && empty.scalar?.style == .plain)
        #expect(failure("cagent: 1\n---\ncagent: 1\n") == .secondDocument(mark: YAMLMark(line: 2, column: 1)))
        #expect(failure("cagent: 1\n...\n---\n") == .secondDocument(mark: YAMLMark(line: 3, column: 1)))
        let (layer, diagnostics) = ProfileParser.parse(text: "cagent: 1\n---\ncagent: 1\n", file: "two.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.description) == ["two.yaml:2:1: error: a second YAML document ('---'); a profile file holds one\n"
                                                   + "  hint: put each profile in a file of its own, and share entries with 'extends'"])
    }

    @Test("nesting is bounded, in flow and in block style, whatever the size of the file")
    func depth() throws {
        let limit = YAMLDocument.maximumDepth
        // Within the limit.
        _ = try compose(String(repeating: "[", count: limit) + String(repeating: "]", count: limit))
        // Past it: refused where the first collection too deep starts.
        #expect(failure(String(repeating: "[", count: limit + 1)) == .tooDeep(limit: limit, mark: YAMLMark(line: 1, column: limit + 1)))
        #expect(failure(String(repeating: "{a: ", count: 100_000)) == .tooDeep(limit: limit, mark: YAMLMark(line: 1, column: 4 * limit + 1)))
        #expect(failure(String(repeating: "- ", count: 10_000) + "x\n") == .tooDeep(limit: limit, mark: YAMLMark(line: 1, column: 2 * limit + 1)))
        var block = ""
        for level in 0..<200 { block += String(repeating: " ", count: level) + "k:\n" }
        #expect(failure(block) == .tooDeep(limit: limit, mark: YAMLMark(line: limit + 1, column: limit + 1)))
        // The largest file a profile may be, all brackets.
        let (layer, diagnostics) = ProfileParser.parse(text: String(repeating: "[", count: ProfileParser.maximumBytes), file: "deep.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.location.description) == ["deep.yaml:1:\(limit + 1)"])
        #expect(diagnostics.first?.message == "lists and mappings nested more than \(limit) deep")
    }

    @Test("a huge scalar is read whole, and a file over the limit is refused before libyaml sees it")
    func hugeScalars() throws {
        let big = String(repeating: "x", count: ProfileParser.maximumBytes - 64)
        let root = try compose("cagent: 1\ndescription: \"" + big + "\"\n")
        #expect(try pairs(root)[1].value.scalar?.string.utf8.count == big.utf8.count)
        let (layer, diagnostics) = ProfileParser.parse(text: "cagent: 1\ndescription: " + big + big + "\n", file: "big.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.message) == ["the file is larger than 1024 KiB; a profile is a page of text"])
        // An unterminated quote over the whole file is an error at its start, not a crash.
        if case .syntax(let problem, _, let context, let contextMark) = failure("a: \"" + big) {
            #expect(problem == "found unexpected end of stream")
            #expect(context == "while scanning a quoted scalar")
            #expect(contextMark == YAMLMark(line: 1, column: 4))
        } else {
            Issue.record("expected a syntax error")
        }
    }

    @Test("bytes that are not UTF-8, and characters YAML does not allow, are unreadable where they are")
    func unreadable() {
        let latin1 = Array("cagent: 1\ndescription: caf".utf8) + [0xE9, 0x0A]
        guard case .unreadable(let problem, let mark, _) = failure(bytes: latin1) else {
            Issue.record("expected a reader error")
            return
        }
        #expect(problem.contains("UTF-8"), "\(problem)")
        #expect(mark == YAMLMark(line: 2, column: 17))
        #expect(failure(bytes: [0x61, 0x3A, 0x20, 0xFF]) == .unreadable(problem: "invalid leading UTF-8 octet", mark: YAMLMark(line: 1, column: 4), value: 0xFF))

        // A control character is valid UTF-8 (so a Swift string) but not YAML.
        let (layer, diagnostics) = ProfileParser.parse(text: "cagent: 1\ndescription: é\u{7}\n", file: "bell.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.location.description) == ["bell.yaml:2:15"])
        #expect(diagnostics.first?.message == "unreadable text: control characters are not allowed (U+0007)")
    }
}
