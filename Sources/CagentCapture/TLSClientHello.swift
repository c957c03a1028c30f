/// Reads the server name (SNI, RFC 6066) from the start of a TLS ClientHello: the first bytes a client sends
/// on a TLS connection. Pure and bounds-checked (fuzzed: `scripts/fuzz-dns.sh run tls`); a hello cut off by
/// the capture or split across segments yields the name when its extension is whole, else nil, never a guess.
package enum TLSClientHello {
    /// The host_name entry of the server_name extension, in lower case; bytes outside `[a-z0-9.-_]` are shown as
    /// `\DDD`, so a hostile name cannot pass for another or reach a terminal raw. Nil when `bytes` does not start
    /// with a ClientHello carrying one.
    package static func serverName(_ bytes: [UInt8]) -> String? {
        var r = Reader(bytes: bytes)
        // TLS record: handshake (22), version 3.x, length.
        guard r.u8() == 22, r.u8() == 3, r.u8() != nil, let recordLength = r.u16() else { return nil }
        var record = Reader(bytes: Array(bytes.dropFirst(5).prefix(Int(recordLength))))
        // Handshake: client_hello (1), 24-bit length.
        guard record.u8() == 1, let hi = record.u8(), let mid = record.u16() else { return nil }
        var hello = Reader(bytes: record.take(Int(hi) << 16 | Int(mid)) ?? record.rest())
        guard hello.skip(2 + 32),                                   // client_version, random
              let sessionID = hello.u8(), hello.skip(Int(sessionID)),
              let suites = hello.u16(), hello.skip(Int(suites)),
              let compression = hello.u8(), hello.skip(Int(compression)),
              let extensionsLength = hello.u16() else { return nil }
        // A hello cut short (capture length, a later segment not yet seen) still yields the extensions it holds
        // whole; the server_name one usually comes early.
        let extensionBytes = hello.take(Int(extensionsLength)) ?? hello.rest()
        var extensions = Reader(bytes: extensionBytes)
        while let type = extensions.u16(), let length = extensions.u16(), let body = extensions.take(Int(length)) {
            guard type == 0 else { continue }
            var list = Reader(bytes: body)
            guard let listLength = list.u16(), let entries = list.take(Int(listLength)) else { return nil }
            var names = Reader(bytes: entries)
            while let nameType = names.u8(), let nameLength = names.u16(), let name = names.take(Int(nameLength)) {
                if nameType == 0 { return name.isEmpty ? nil : display(name) }
            }
            return nil
        }
        return nil
    }

    static func display(_ name: [UInt8]) -> String {
        var out = ""
        for byte in name.prefix(255) {
            let lower = (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
            switch lower {
            case 0x61...0x7A, 0x30...0x39, UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                out.unicodeScalars.append(Unicode.Scalar(lower))
            default:
                out += "\\" + String(lower).leftPadded(3)
            }
        }
        return out
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        init(bytes: [UInt8]) { self.bytes = bytes }
        mutating func u8() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func u16() -> UInt16? {
            guard offset + 2 <= bytes.count else { return nil }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }
        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, offset + n <= bytes.count else { return false }
            offset += n
            return true
        }
        mutating func take(_ n: Int) -> [UInt8]? {
            guard n >= 0, offset + n <= bytes.count else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }
        mutating func rest() -> [UInt8] {
            defer { offset = bytes.count }
            return Array(bytes[offset...])
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
