/// The lines of an OpenSSH `known_hosts` text that name given hosts, and nothing else: the sandbox's
/// known_hosts under `--ssh-key` holds only the profile's ssh hosts (docs/cli.md, "ssh for git"). Plain
/// names (`host`, `[host]:port`, comma lists) are compared as text; hashed entries (`|1|salt|hash`, the
/// default of Debian's `HashKnownHosts yes`) by HMAC-SHA1 of the name under the salt, as ssh does.
/// Wildcard and negated patterns are never copied (they would vouch for more than the named hosts);
/// `@revoked` and `@cert-authority` lines are left out too. Output lines name the host in the clear.
package enum KnownHosts {
    /// `host` for port 22, `[host]:port` otherwise: the form ssh looks up.
    package static func lookupName(host: String, port: UInt16) -> String {
        port == 22 ? host.lowercased() : "[\(host.lowercased())]:\(port)"
    }

    /// For each wanted name (lookupName form), the `name keytype key` lines found in `text`.
    package static func filter(_ text: String, names: [String]) -> [String: [String]] {
        var found: [String: [String]] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingLeadingSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("@") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 3, fields[1].allSatisfy(isKeyTypeCharacter), fields[2].allSatisfy(isBase64Character) else { continue }
            for name in names where matches(field: fields[0], name: name) {
                let entry = "\(name) \(fields[1]) \(fields[2])"
                if !(found[name] ?? []).contains(entry) { found[name, default: []].append(entry) }
            }
        }
        return found
    }

    static func matches(field: String, name: String) -> Bool {
        if field.hasPrefix("|1|") {
            let parts = field.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, let salt = Base64.decode(String(parts[2])), let hash = Base64.decode(String(parts[3])) else { return false }
            return HMACSHA1.mac(key: salt, message: Array(name.utf8)) == hash
        }
        return field.split(separator: ",").contains { pattern in
            !pattern.contains("*") && !pattern.contains("?") && !pattern.hasPrefix("!") && pattern.lowercased() == name
        }
    }

    private static func isKeyTypeCharacter(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || "-@.".contains(c)) }
    private static func isBase64Character(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || "+/=".contains(c)) }
}

private extension Substring {
    var trimmingLeadingSpaces: Substring { drop { $0 == " " || $0 == "\t" || $0 == "\r" } }
}

/// RFC 4648 base64 (standard alphabet, padding optional), decoding only.
enum Base64 {
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for byte in text.utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            buffer = (buffer << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xff))
            }
        }
        return out
    }
}

/// HMAC-SHA1 (RFC 2104 over FIPS 180-4 SHA-1): what ssh hashes known_hosts names with. Not used for
/// anything that needs collision resistance: it only recognises entries the user's ssh wrote.
enum HMACSHA1 {
    static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var block = key.count > 64 ? sha1(key) : key
        block += [UInt8](repeating: 0, count: 64 - block.count)
        let inner = sha1(block.map { $0 ^ 0x36 } + message)
        return sha1(block.map { $0 ^ 0x5c } + inner)
    }

    static func sha1(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8((bitLength >> UInt64(shift)) & 0xff)) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                w[i] = (0..<4).reduce(0) { ($0 << 8) | UInt32(data[chunk + 4 * i + $1]) }
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = (x << 1) | (x >> 31)
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32)
                switch i {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A827999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1BBCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62C1D6)
                }
                let temp = ((a << 5) | (a >> 27)) &+ f &+ e &+ k &+ w[i]
                e = d; d = c; c = (b << 30) | (b >> 2); b = a; a = temp
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d; h[4] = h[4] &+ e
        }
        return h.flatMap { value in [24, 16, 8, 0].map { UInt8((value >> UInt32($0)) & 0xff) } }
    }
}
