#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as network-order bytes (4 or 16), with the classification the gate needs to
/// refuse rebinding answers (loopback, private, link-local, cloud metadata).
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Nil unless exactly 4 or 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (inet_pton: no decimal/hex IPv4 forms).
    public init?(_ text: String) {
        var buffer = [UInt8](repeating: 0, count: 16)
        if text.contains(":") {
            guard inet_pton(AF_INET6, text, &buffer) == 1 else { return nil }
            self.bytes = buffer
        } else {
            guard inet_pton(AF_INET, text, &buffer) == 1 else { return nil }
            self.bytes = Array(buffer[0..<4])
        }
    }

    public var isV4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else nil.
    public var mappedV4: IPAddress? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return nil }
        return IPAddress(bytes: Array(bytes[12..<16]))
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let family = isV4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBufferPointer { inet_ntop(family, $0.baseAddress, &text, 64) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        lhs.bytes.count != rhs.bytes.count ? lhs.bytes.count < rhs.bytes.count : lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// Why an answer with this address must not be pinned unless the profile allows it, or nil when it
    /// is an ordinary public address.
    public var specialUse: String? {
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
        if b == IPAddress("fd00:ec2::254")!.bytes { return "cloud metadata" }
        if b[0] & 0xFE == 0xFC { return "private (ULA)" }
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
        if b[0] == 0xFF { return "multicast" }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B { return "NAT64" }
        return nil
    }
}

/// An address block ("10.0.0.0/8", "fd00::/8", or a single address) for profile exceptions.
public struct IPBlock: Hashable, Sendable {
    public let base: IPAddress
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let base = IPAddress(parts[0]) else { return nil }
        let bits = base.bytes.count * 8
        let prefix = parts.count == 2 ? Int(parts[1]) : bits
        guard let prefix, prefix >= 0, prefix <= bits else { return nil }
        self.base = base; self.prefix = prefix
    }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == base.bytes.count else { return false }
        var left = prefix
        for (a, b) in zip(address.bytes, base.bytes) {
            if left <= 0 { return true }
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            if a & mask != b & mask { return false }
            left -= 8
        }
        return true
    }
}
