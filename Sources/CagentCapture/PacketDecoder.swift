#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// One TCP or UDP segment read from an Ethernet frame on the session's veth.
package struct Segment: Sendable, Equatable {
    package var proto: UInt8            // 6 tcp, 17 udp
    package var source: IPAddress
    package var destination: IPAddress
    package var sourcePort: UInt16
    package var destinationPort: UInt16
    /// TCP only: sequence number and flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08).
    package var sequence: UInt32
    package var flags: UInt8
    package var payload: [UInt8]
}

/// Decodes Ethernet (DLT_EN10MB, one optional 802.1Q tag) -> IPv4/IPv6 -> TCP/UDP. Pure and bounds-checked at
/// every step: the bytes come from the sandbox. IPv4 fragments after the first and IPv6 extension headers are
/// not followed (nil): DNS and ClientHellos fit one unfragmented packet in practice.
package enum PacketDecoder {
    package static func ethernet(_ frame: [UInt8]) -> Segment? {
        guard frame.count >= 14 else { return nil }
        var offset = 12
        var etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if etherType == 0x8100 {
            guard frame.count >= 18 else { return nil }
            etherType = UInt16(frame[16]) << 8 | UInt16(frame[17])
            offset = 16
        }
        guard etherType == 0x0800 || etherType == 0x86DD else { return nil }
        return ip(Array(frame[(offset + 2)...]))
    }

    package static func ip(_ p: [UInt8]) -> Segment? {
        guard let first = p.first else { return nil }
        let proto: UInt8, source: IPAddress, destination: IPAddress, start: Int, end: Int
        switch first >> 4 {
        case 4:
            let headerLength = Int(first & 0x0F) * 4
            guard headerLength >= 20, p.count >= headerLength else { return nil }
            // A later fragment carries no transport header.
            guard (UInt16(p[6] & 0x1F) << 8 | UInt16(p[7])) == 0 else { return nil }
            let total = Int(p[2]) << 8 | Int(p[3])
            guard let s = IPAddress(bytes: Array(p[12..<16])), let d = IPAddress(bytes: Array(p[16..<20])) else { return nil }
            proto = p[9]; source = s; destination = d; start = headerLength
            end = min(p.count, max(total, headerLength))
        case 6:
            guard p.count >= 40, let s = IPAddress(bytes: Array(p[8..<24])), let d = IPAddress(bytes: Array(p[24..<40])) else { return nil }
            proto = p[6]; source = s; destination = d; start = 40
            end = min(p.count, 40 + (Int(p[4]) << 8 | Int(p[5])))
        default:
            return nil
        }
        guard end >= start else { return nil }
        let t = p[start..<end]
        let base = t.startIndex
        switch proto {
        case 17:
            guard t.count >= 8 else { return nil }
            return Segment(proto: 17, source: source, destination: destination,
                           sourcePort: UInt16(t[base]) << 8 | UInt16(t[base + 1]),
                           destinationPort: UInt16(t[base + 2]) << 8 | UInt16(t[base + 3]),
                           sequence: 0, flags: 0, payload: Array(t.dropFirst(8)))
        case 6:
            guard t.count >= 20 else { return nil }
            let dataOffset = Int(t[base + 12] >> 4) * 4
            guard dataOffset >= 20, t.count >= dataOffset else { return nil }
            let sequence = UInt32(t[base + 4]) << 24 | UInt32(t[base + 5]) << 16 | UInt32(t[base + 6]) << 8 | UInt32(t[base + 7])
            return Segment(proto: 6, source: source, destination: destination,
                           sourcePort: UInt16(t[base]) << 8 | UInt16(t[base + 1]),
                           destinationPort: UInt16(t[base + 2]) << 8 | UInt16(t[base + 3]),
                           sequence: sequence, flags: t[base + 13], payload: Array(t.dropFirst(dataOffset)))
        default:
            return nil
        }
    }
}
