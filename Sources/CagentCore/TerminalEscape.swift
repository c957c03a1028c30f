/// Makes text that came from a sandbox (a domain name, a path, argv) safe to print on a terminal: C0 and C1
/// control characters, DEL, bidi overrides and isolates, and invalid UTF-8 are shown as visible escapes, so
/// a hostile name cannot move the cursor, rewrite the screen, or reorder what the user reads.
package enum TerminalEscape {
    /// Escapes raw bytes (invalid UTF-8 is shown byte by byte as `\xNN`).
    package static func escape(bytes: some Sequence<UInt8>) -> String {
        let all = Array(bytes)
        var out = ""
        var index = 0
        while index < all.count {
            let length = utf8Length(all[index])
            if length > 0, index + length <= all.count {
                var slice = all[index..<(index + length)].makeIterator()
                var decoder = UTF8()
                if case .scalarValue(let scalar) = decoder.decode(&slice) {
                    out += escape(scalar: scalar)
                    index += length
                    continue
                }
            }
            // Not a valid UTF-8 sequence here: show this byte and resynchronise on the next one.
            out += "\\x" + hex(all[index])
            index += 1
        }
        return out
    }

    /// Escapes a Swift string (already valid Unicode).
    package static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars { out += escape(scalar: scalar) }
        return out
    }

    static func escape(scalar: Unicode.Scalar) -> String {
        let value = scalar.value
        switch value {
        case 0x5C: return "\\\\"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x00..<0x20, 0x7F:
            return "\\x" + hex(UInt8(truncatingIfNeeded: value))
        // C1 controls (U+0080..U+009F, e.g. the 8-bit CSI), bidi embeddings/overrides/isolates, marks, and other invisible format characters that can
        // make text read differently from what it is.
        case 0x80..<0xA0, 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF, 0x061C:
            return "\\u{" + String(value, radix: 16, uppercase: true) + "}"
        default:
            return String(Character(scalar))
        }
    }

    private static func utf8Length(_ lead: UInt8) -> Int {
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: return 2
        case 0xE0...0xEF: return 3
        case 0xF0...0xF4: return 4
        default: return 0
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
