import CagentCore
import Foundation
import Testing
@testable import CagentProfile

/// Each broken profile gets one message naming the right file:line:column and what was expected.
@Suite("Broken profiles")
struct BrokenProfileTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var text: String
        var position: String
        var message: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "typo-key", text: "cagent: 1\nnetwork:\n  domian: [example.com]\n",
             position: "3:3", message: "unknown key 'domian' under 'network:'; did you mean 'domains'?"),
        Case(name: "mid-wildcard", text: "cagent: 1\nnetwork:\n  domains:\n    - example.com\n    - \"foo.*.example.com\"\n",
             position: "5:7", message: "'foo.*.example.com' in network.domains: a wildcard is allowed only as the whole leftmost label"),
        Case(name: "bad-port", text: "cagent: 1\nnetwork:\n  endpoints: [\"github.com:70000/tcp\"]\n",
             position: "3:15", message: "'github.com:70000/tcp' in network.endpoints: port '70000' is not a number from 1 to 65535"),
        Case(name: "host-bits", text: "cagent: 1\nnetwork:\n  cidrs:\n    - 10.0.0.1/8\n",
             position: "4:7", message: "'10.0.0.1/8' in network.cidrs: host bits are set after the /8 prefix"),
        Case(name: "relative-path", text: "cagent: 1\nfilesystem:\n  read:\n    - /usr\n    - ../secrets\n",
             position: "5:7", message: "'../secrets' in filesystem.read: a relative path"),
        Case(name: "hide-leaves-workspace", text: "cagent: 1\nfilesystem:\n  hide:\n    - .env\n    - ../x\n",
             position: "5:7", message: "'../x' in filesystem.hide: '..' would leave the workspace"),
        Case(name: "size-unit", text: "cagent: 1\nlimits:\n  memory: 2G\n",
             position: "3:11", message: "limits.memory: unknown unit 'G'"),
        Case(name: "no-version", text: "# a profile\nagent: tester\n",
             position: "2:1", message: "missing 'cagent: 1' (the schema version)"),
        Case(name: "yaml-syntax", text: "cagent: 1\nnetwork:\n  domains: [a.example, b.example\n",
             position: "4:1", message: "invalid YAML: did not find expected ',' or ']'"),
        Case(name: "dns-upstream", text: "cagent: 1\nnetwork:\n  domains: []\n  dns:\n    upstream: 192.0.2.53\n",
             position: "4:3", message: "'network.dns' is not a profile key: the DNS upstream is host configuration"),
        Case(name: "env-assignment", text: "cagent: 1\nenv:\n  pass: [\"TOKEN=abc\"]\n",
             position: "3:10", message: "'TOKEN=abc' in env.pass: a profile names variables, it does not set them"),
        Case(name: "unquoted-removal", text: "cagent: 1\nfilesystem:\n  hide:\n    - !~/.ssh\n",
             position: "4:7", message: "YAML read '!~/.ssh' as a tag, not as text"),
        Case(name: "version-2", text: "cagent: 2\n",
             position: "1:9", message: "schema version '2' is not supported; this cagent reads version 1"),
        Case(name: "list-not-scalar", text: "cagent: 1\nenv:\n  pass: HOME\n",
             position: "3:9", message: "expected a list under 'pass:', found the text 'HOME'"),
        Case(name: "endpoint-mapping", text: "cagent: 1\nnetwork:\n  endpoints:\n    - github.com: 22\n",
             position: "4:7", message: "expected a string, found a mapping"),
        Case(name: "misplaced-key", text: "cagent: 1\ndomains: [example.com]\n",
             position: "2:1", message: "unknown key 'domains' at the top level; did you mean 'domains' under 'network:'?"),
        Case(name: "duplicate-key", text: "cagent: 1\nlimits:\n  memory: 2GiB\n  memory: 4GiB\n",
             position: "3:3", message: "key 'memory' appears more than once in the same mapping"),
        Case(name: "anchor", text: "cagent: 1\nfilesystem:\n  read: &r [/usr]\n  write: *r\n",
             position: "3:9", message: "anchors and aliases (&name, *name) are not used in profiles"),
        Case(name: "missing-extends", text: "cagent: 1\nextends: [base, nosuch]\n",
             position: "2:17", message: "no profile named 'nosuch'"),
    ]

    @Test("one message with the right file:line:column", arguments: cases)
    func broken(_ item: Case) throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/base.yaml", "cagent: 1\n")
        let path = try sandbox.write("broken/\(item.name).yaml", item.text)
        let (resolved, diagnostics) = sandbox.resolver().resolveCollecting(path)
        #expect(resolved == nil)
        let errors = diagnostics.filter { $0.severity == .error }
        #expect(errors.count == 1, "\(errors)")
        let first = try #require(errors.first)
        #expect(first.location.description == "broken/\(item.name).yaml:\(item.position)")
        #expect(first.message.hasPrefix(item.message), "\(first.message)")

        // The thrown error carries the same position and message, with stage "profile".
        let thrown = #expect(throws: CagentError.self) { try sandbox.resolver().resolve(path) }
        #expect(thrown?.stage == "profile")
        #expect(thrown?.message.hasPrefix("broken/\(item.name).yaml:\(item.position): \(item.message)") == true,
                "\(thrown?.message ?? "")")
    }

    @Test("the hint says what to write instead")
    func hints() throws {
        let sandbox = try ProfileSandbox()
        let cases: [(String, String)] = [
            ("cagent: 1\nnetwork:\n  cidrs: [10.0.0.1/8]\n", "did you mean '10.0.0.0/8'?"),
            ("cagent: 1\nlimits:\n  memory: 2G\n", "did you mean '2GiB'? (units: KiB MiB GiB TiB, KB MB GB TB, B)"),
            ("cagent: 1\nfilesystem:\n  hide:\n    - !~/.ssh\n", "to remove an inherited entry, quote it: \"!~/.ssh\""),
            ("cagent: 1\nnetwork:\n  endpoints:\n    - github.com: 22\n", "write it without a space and quote it: \"github.com:22/tcp\""),
            ("cagent: 1\nnetwork:\n  domains: [\"2001:db8::1\"]\n",
             "ports go under network.endpoints as 'host:port/proto', addresses under network.cidrs"),
        ]
        for (index, (text, hint)) in cases.enumerated() {
            let path = try sandbox.write("h\(index).yaml", text)
            let (_, diagnostics) = sandbox.resolver().resolveCollecting(path)
            #expect(diagnostics.first?.hint == hint, "\(diagnostics)")
        }
    }

    @Test("every problem of a file is reported, not just the first")
    func allProblems() throws {
        let sandbox = try ProfileSandbox()
        let path = try sandbox.write("many.yaml", """
            cagent: 1
            agnet: x
            network:
              domains: ["*", ok.example]
              cidrs: [300.0.0.0/8]
            limits:
              processes: 0
            """)
        let (_, diagnostics) = sandbox.resolver().resolveCollecting(path)
        #expect(diagnostics.map { "\($0.location.line):\($0.location.column)" } == ["2:1", "4:13", "5:11", "7:14"])
        #expect(diagnostics[0].message == "unknown key 'agnet' at the top level; did you mean 'agent'?")
    }

    @Test("hostile text in a profile is escaped in messages")
    func escaping() throws {
        let sandbox = try ProfileSandbox()
        let path = try sandbox.write("evil.yaml", "cagent: 1\nnetwork:\n  domains: [\"a\\u202Eb.example\"]\n  \"x\\e[2J\": 1\n")
        let (_, diagnostics) = sandbox.resolver().resolveCollecting(path)
        #expect(diagnostics.count == 2)
        for diagnostic in diagnostics {
            #expect(!diagnostic.description.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x202E })
        }
    }
}

@Suite("Unreadable profiles")
struct UnreadableProfileTests {
    @Test("bytes that are not UTF-8 are reported where they are")
    func notUTF8() throws {
        let sandbox = try ProfileSandbox()
        let path = sandbox.root + "/latin1.yaml"
        let bytes: [UInt8] = Array("cagent: 1\ndescription: caf".utf8) + [0xE9, 0x0A]
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let error = #expect(throws: CagentError.self) { try sandbox.resolver().resolve(path) }
        #expect(error?.message == "latin1.yaml:2:17: not UTF-8 text")
    }

    @Test("an empty file and a file that is not a mapping")
    func notAProfile() throws {
        let sandbox = try ProfileSandbox()
        let empty = try sandbox.write("empty.yaml", "# nothing here\n")
        #expect(#expect(throws: CagentError.self) { try sandbox.resolver().resolve(empty) }?.message
                == "empty.yaml:1:1: empty profile")
        let list = try sandbox.write("list.yaml", "- cagent: 1\n")
        #expect(#expect(throws: CagentError.self) { try sandbox.resolver().resolve(list) }?.message
                == "list.yaml:1:1: expected a mapping of keys (cagent:, agent:, network:, ...), found a list")
    }
}

@Suite("Anchors and aliases")
struct AnchorTests {
    @Test("an alias bomb is refused before it is composed")
    func aliasBomb() throws {
        var lines = ["cagent: 1", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
        var previous = "a"
        for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
            lines.append("\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]")
            previous = name
        }
        lines.append("? *i\n: 1")
        let (layer, diagnostics) = ProfileParser.parse(text: lines.joined(separator: "\n"), file: "bomb.yaml")
        #expect(layer == nil)
        #expect(diagnostics.map(\.location.description) == ["bomb.yaml:2:4"])
    }

    @Test("the scanner finds anchors where nodes start, and nothing in text, quotes, comments or block scalars")
    func scanner() {
        #expect(AnchorScanner.firstAnchorOrAlias("a: *b\n")! == (1, 4))
        #expect(AnchorScanner.firstAnchorOrAlias("a:\n  - x\n  - *b\n")! == (3, 5))
        #expect(AnchorScanner.firstAnchorOrAlias("a: [x, *b]\n")! == (1, 8))
        #expect(AnchorScanner.firstAnchorOrAlias("a: !!str &x y\n")! == (1, 10))
        #expect(AnchorScanner.firstAnchorOrAlias("? *k\n: v\n")! == (1, 3))
        for clean in ["description: Build & test *fast*\n", "domains: [\"*.example.com\", '*.x.org']\n",
                      "a: b # not *an alias\n", "description: |\n  * a bullet\n  & more\nnext: x\n",
                      "read: [/a&b, /c*d]\n", "description: \"multi\n  *line\"\n", "a: 'it''s *'\n"] {
            #expect(AnchorScanner.firstAnchorOrAlias(clean) == nil, "\(clean)")
        }
    }
}
