#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// One packet the firewall denied, as read from its NFLOG record.
package struct DeniedPacket: Sendable, Equatable {
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    package var proto: UInt8
    package var destination: IPAddress
    /// Destination port for TCP and UDP, else nil.
    package var port: UInt16?
    /// The log rule's prefix (NFULA_PREFIX), without its NUL.
    package var prefix: [UInt8]

    package init(proto: UInt8, destination: IPAddress, port: UInt16?, prefix: [UInt8] = []) {
        self.proto = proto; self.destination = destination; self.port = port; self.prefix = prefix
    }

    package var protoName: String {
        switch proto {
        case 6: return "tcp"
        case 17: return "udp"
        case 1: return "icmp"
        case 58: return "icmpv6"
        default: return "proto \(proto)"
        }
    }
}

/// Decodes DLT_NFLOG frames: a 4-byte nflog header, then TLVs `{u16 length, u16 type}` in host byte order,
/// each padded to 4 bytes; NFULA_PAYLOAD (9) holds the IP packet, NFULA_PREFIX (10) the rule's prefix.
package enum NflogFrame {
    static let payload: UInt16 = 9
    static let prefixType: UInt16 = 10

    package static func parse(_ frame: [UInt8]) -> DeniedPacket? {
        guard frame.count >= 4 else { return nil }
        var offset = 4
        var packet: [UInt8]?
        var prefix: [UInt8] = []
        while offset + 4 <= frame.count {
            let length = Int(UInt16(frame[offset]) | UInt16(frame[offset + 1]) << 8)
            let type = UInt16(frame[offset + 2]) | UInt16(frame[offset + 3]) << 8
            guard length >= 4, offset + length <= frame.count else { break }
            let value = Array(frame[(offset + 4)..<(offset + length)])
            switch type & 0x7FFF {
            case payload: packet = value
            case prefixType: prefix = Array(value.prefix { $0 != 0 })
            default: break
            }
            offset += (length + 3) & ~3
        }
        guard let packet, var denied = ip(packet) else { return nil }
        denied.prefix = prefix
        return denied
    }

    /// Protocol, destination and port of an IPv4 or IPv6 packet (IPv6 extension headers are not walked:
    /// the port is then nil, the address still reported).
    package static func ip(_ p: [UInt8]) -> DeniedPacket? {
        guard let first = p.first else { return nil }
        switch first >> 4 {
        case 4:
            let headerLength = Int(first & 0x0F) * 4
            guard headerLength >= 20, p.count >= 20, let destination = IPAddress(bytes: Array(p[16..<20])) else { return nil }
            let proto = p[9]
            return DeniedPacket(proto: proto, destination: destination, port: port(p, at: headerLength, proto: proto))
        case 6:
            guard p.count >= 40, let destination = IPAddress(bytes: Array(p[24..<40])) else { return nil }
            let proto = p[6]
            return DeniedPacket(proto: proto, destination: destination, port: port(p, at: 40, proto: proto))
        default:
            return nil
        }
    }

    static func port(_ p: [UInt8], at offset: Int, proto: UInt8) -> UInt16? {
        guard proto == 6 || proto == 17, p.count >= offset + 4 else { return nil }
        return UInt16(p[offset + 2]) << 8 | UInt16(p[offset + 3])
    }
}
