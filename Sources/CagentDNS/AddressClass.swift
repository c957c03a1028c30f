#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// The classification the gate needs to refuse rebinding answers (loopback, private, link-local, cloud
/// metadata), on the project's one address type (CagentNetwork's `IPAddress`).
extension IPAddress {
    package var isV4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else nil.
    package var mappedV4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    /// Why an answer with this address must not be pinned unless the profile allows it, or nil when it
    /// is an ordinary public address.
    package var specialUse: String? {
        if let inner = mappedV4 { return inner.specialUse.map { $0 + " (v4-mapped)" } ?? "v4-mapped" }
        let b = bytes
        if isV4 {
            switch (b[0], b[1]) {
            case (0, _): return "unspecified"
            case (127, _): return "loopback"
            case (10, _), (192, 168): return "private"
            case (172, 16...31): return "private"
            case (169, 254): return b[2] == 169 && b[3] == 254 ? "cloud metadata" : "link-local"
            case (100, 64...127): return b == [100, 100, 100, 200] ? "cloud metadata" : "shared (CGNAT)"
            case (168, 63) where b[2] == 129 && b[3] == 16: return "cloud metadata"
            case (224...239, _): return "multicast"
            case (240...255, _): return "reserved"
            default: return nil
            }
        }
        if b[0..<15].allSatisfy({ $0 == 0 }) { return b[15] == 1 ? "loopback" : (b[15] == 0 ? "unspecified" : "reserved") }
        if b == IPAddress.ec2MetadataV6 { return "cloud metadata" }
        if b[0] & 0xFE == 0xFC { return "private (ULA)" }
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
        if b[0] == 0xFF { return "multicast" }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B { return "NAT64" }
        return nil
    }
}

extension IPAddress {
    static let ec2MetadataV6: [UInt8] = [0xFD, 0x00, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54]
}
