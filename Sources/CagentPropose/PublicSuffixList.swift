import CagentCore

/// The Public Suffix List (publicsuffix.org): which suffixes anyone can register names under (`com`,
/// `co.uk`) and, in its PRIVATE section, which domains are shared by many tenants (`github.io`,
/// `s3.amazonaws.com`). The proposer never widens a pattern above a registrable domain, and by default
/// treats the private suffixes as public (a `*.github.io` would admit every user's pages).
///
/// The list's own format: one rule per line, `//` comments, `*.` wildcard rules, `!` exceptions, the
/// sections between `===BEGIN ICANN DOMAINS===` and `===BEGIN PRIVATE DOMAINS===` markers. Rules written in
/// Unicode are kept both as written and in punycode (profile names are punycode). Matching follows the
/// list's algorithm: an exception wins; else the rule with the most labels; else the default rule `*`.
package struct PublicSuffixList: Sendable {
    /// Where Debian's `publicsuffix` package installs it.
    package static let systemPath = "/usr/share/publicsuffix/public_suffix_list.dat"

    private struct Rule: Sendable { var isPrivate: Bool }
    private var exact: [String: Rule] = [:]
    /// `*.x` rules, keyed by `x`.
    private var wildcard: [String: Rule] = [:]
    /// `!x` rules, keyed by `x`.
    private var exception: [String: Rule] = [:]
    package private(set) var ruleCount = 0

    package init(text: String) {
        var isPrivate = false
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("//") {
                if line.contains("===BEGIN PRIVATE DOMAINS===") { isPrivate = true }
                if line.contains("===END PRIVATE DOMAINS===") || line.contains("===BEGIN ICANN DOMAINS===") { isPrivate = false }
                continue
            }
            // The rule is the line's first whitespace-separated word.
            guard let word = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first, !word.isEmpty else { continue }
            add(String(word).lowercased(), Rule(isPrivate: isPrivate))
        }
    }

    /// Reads the list from a file; nil when it is missing or unreadable.
    package static func load(path: String = systemPath) -> PublicSuffixList? {
        guard let text = FileSystem.readText(path) else { return nil }
        let list = PublicSuffixList(text: text)
        return list.ruleCount > 0 ? list : nil
    }

    private mutating func add(_ rule: String, _ value: Rule) {
        ruleCount += 1
        for form in Set([rule, Punycode.domain(rule)]) {
            if form.hasPrefix("!") { exception[String(form.dropFirst())] = value }
            else if form.hasPrefix("*.") { wildcard[String(form.dropFirst(2))] = value }
            else { exact[form] = value }
        }
    }

    /// The public suffix of `name` and whether its rule is in the PRIVATE section; nil for an empty name or
    /// one with an empty label. `includePrivate: false` reads only the ICANN section.
    package func publicSuffix(_ name: String, includePrivate: Bool = true) -> (suffix: String, isPrivate: Bool)? {
        let labels = name.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard !labels.isEmpty, !labels.contains(where: \.isEmpty) else { return nil }
        func usable(_ rule: Rule?) -> Rule? {
            guard let rule, includePrivate || !rule.isPrivate else { return nil }
            return rule
        }
        var best = 1
        var bestPrivate = false
        for start in 0..<labels.count {
            let suffix = labels[start...].joined(separator: ".")
            let length = labels.count - start
            // An exception rule prevails over every other: its suffix is the rule minus its first label.
            if let rule = usable(exception[suffix]) {
                return (labels[(start + 1)...].joined(separator: "."), rule.isPrivate)
            }
            if let rule = usable(exact[suffix]), length > best { best = length; bestPrivate = rule.isPrivate }
            if start > 0, let rule = usable(wildcard[suffix]), length + 1 > best {
                best = length + 1; bestPrivate = rule.isPrivate
            }
        }
        return (labels[(labels.count - best)...].joined(separator: "."), bestPrivate)
    }

    /// The registrable domain: the public suffix plus one label (`www.example.co.uk` -> `example.co.uk`);
    /// nil when the name is itself a public suffix.
    package func registrableDomain(_ name: String, includePrivate: Bool = true) -> String? {
        guard let (suffix, _) = publicSuffix(name, includePrivate: includePrivate) else { return nil }
        let labels = name.lowercased().split(separator: ".")
        let suffixCount = suffix.split(separator: ".").count
        guard labels.count > suffixCount else { return nil }
        return labels[(labels.count - suffixCount - 1)...].joined(separator: ".")
    }

    /// True when `name` itself is a public suffix (`com`, `co.uk`; with `includePrivate`, `github.io`).
    package func isPublicSuffix(_ name: String, includePrivate: Bool = true) -> Bool {
        publicSuffix(name, includePrivate: includePrivate)?.suffix == name.lowercased()
    }
}

/// RFC 3492 punycode, enough to write the list's Unicode rules as the `xn--` labels DNS names use. No IDNA
/// mapping beyond lower-casing (the list's rules are already in their canonical form).
enum Punycode {
    static func domain(_ text: String) -> String {
        var prefix = ""
        var rest = Substring(text)
        for marker in ["!", "*."] where rest.hasPrefix(marker) { prefix = marker; rest = rest.dropFirst(marker.count) }
        return prefix + rest.split(separator: ".", omittingEmptySubsequences: false).map { label($0) }.joined(separator: ".")
    }

    static func label<S: StringProtocol>(_ label: S) -> String {
        let scalars = label.lowercased().unicodeScalars.map(\.value)
        if scalars.allSatisfy({ $0 < 0x80 }) { return String(label).lowercased() }
        let base: UInt32 = 36, tmin: UInt32 = 1, tmax: UInt32 = 26, skew: UInt32 = 38, damp: UInt32 = 700
        func digit(_ d: UInt32) -> Character { Character(Unicode.Scalar(d < 26 ? 0x61 + d : 0x30 + d - 26)!) }
        func adapt(_ delta: UInt32, _ points: UInt32, _ first: Bool) -> UInt32 {
            var delta = first ? delta / damp : delta / 2
            delta += delta / points
            var k: UInt32 = 0
            while delta > ((base - tmin) * tmax) / 2 { delta /= base - tmin; k += base }
            return k + (base - tmin + 1) * delta / (delta + skew)
        }
        var output = String(scalars.filter { $0 < 0x80 }.map { Character(Unicode.Scalar($0)!) })
        let basic = UInt32(output.count)
        var handled = basic
        if basic > 0 { output.append("-") }
        var n: UInt32 = 128, delta: UInt32 = 0, bias: UInt32 = 72
        while handled < UInt32(scalars.count) {
            let m = scalars.filter { $0 >= n }.min()!
            delta += (m - n) * (handled + 1)
            n = m
            for c in scalars {
                if c < n { delta += 1 }
                if c == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tmin : (k >= bias + tmax ? tmax : k - bias)
                        if q < t { break }
                        output.append(digit(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digit(q))
                    bias = adapt(delta, handled + 1, handled == basic)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return "xn--" + output
    }
}
