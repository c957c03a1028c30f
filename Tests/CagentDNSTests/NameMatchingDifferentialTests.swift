import CagentCore
import Foundation
import Netlab
import Testing
@testable import CagentDNS

/// N14, differentially: the gate's name decision (`DomainPattern.matches`, `GatePolicy.decide`) against an
/// independent implementation, dnspython's `dns.name` (its own parser, case folding and `is_subdomain`), on
/// generated patterns and names with wildcards, look-alike labels, case and trailing-dot variants. dnspython is
/// installed from the package index into a venv in the test cache (TestCache) by the test itself (nothing in the
/// product depends on it). They must agree on every case; the control runs a deliberately wrong rule (plain
/// text suffix, the `evilallowed.test` bug) through the same comparison, which must see disagreements.
@Suite struct NameMatchingDifferentialTests {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()
    /// In the test cache (TestCache: reused by a clean clone; `scripts/test-inputs.sh` makes it before the
    /// uplink capture starts, so the one download is not taken for a leak).
    static var venv: String { TestCache.directory + "/differential/dnspython-\(dnspythonVersion)" }
    static let dnspythonVersion = "2.9.2"

    /// Decides `pattern` on `name` per line of the input file ("mode<TAB>pattern<TAB>name"), prints 1 or 0 per
    /// line. mode "dns": dnspython's names; mode "naive": lowercased text suffix, the rule the control expects
    /// to be caught.
    static let reference = #"""
    import sys, dns.name
    out = []
    for line in open(sys.argv[1], encoding="ascii"):
        mode, pattern, name = line.rstrip("\n").split("\t")
        depth = "any" if pattern.startswith("**.") else "one" if pattern.startswith("*.") else "exact"
        suffix_text = pattern[{"any": 3, "one": 2, "exact": 0}[depth]:]
        if mode == "naive":
            n, s = name.lower().rstrip("."), suffix_text.lower().rstrip(".")
            hit = n == s if depth == "exact" else n.endswith(s) and n != s
        else:
            n, s = dns.name.from_text(name), dns.name.from_text(suffix_text)
            extra = len(n) - len(s)
            hit = n.is_subdomain(s) and (extra == 0 if depth == "exact" else extra == 1 if depth == "one" else extra >= 1)
        out.append("1" if hit else "0")
    print("".join(out))
    """#

    /// A seeded generator, so a disagreement reproduces.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let labels = ["a", "b", "www", "allowed", "test", "evilallowed", "allowedtest", "xn--bcher-kva", "-", "_dmarc",
                         "a1", "0", "cdn", "edge", "*", "test-", "tEsT", "ALLOWED", String(repeating: "x", count: 63)]

    static func flipCase(_ text: String, _ random: inout Generator) -> String {
        String(text.map { $0.isLetter && Bool.random(using: &random) ? Character($0.isUppercase ? $0.lowercased() : $0.uppercased()) : $0 })
    }

    /// Patterns and names: random label sequences, and names built on the pattern's suffix (so matches are common),
    /// with one label more or less, a look-alike first label, flipped case and a trailing dot at random.
    static func cases(count: Int) -> [(pattern: String, name: String)] {
        var random = Generator(state: 0xCA6E_0017)
        var out: [(String, String)] = []
        // `*` is a label a query may hold, never one inside a pattern's suffix.
        func randomLabels(_ range: ClosedRange<Int>, star: Bool = true) -> [String] {
            (0..<Int.random(in: range, using: &random)).map { _ in labels.filter { star || $0 != "*" }.randomElement(using: &random)! }
        }
        while out.count < count {
            let suffix = randomLabels(1...3, star: false)
            let prefix = ["", "*.", "**."].randomElement(using: &random)!
            let pattern = prefix + suffix.joined(separator: ".") + (Bool.random(using: &random) ? "." : "")
            var name: [String]
            switch Int.random(in: 0..<5, using: &random) {
            case 0: name = randomLabels(1...5)
            case 1: name = suffix
            case 2: name = randomLabels(1...1) + suffix
            case 3: name = randomLabels(2...3) + suffix
            default: name = suffix; name[0] = "evil" + name[0]
            }
            var text = flipCase(name.joined(separator: "."), &random)
            if Bool.random(using: &random) { text += "." }
            guard text.utf8.count <= 250, name.allSatisfy({ $0.utf8.count <= 63 }) else { continue }
            out.append((pattern, text))
        }
        return out
    }

    func ensureDnspython() throws {
        if FileManager.default.fileExists(atPath: Self.venv + "/bin/python"),
           (try? Netlab.execute([Self.venv + "/bin/python", "-c", "import dns.name"], timeout: 30))?.succeeded == true { return }
        _ = try TestCache.path("differential")
        let made = try Netlab.execute(["python3", "-m", "venv", Self.venv], timeout: 120)
        try #require(made.succeeded, "python3 -m venv: \(made.stderr)")
        let installed = try Netlab.execute([Self.venv + "/bin/pip", "install", "--quiet", "dnspython==\(Self.dnspythonVersion)"], timeout: 300)
        try #require(installed.succeeded, "pip install dnspython (needs the package index): \(installed.stderr)")
    }

    func reference(_ mode: String, _ cases: [(pattern: String, name: String)]) throws -> [Bool] {
        let base = "/tmp/cgt-differential-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(base + ".txt"); unlink(base + ".py") }
        try cases.map { "\(mode)\t\($0.pattern)\t\($0.name)\n" }.joined().write(toFile: base + ".txt", atomically: false, encoding: .ascii)
        try Self.reference.write(toFile: base + ".py", atomically: false, encoding: .utf8)
        let run = try Netlab.execute([Self.venv + "/bin/python", base + ".py", base + ".txt"], timeout: 120)
        try #require(run.succeeded, "the reference failed: \(run.stderr)")
        let bits = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(bits.count == cases.count, "the reference answered \(bits.count) of \(cases.count) cases")
        return bits.map { $0 == "1" }
    }

    @Test(.enabled(if: Requirements.mayRun(tools: ["python3"]), "needs python3 (and the package index for dnspython)"))
    func gateAgreesWithDnspython() throws {
        try Requirements.tool("python3")
        try ensureDnspython()
        let cases = Self.cases(count: 20_000)
        let expected = try reference("dns", cases)
        var disagreements: [String] = []
        var matched = 0
        for (index, item) in cases.enumerated() {
            let pattern = try #require(DomainPattern(item.pattern), "pattern \(item.pattern)")
            let name = try #require(DNSName(item.name), "name \(item.name)")
            let policy = GatePolicy(patterns: [pattern], ipv6: true)
            let query = DNSMessage(id: 1, flags: 0x0100, questions: [DNSQuestion(name: name, type: DNSType.a)])
            var forwarded = false
            if case .resolve = policy.decide(query) { forwarded = true }
            if pattern.matches(name) != expected[index] || forwarded != expected[index] {
                disagreements.append("\(item.pattern) vs \(item.name): gate \(forwarded), dnspython \(expected[index])")
            }
            if expected[index] { matched += 1 }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.prefix(5))")
        // The generator must exercise both answers in quantity, or agreement says little.
        #expect(matched > 2_000 && matched < 18_000, "\(matched) of \(cases.count) cases match")

        // Control: a deliberately wrong rule through the same comparison is caught.
        let naive = try reference("naive", cases)
        let caught = zip(naive, expected).filter { $0 != $1 }.count
        #expect(caught > 100, "the naive text-suffix rule disagreed on only \(caught) cases: the comparison is blind")
    }
}
