/// DNS messages on the wire (RFC 1035): our own parser and builder, because every byte the gate reads
/// comes from a hostile sandbox. Names stay as label bytes from end to end; comparison lowercases ASCII
/// only and never round-trips through String. Fuzzed by Fuzz/ (scripts/fuzz-dns.sh).

/// A domain name as its labels (no length bytes, no root label). Compared by the policy with
/// `lowercased()`; printed only through `display` (escaped).
package struct DNSName: Hashable, Sendable {
    package var labels: [[UInt8]]

    package init(labels: [[UInt8]]) { self.labels = labels }

    /// Parses presentation text ("a.b.test", trailing dot allowed). Nil for an empty label, a label over
    /// 63 bytes or a name over 255 bytes on the wire. No escapes: this is for configuration and tests.
    package init?(_ text: String) {
        var bytes = Array(text.utf8)
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        if bytes.isEmpty { self.labels = []; return }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map(Array.init)
        if parts.contains(where: { $0.isEmpty || $0.count > 63 }) { return nil }
        self.labels = parts
        if wireLength > 255 { return nil }
    }

    /// Bytes on the wire, uncompressed: one length byte per label, the label, the root byte.
    package var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    /// ASCII letters folded to lower case (RFC 4343); other bytes untouched.
    package func lowercased() -> DNSName {
        DNSName(labels: labels.map { $0.map { ($0 >= 65 && $0 <= 90) ? $0 | 0x20 : $0 } })
    }

    /// Case-insensitive equality on wire labels.
    package func equalsIgnoringCase(_ other: DNSName) -> Bool {
        guard labels.count == other.labels.count else { return false }
        for (a, b) in zip(labels, other.labels) where !DNSName.labelEquals(a, b) { return false }
        return true
    }

    static func labelEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) {
            let lx = (x >= 65 && x <= 90) ? x | 0x20 : x
            let ly = (y >= 65 && y <= 90) ? y | 0x20 : y
            if lx != ly { return false }
        }
        return true
    }

    /// Dotted text for people; a dot or backslash inside a label is escaped so it cannot pass for a
    /// boundary. Still pass it through TerminalEscape before a terminal sees it.
    package var display: String {
        if labels.isEmpty { return "." }
        return labels.map { label in
            var out = ""
            for byte in label {
                switch byte {
                case UInt8(ascii: "."): out += "\\."
                case UInt8(ascii: "\\"): out += "\\\\"
                case 0x21...0x7E: out.unicodeScalars.append(Unicode.Scalar(byte))
                default:
                    let value = Int(byte)
                    out += "\\" + String(repeating: "0", count: value < 10 ? 2 : (value < 100 ? 1 : 0)) + String(value)
                }
            }
            return out
        }.joined(separator: ".")
    }
}

package enum DNSType {
    package static let a: UInt16 = 1
    package static let ns: UInt16 = 2
    package static let cname: UInt16 = 5
    package static let soa: UInt16 = 6
    package static let null: UInt16 = 10
    package static let mx: UInt16 = 15
    package static let txt: UInt16 = 16
    package static let aaaa: UInt16 = 28
    package static let svcb: UInt16 = 64
    package static let https: UInt16 = 65
    package static let opt: UInt16 = 41
    package static let any: UInt16 = 255
    package static let classIN: UInt16 = 1

    package static func name(_ type: UInt16) -> String {
        switch type {
        case a: return "A"
        case ns: return "NS"
        case cname: return "CNAME"
        case soa: return "SOA"
        case null: return "NULL"
        case mx: return "MX"
        case txt: return "TXT"
        case aaaa: return "AAAA"
        case svcb: return "SVCB"
        case https: return "HTTPS"
        case opt: return "OPT"
        case any: return "ANY"
        default: return "TYPE\(type)"
        }
    }
}

package enum DNSRcode {
    package static let noError: UInt8 = 0
    package static let formErr: UInt8 = 1
    package static let servFail: UInt8 = 2
    package static let nxDomain: UInt8 = 3
    package static let notImp: UInt8 = 4
    package static let refused: UInt8 = 5
}

package struct DNSQuestion: Hashable, Sendable {
    package var name: DNSName
    package var type: UInt16
    package var klass: UInt16

    package init(name: DNSName, type: UInt16, klass: UInt16 = DNSType.classIN) {
        self.name = name; self.type = type; self.klass = klass
    }
}

/// Record data: addresses and CNAME targets decoded (the gate reads them); everything else opaque bytes.
package enum DNSRData: Hashable, Sendable {
    case a([UInt8])
    case aaaa([UInt8])
    case cname(DNSName)
    case other([UInt8])
}

package struct DNSRecord: Hashable, Sendable {
    package var name: DNSName
    package var type: UInt16
    package var klass: UInt16
    package var ttl: UInt32
    package var data: DNSRData

    package init(name: DNSName, type: UInt16, klass: UInt16 = DNSType.classIN, ttl: UInt32, data: DNSRData) {
        self.name = name; self.type = type; self.klass = klass; self.ttl = ttl; self.data = data
    }
}

package struct DNSMessage: Hashable, Sendable {
    package var id: UInt16
    /// The 16 flag bits as on the wire (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    package var flags: UInt16
    package var questions: [DNSQuestion]
    package var answers: [DNSRecord]
    package var authority: [DNSRecord]
    package var additional: [DNSRecord]

    package init(id: UInt16, flags: UInt16, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
                authority: [DNSRecord] = [], additional: [DNSRecord] = []) {
        self.id = id; self.flags = flags; self.questions = questions
        self.answers = answers; self.authority = authority; self.additional = additional
    }

    package var isResponse: Bool { flags & 0x8000 != 0 }
    package var opcode: UInt8 { UInt8((flags >> 11) & 0xF) }
    package var truncated: Bool { flags & 0x0200 != 0 }
    package var recursionDesired: Bool { flags & 0x0100 != 0 }
    package var rcode: UInt8 { UInt8(flags & 0xF) }
}

package struct DNSWireError: Error, Equatable, Sendable, CustomStringConvertible {
    package var reason: String
    package var offset: Int
    package var description: String { "malformed DNS message at byte \(offset): \(reason)" }
}

package enum DNSWire {
    /// Parses a whole message. Throws on anything malformed: truncation, counts larger than the
    /// message, labels over 63, names over 255, reserved label types, compression pointers that do not
    /// point strictly backwards (which also rules out loops), trailing garbage is tolerated (RFC says
    /// nothing; resolvers ignore it).
    package static func parse(_ bytes: [UInt8]) throws(DNSWireError) -> DNSMessage {
        var reader = Reader(bytes: bytes)
        let id = try reader.u16()
        let flags = try reader.u16()
        let qd = Int(try reader.u16()), an = Int(try reader.u16())
        let ns = Int(try reader.u16()), ar = Int(try reader.u16())
        // Each question takes at least 5 bytes, each record 11: reject impossible counts before looping.
        if qd * 5 + (an + ns + ar) * 11 > bytes.count - 12 {
            throw DNSWireError(reason: "counts larger than the message", offset: 4)
        }
        var questions: [DNSQuestion] = []
        for _ in 0..<qd {
            let name = try reader.name()
            let type = try reader.u16(), klass = try reader.u16()
            questions.append(DNSQuestion(name: name, type: type, klass: klass))
        }
        let answers = try (0..<an).map { _ throws(DNSWireError) in try reader.record() }
        let authority = try (0..<ns).map { _ throws(DNSWireError) in try reader.record() }
        let additional = try (0..<ar).map { _ throws(DNSWireError) in try reader.record() }
        return DNSMessage(id: id, flags: flags, questions: questions, answers: answers,
                          authority: authority, additional: additional)
    }

    /// Builds a message without name compression. Throws only for names or record data that cannot be
    /// encoded (empty or >63-byte label, name over 255 bytes, rdata over 65535 bytes, over 65535 records).
    package static func build(_ message: DNSMessage) throws(DNSWireError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
        func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
        func count(_ n: Int) throws(DNSWireError) {
            guard n <= 0xFFFF else { throw DNSWireError(reason: "too many records", offset: out.count) }
            u16(UInt16(n))
        }
        func name(_ n: DNSName) throws(DNSWireError) {
            guard n.wireLength <= 255 else { throw DNSWireError(reason: "name over 255 bytes", offset: out.count) }
            for label in n.labels {
                guard !label.isEmpty, label.count <= 63 else {
                    throw DNSWireError(reason: "label of \(label.count) bytes", offset: out.count)
                }
                out.append(UInt8(label.count)); out.append(contentsOf: label)
            }
            out.append(0)
        }
        func record(_ r: DNSRecord) throws(DNSWireError) {
            try name(r.name); u16(r.type); u16(r.klass); u32(r.ttl)
            let lengthAt = out.count
            u16(0)
            switch r.data {
            case .a(let b), .aaaa(let b), .other(let b): out.append(contentsOf: b)
            case .cname(let target): try name(target)
            }
            let length = out.count - lengthAt - 2
            guard length <= 0xFFFF else { throw DNSWireError(reason: "rdata over 65535 bytes", offset: lengthAt) }
            out[lengthAt] = UInt8(length >> 8); out[lengthAt + 1] = UInt8(length & 0xFF)
        }
        u16(message.id); u16(message.flags)
        try count(message.questions.count); try count(message.answers.count)
        try count(message.authority.count); try count(message.additional.count)
        for q in message.questions { try name(q.name); u16(q.type); u16(q.klass) }
        for r in message.answers { try record(r) }
        for r in message.authority { try record(r) }
        for r in message.additional { try record(r) }
        return out
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DNSWireError) -> UInt8 {
            guard offset < bytes.count else { throw DNSWireError(reason: "truncated", offset: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(DNSWireError) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw DNSWireError(reason: "truncated", offset: offset) }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(DNSWireError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func take(_ n: Int) throws(DNSWireError) -> [UInt8] {
            guard n >= 0, offset + n <= bytes.count else { throw DNSWireError(reason: "truncated", offset: offset) }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }

        /// A name at the current offset, following compression pointers. A pointer must point before the
        /// start of the label sequence it interrupts, so every jump goes strictly backwards and cannot loop.
        mutating func name() throws(DNSWireError) -> DNSName {
            var labels: [[UInt8]] = []
            var wire = 1
            var position = offset
            var floor = offset          // a pointer must land before this
            var jumped = false
            while true {
                guard position < bytes.count else { throw DNSWireError(reason: "truncated name", offset: position) }
                let length = bytes[position]
                switch length & 0xC0 {
                case 0x00:
                    if length == 0 {
                        position += 1
                        if !jumped { offset = position }
                        return DNSName(labels: labels)
                    }
                    let start = position + 1, end = start + Int(length)
                    guard end <= bytes.count else { throw DNSWireError(reason: "truncated label", offset: position) }
                    wire += 1 + Int(length)
                    guard wire <= 255 else { throw DNSWireError(reason: "name over 255 bytes", offset: position) }
                    labels.append(Array(bytes[start..<end]))
                    position = end
                case 0xC0:
                    guard position + 1 < bytes.count else { throw DNSWireError(reason: "truncated pointer", offset: position) }
                    let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < floor else {
                        throw DNSWireError(reason: "compression pointer not backwards", offset: position)
                    }
                    if !jumped { offset = position + 2; jumped = true }
                    floor = target
                    position = target
                default:
                    throw DNSWireError(reason: "reserved label type", offset: position)
                }
            }
        }

        mutating func record() throws(DNSWireError) -> DNSRecord {
            let name = try name()
            let type = try u16(), klass = try u16(), ttl = try u32()
            let length = Int(try u16())
            guard offset + length <= bytes.count else { throw DNSWireError(reason: "truncated rdata", offset: offset) }
            let end = offset + length
            let data: DNSRData
            switch (type, klass, length) {
            case (DNSType.a, DNSType.classIN, 4): data = .a(try take(4))
            case (DNSType.aaaa, DNSType.classIN, 16): data = .aaaa(try take(16))
            case (DNSType.cname, _, _):
                let target = try self.name()
                guard offset == end else { throw DNSWireError(reason: "CNAME rdata length mismatch", offset: offset) }
                data = .cname(target)
            default: data = .other(try take(length))
            }
            return DNSRecord(name: name, type: type, klass: klass, ttl: ttl, data: data)
        }
    }
}
