#if canImport(Glibc)
import Glibc
#endif

/// What is wrong with one value, in words, and what to write instead.
package struct ValueProblem: Error, Sendable, Equatable {
    package var message: String
    package var hint: String?
    package init(_ message: String, hint: String? = nil) { self.message = message; self.hint = hint }
}

/// Checks and normalizes the values a profile lists. Pure functions: the parser calls them with each scalar,
/// the DNS gate and the launcher may call them again on their own input. Canonical forms are what
/// `show --resolved` prints and what merging compares.
package enum ValueSyntax {
    // MARK: Domains

    /// A domain pattern: `example.com`, `*.example.com` (exactly one more label), `**.example.com` (one or
    /// more labels). Lowercased, trailing dot removed, ASCII only (punycode `xn--` labels are fine).
    package static func domainPattern(_ raw: String) throws(ValueProblem) -> String {
        var text = try asciiName(raw)
        if text == "*" || text == "**" || text == "*." || text == "**." {
            throw ValueProblem("a bare wildcard would allow every domain",
                               hint: "name the domains, or a suffix such as '*.example.com'")
        }
        var prefix = ""
        if text.hasPrefix("**.") { prefix = "**."; text.removeFirst(3) }
        else if text.hasPrefix("*.") { prefix = "*."; text.removeFirst(2) }
        if text.contains("*") {
            throw ValueProblem("a wildcard is allowed only as the whole leftmost label",
                               hint: "write '*.example.com' (one label) or '**.example.com' (any depth)")
        }
        try checkHostName(text, what: "domain")
        if !prefix.isEmpty && !text.contains(".") {
            throw ValueProblem("a wildcard over a top-level domain ('\(prefix)\(text)') would allow a whole TLD",
                               hint: "put at least two labels after the wildcard, e.g. '\(prefix)example.\(text)'")
        }
        return prefix + text
    }

    /// Whether `name` (a query name, any case, trailing dot allowed) matches a canonical domain pattern.
    package static func matches(pattern: String, name: String) -> Bool {
        var name = name.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if pattern.hasPrefix("**.") {
            return name.hasSuffix(String(pattern.dropFirst(2)))
        }
        if pattern.hasPrefix("*.") {
            let suffix = String(pattern.dropFirst(1))
            guard name.hasSuffix(suffix) else { return false }
            let head = name.dropLast(suffix.count)
            return !head.isEmpty && !head.contains(".")
        }
        return name == pattern
    }

    /// Lowercases an ASCII host name and removes one trailing dot; refuses other scripts and addresses.
    private static func asciiName(_ raw: String) throws(ValueProblem) -> String {
        if raw.isEmpty { throw ValueProblem("empty domain") }
        if raw.unicodeScalars.contains(where: { !$0.isASCII }) {
            throw ValueProblem("non-ASCII domain", hint: "write internationalized names in punycode ('xn--...')")
        }
        var text = raw.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        if text.contains(":") || text.contains("/") {
            throw ValueProblem("a domain has no port, path or scheme",
                               hint: "ports go under network.endpoints as 'host:port/proto', addresses under network.cidrs")
        }
        return text
    }

    /// Labels of letters, digits, '-' and '_', 1-63 characters each, at most 253 in all.
    private static func checkHostName(_ text: String, what: String) throws(ValueProblem) {
        if text.isEmpty { throw ValueProblem("empty \(what)") }
        if text.utf8.count > 253 { throw ValueProblem("\(what) longer than 253 characters") }
        if isIPv4(text) {
            throw ValueProblem("an address is not a domain", hint: "put addresses in network.cidrs")
        }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            if label.isEmpty { throw ValueProblem("empty label in \(what) (two dots in a row, or a leading dot)") }
            if label.utf8.count > 63 { throw ValueProblem("label longer than 63 characters in \(what)") }
            for byte in label.utf8 {
                let ok = (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x5F
                if !ok {
                    throw ValueProblem("character '\(String(UnicodeScalar(byte)))' is not allowed in a \(what)",
                                       hint: "labels use letters, digits and '-'")
                }
            }
            if label.hasPrefix("-") || label.hasSuffix("-") {
                throw ValueProblem("a label cannot start or end with '-'")
            }
        }
        if let last = labels.last, last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            throw ValueProblem("the last label is numeric: this is not a domain name",
                               hint: "put addresses in network.cidrs")
        }
    }

    // MARK: Endpoints

    /// `host:port/proto`: host a name or an address (IPv6 in brackets), port 1-65535, proto tcp or udp
    /// (tcp when omitted).
    package static func endpoint(_ raw: String) throws(ValueProblem) -> Endpoint {
        let example = "expected host:port/proto, e.g. 'github.com:22/tcp' or '[2001:db8::1]:443/tcp'"
        var text = raw
        var proto = Endpoint.Proto.tcp
        if let slash = text.lastIndex(of: "/") {
            let name = text[text.index(after: slash)...].lowercased()
            guard let parsed = Endpoint.Proto(rawValue: name) else {
                throw ValueProblem("unknown protocol '\(name)'", hint: "the protocol is 'tcp' or 'udp'")
            }
            proto = parsed
            text = String(text[..<slash])
        }
        var host: String
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ValueProblem("missing ']' after an IPv6 address", hint: example) }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ValueProblem("missing ':port' after ']'", hint: example) }
            portText = rest.dropFirst()
            guard let canonical = canonicalIPv6(host) else {
                throw ValueProblem("'\(host)' is not an IPv6 address", hint: example)
            }
            host = canonical
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons == 0 { throw ValueProblem("missing ':port'", hint: example) }
            if colons > 1 {
                throw ValueProblem("an IPv6 address needs brackets", hint: "write '[2001:db8::1]:443/tcp'")
            }
            let colon = text.firstIndex(of: ":")!
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
            if isIPv4(host) {
                // keep as written: inet_pton accepted exactly dotted-quad.
            } else {
                if host.contains("*") {
                    throw ValueProblem("an endpoint names one host; wildcards are not allowed here",
                                       hint: "list the host names, or use network.domains for a wildcard on all ports")
                }
                host = try asciiName(host)
                try checkHostName(host, what: "host name")
            }
        }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let port = Int(portText), port >= 1, port <= 65535 else {
            throw ValueProblem("port '\(portText)' is not a number from 1 to 65535", hint: example)
        }
        return Endpoint(host: host, port: UInt16(port), proto: proto)
    }

    // MARK: Addresses

    /// An address or a CIDR block, IPv4 or IPv6, in canonical form. Host bits must be zero; /0 and the
    /// unspecified address are refused (they would allow everything).
    package static func cidr(_ raw: String) throws(ValueProblem) -> String {
        let parts = raw.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addressText = parts.first, !addressText.isEmpty else {
            throw ValueProblem("expected an address or a block, e.g. '192.0.2.0/24' or '2001:db8::/32'")
        }
        let v6 = addressText.contains(":")
        guard var bytes = parseAddress(String(addressText), v6: v6) else {
            throw ValueProblem("'\(addressText)' is not an IPv\(v6 ? 6 : 4) address",
                               hint: "expected an address or a block, e.g. '192.0.2.0/24' or '2001:db8::/32'")
        }
        let width = v6 ? 128 : 32
        guard parts.count == 2 else {
            if bytes.allSatisfy({ $0 == 0 }) { throw ValueProblem("the unspecified address allows nothing useful") }
            return formatAddress(bytes, v6: v6)
        }
        let prefixText = parts[1]
        guard !prefixText.isEmpty, prefixText.utf8.count <= 3, prefixText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let prefix = Int(prefixText), prefix <= width else {
            throw ValueProblem("prefix length '\(prefixText)' is not a number from 1 to \(width)")
        }
        if prefix == 0 {
            throw ValueProblem("a /0 block would allow every address", hint: "name the networks the agent needs")
        }
        var masked = bytes
        for index in 0..<masked.count {
            let keep = max(0, min(8, prefix - index * 8))
            masked[index] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        if masked != bytes {
            let suggestion = formatAddress(masked, v6: v6) + "/\(prefix)"
            throw ValueProblem("host bits are set after the /\(prefix) prefix", hint: "did you mean '\(suggestion)'?")
        }
        bytes = masked
        return formatAddress(bytes, v6: v6) + "/\(prefix)"
    }

    static func isIPv4(_ text: String) -> Bool { parseAddress(text, v6: false) != nil }

    static func canonicalIPv6(_ text: String) -> String? {
        parseAddress(text, v6: true).map { formatAddress($0, v6: true) }
    }

    private static func parseAddress(_ text: String, v6: Bool) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: v6 ? 16 : 4)
        let ok = bytes.withUnsafeMutableBytes { inet_pton(v6 ? AF_INET6 : AF_INET, text, $0.baseAddress) }
        return ok == 1 ? bytes : nil
    }

    private static func formatAddress(_ bytes: [UInt8], v6: Bool) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(v6 ? AF_INET6 : AF_INET, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard ok != nil else { return "" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Paths

    /// An absolute path or one under the agent's home (`~` or `~/...`), without `.` or `..` components.
    /// Repeated and trailing slashes are dropped.
    package static func path(_ raw: String) throws(ValueProblem) -> String {
        if raw.isEmpty { throw ValueProblem("empty path") }
        if raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ValueProblem("control character in a path")
        }
        let root: String
        let rest: Substring
        if raw == "~" { return "~" }
        if raw.hasPrefix("~/") { root = "~/"; rest = raw.dropFirst(2) }
        else if raw.hasPrefix("/") { root = "/"; rest = raw.dropFirst() }
        else if raw.hasPrefix("~") {
            throw ValueProblem("'~user' paths are not supported", hint: "use '~/...' (the agent's home) or an absolute path")
        } else {
            throw ValueProblem("a relative path", hint: "write an absolute path or one under '~/'; "
                               + "a relative path would depend on the directory cagent starts in")
        }
        let components = rest.split(separator: "/")
        for component in components where component == "." || component == ".." {
            throw ValueProblem("'\(component)' is not allowed in a path", hint: "write the path it leads to")
        }
        if components.isEmpty {
            if root == "/" { throw ValueProblem("'/' is the whole filesystem", hint: "name the directories the agent needs") }
            return "~"
        }
        return root + components.joined(separator: "/")
    }

    /// A `filesystem.hide` entry: a path (absolute or `~/...`) or a workspace pattern (WorkspacePattern).
    package static func hideEntry(_ raw: String) throws(ValueProblem) -> String {
        if raw.hasPrefix("/") || raw.hasPrefix("~") { return try path(raw) }
        return try WorkspacePattern(raw).text
    }

    // MARK: Environment

    /// A variable name: a letter or '_', then letters, digits, '_'.
    package static func environmentName(_ raw: String) throws(ValueProblem) -> String {
        guard let first = raw.utf8.first else { throw ValueProblem("empty variable name") }
        let isLetter = { (b: UInt8) in (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
        let ok = isLetter(first) && raw.utf8.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) } && raw.utf8.count <= 255
        if !ok {
            if raw.contains("=") {
                throw ValueProblem("a profile names variables, it does not set them",
                                   hint: "write the name only ('\(raw.prefix(while: { $0 != "=" }))'); the value comes from cagent's environment")
            }
            if raw.contains("*") {
                throw ValueProblem("patterns are not allowed: each variable passed is named", hint: "list the variables one by one")
            }
            throw ValueProblem("'\(raw)' is not a variable name", hint: "letters, digits and '_', not starting with a digit")
        }
        return raw
    }

    // MARK: Limits

    private static let binaryUnits: [(String, UInt64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
    private static let decimalUnits: [(String, UInt64)] = [("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000),
                                                           ("KB", 1000), ("kB", 1000), ("B", 1)]

    /// A size: bytes, or a whole number with a unit (`KiB MiB GiB TiB`, `KB MB GB TB`, `B`).
    package static func size(_ raw: String) throws(ValueProblem) -> UInt64 {
        let text = raw.replacing(" ", with: "")
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = String(text.dropFirst(digits.count))
        if unit.hasPrefix(".") || unit.hasPrefix(",") {
            throw ValueProblem("'\(raw)' is not a whole number", hint: "use a smaller unit, e.g. '1536MiB' for 1.5GiB")
        }
        guard !digits.isEmpty, let number = UInt64(digits) else {
            throw ValueProblem("'\(raw)' is not a size", hint: "write e.g. '2GiB', '512MiB' or a number of bytes")
        }
        var multiplier: UInt64 = 1
        if !unit.isEmpty {
            if let found = (binaryUnits + decimalUnits).first(where: { $0.0 == unit }) {
                multiplier = found.1
            } else {
                let guess = ["k": "KiB", "m": "MiB", "g": "GiB", "t": "TiB"][unit.prefix(1).lowercased()]
                throw ValueProblem("unknown unit '\(unit)'",
                                   hint: guess.map { "did you mean '\(digits)\($0)'? (units: KiB MiB GiB TiB, KB MB GB TB, B)" }
                                       ?? "units: KiB MiB GiB TiB, KB MB GB TB, B")
            }
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        if overflow || bytes > UInt64(Int64.max) { throw ValueProblem("'\(raw)' is too large") }
        if bytes == 0 { throw ValueProblem("a limit of zero would stop the agent", hint: "leave the key out for the default") }
        return bytes
    }

    /// The shortest exact spelling of a size (`2GiB`, `1500MB` stays bytes-exact as `1500000000`).
    package static func formatSize(_ bytes: UInt64) -> String {
        for (unit, value) in binaryUnits where bytes % value == 0 { return "\(bytes / value)\(unit)" }
        return "\(bytes)"
    }

    /// A whole count within `range`.
    package static func count(_ raw: String, range: ClosedRange<Int>) throws(ValueProblem) -> Int {
        guard !raw.isEmpty, raw.utf8.count <= 12, raw.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(raw) else {
            throw ValueProblem("'\(raw)' is not a whole number", hint: "write a number from \(range.lowerBound) to \(range.upperBound)")
        }
        guard range.contains(value) else {
            throw ValueProblem("\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
