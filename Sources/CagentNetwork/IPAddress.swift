#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as its network-order bytes. Parsing is strict (inet_pton): the decimal and octal
/// spellings a shell or a URL parser might accept (`3232235777`, `0300.0250.1.1`) are not addresses here.
package struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    package enum Family: Sendable, Hashable { case v4, v6 }

    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    package let bytes: [UInt8]

    package var family: Family { bytes.count == 4 ? .v4 : .v6 }

    package init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    package init?(_ text: String) {
        var v4 = in_addr()
        if !text.contains(":"), inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        let bare = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        if bare.contains(":"), inet_pton(AF_INET6, bare, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    package var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(family == .v4 ? AF_INET : AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        return String(nulTerminated: buffer)
    }

    package static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.bytes.count != rhs.bytes.count { return lhs.bytes.count < rhs.bytes.count }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The address `offset` above this one (wrapping within the address width).
    package func adding(_ offset: UInt64) -> IPAddress {
        var result = bytes
        var carry = offset
        var index = result.count - 1
        while carry > 0 && index >= 0 {
            let sum = UInt64(result[index]) + (carry & 0xff)
            result[index] = UInt8(truncatingIfNeeded: sum)
            carry = (carry >> 8) + (sum >> 8)
            index -= 1
        }
        return IPAddress(bytes: result)!
    }
}

/// An address block (CIDR). The stored address is the network address (host bits cleared).
package struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    package let address: IPAddress
    package let prefixLength: Int

    package init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bytes.count * 8 else { return nil }
        self.address = IPAddress(bytes: IPNetwork.mask(address.bytes, prefixLength))!
        self.prefixLength = prefixLength
    }

    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128).
    package init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        var length = address.bytes.count * 8
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), String(parsed) == parts[1] else { return nil }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    package var family: IPAddress.Family { address.family }

    package var description: String { "\(address)/\(prefixLength)" }

    /// The last address of the block.
    package var last: IPAddress {
        var bytes = address.bytes
        for bit in prefixLength..<(bytes.count * 8) { bytes[bit / 8] |= UInt8(0x80 >> (bit % 8)) }
        return IPAddress(bytes: bytes)!
    }

    package func contains(_ other: IPAddress) -> Bool {
        other.family == family && IPNetwork.mask(other.bytes, prefixLength) == address.bytes
    }

    /// True when this block contains the whole other block.
    package func contains(_ other: IPNetwork) -> Bool {
        other.family == family && other.prefixLength >= prefixLength && contains(other.address)
    }

    package func overlaps(_ other: IPNetwork) -> Bool {
        contains(other) || other.contains(self)
    }

    static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsHere = max(0, min(8, length - index * 8))
            result[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return result
    }
}
