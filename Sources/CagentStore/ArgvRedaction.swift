import CagentEvents

/// Secrets on command lines never reach the store: learn records every exec's argv, and an agent runs
/// `curl -H "Authorization: Bearer …"`, `mysql -p…`, `deploy --token …`, `API_KEY=… make`, `git clone
/// https://user:pass@…`. What is cut (the option or header name stays, so the report still says what ran):
/// values of options and `NAME=value` assignments whose name looks secret, credential headers, the password
/// of a URL's userinfo and of curl's `-u user:pass`, mysql's and sshpass's `-p`, and anywhere, any value
/// equal to a secret the session was started with (`secretValues`).
/// Works on bytes: argv need not be UTF-8, and a secret in invalid UTF-8 must not slip through.
package struct ArgvRedaction: Sendable, Equatable {
    package static let marker: [UInt8] = Array("[redacted]".utf8)
    /// Values shorter than this are not searched for (a secret of three letters would cut words everywhere).
    static let shortestValue = 6

    /// Exact values cut wherever they appear, longest first (one inside another is cut whole).
    package private(set) var secretValues: [[UInt8]]

    package init(secretValues: [String] = []) {
        self.secretValues = Set(secretValues.map { Array($0.utf8) }.filter { $0.count >= Self.shortestValue })
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.lexicographicallyPrecedes($1) }
    }

    /// The values of a session's environment that are secrets: variables whose names look secret, the names
    /// given (keys from credential files), and long opaque values of variables the agent does not get.
    package static func secretValues(environment: [String: String], secretNames: [String] = [], hidden: [String] = []) -> [String] {
        environment.compactMap { name, value in
            if looksSecret(Array(name.utf8)) || secretNames.contains(name) { return value }
            if hidden.contains(name), value.utf8.count >= 16, !value.contains("/"), !value.contains(" ") { return value }
            return nil
        }
    }

    /// A name (of an option, a variable or a header) that says its value is a secret.
    static func looksSecret(_ name: [UInt8]) -> Bool {
        let upper = name.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
        for word in ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "CREDENTIAL"]
            where contains(upper, Array(word.utf8)) { return true }
        let parts = upper.split { $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
        return parts.contains { part in ["KEY", "PASS", "PW", "PWD", "AUTH", "COOKIE"].contains { Array($0.utf8) == Array(part) } }
            && upper != Array("PWD".utf8) && upper != Array("OLDPWD".utf8)
    }

    package func redact(_ argv: [RawText]) -> [RawText] {
        let tool = argv.first.map { Self.baseName($0.bytes) } ?? []
        var out: [RawText] = []
        var next: ValueRule = .keep
        for (index, argument) in argv.enumerated() {
            var bytes = argument.bytes
            switch next {
            // An option after `--password` means it took no value (psql prompts).
            case .whole: if bytes.first != UInt8(ascii: "-") { bytes = Self.marker }
            case .afterColon: bytes = Self.afterFirst(UInt8(ascii: ":"), in: bytes)
            case .keep: break
            }
            next = index > 0 ? Self.rule(for: argument.bytes, tool: tool) : .keep
            if index > 0 { bytes = Self.redactInline(bytes, tool: tool) }
            bytes = Self.redactHeaders(bytes)
            bytes = Self.redactUserinfo(bytes)
            for value in secretValues { bytes = Self.replace(value, in: bytes) }
            out.append(RawText(bytes: bytes))
        }
        return out
    }

    /// What happens to the argument after this one.
    enum ValueRule: Equatable { case keep, whole, afterColon }

    /// `--token` (a secret-named long option alone), `-u`/`--user` (curl's user:password), sshpass's `-p`.
    static func rule(for argument: [UInt8], tool: [UInt8]) -> ValueRule {
        if tool == Array("sshpass".utf8), argument == Array("-p".utf8) { return .whole }
        if argument == Array("-u".utf8) || argument == Array("--user".utf8) || argument == Array("--proxy-user".utf8) { return .afterColon }
        guard argument.starts(with: Array("--".utf8)), !argument.contains(UInt8(ascii: "=")),
              !argument.starts(with: Array("--no-".utf8)) else { return .keep }
        return looksSecret(Array(argument.dropFirst(2))) ? .whole : .keep
    }

    /// `--name=value`, `NAME=value`, `--user=u:p`, and the tools whose `-p` glues the password on.
    static func redactInline(_ argument: [UInt8], tool: [UInt8]) -> [UInt8] {
        let passwordP = ["mysql", "mysqldump", "mysqladmin", "mariadb", "sshpass"].contains { Array($0.utf8) == tool }
        if passwordP, argument.count > 2, argument.starts(with: Array("-p".utf8)) { return Array("-p".utf8) + marker }
        guard let equals = argument.firstIndex(of: UInt8(ascii: "=")), equals > 0 else { return argument }
        let name = Array(argument[..<equals])
        if name == Array("--user".utf8) || name == Array("--proxy-user".utf8) {
            return name + [UInt8(ascii: "=")] + afterFirst(UInt8(ascii: ":"), in: Array(argument[(equals + 1)...]))
        }
        let bare = Array(name.drop { $0 == UInt8(ascii: "-") })
        let assignment = name.first != UInt8(ascii: "-") && name.allSatisfy { isNameByte($0) }
        let option = name.starts(with: Array("--".utf8)) && !bare.isEmpty
        guard assignment || option, looksSecret(bare) else { return argument }
        return name + [UInt8(ascii: "=")] + marker
    }

    /// `Authorization: Bearer x` keeps `Authorization: Bearer `; other credential headers keep their name.
    static func redactHeaders(_ argument: [UInt8]) -> [UInt8] {
        let lower = argument.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        for header in ["proxy-authorization:", "authorization:", "cookie:", "x-api-key:", "x-auth-token:", "private-token:", "x-vault-token:"] {
            guard let start = find(Array(header.utf8), in: lower) else { continue }
            var cut = start + header.utf8.count
            while cut < argument.count, argument[cut] == UInt8(ascii: " ") { cut += 1 }
            if header.hasSuffix("authorization:") {
                // The scheme (Bearer, Basic, token) stays when a value follows it.
                var end = cut
                while end < argument.count, argument[end] != UInt8(ascii: " ") { end += 1 }
                if end < argument.count { cut = end + 1 }
            }
            if cut >= argument.count { return argument }
            return Array(argument[..<cut]) + marker
        }
        return argument
    }

    /// `scheme://user:password@host` keeps the user and the host; every URL in the argument.
    static func redactUserinfo(_ argument: [UInt8]) -> [UInt8] {
        var bytes = argument
        var from = 0
        while let found = find(Array("://".utf8), in: bytes, from: from) {
            let start = found + 3
            var end = start
            while end < bytes.count, !"/?# \"'".utf8.contains(bytes[end]) { end += 1 }
            from = end
            guard let at = bytes[start..<end].lastIndex(of: UInt8(ascii: "@")),
                  let colon = bytes[start..<at].firstIndex(of: UInt8(ascii: ":")) else { continue }
            bytes = Array(bytes[...colon]) + marker + Array(bytes[at...])
            from = colon + 1 + marker.count + 1
        }
        return bytes
    }

    static func afterFirst(_ byte: UInt8, in value: [UInt8]) -> [UInt8] {
        guard let index = value.firstIndex(of: byte) else { return value }
        return index + 1 < value.count ? Array(value[...index]) + marker : value
    }

    static func replace(_ value: [UInt8], in bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = [], index = 0
        while index < bytes.count {
            if bytes.count - index >= value.count, bytes[index..<(index + value.count)].elementsEqual(value) {
                result += marker; index += value.count
            } else {
                result.append(bytes[index]); index += 1
            }
        }
        return result
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int = 0) -> Int? {
        guard !needle.isEmpty, bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
        for index in from...(bytes.count - needle.count) where bytes[index..<(index + needle.count)].elementsEqual(needle) { return index }
        return nil
    }

    static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool { find(needle, in: bytes) != nil }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: "_")
    }

    static func baseName(_ path: [UInt8]) -> [UInt8] {
        path.lastIndex(of: UInt8(ascii: "/")).map { Array(path[($0 + 1)...]) } ?? path
    }
}
