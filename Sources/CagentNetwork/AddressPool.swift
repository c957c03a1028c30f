import CagentCore

/// The addresses of one session's link: a /30 (IPv4) and a /64 (IPv6); the host side holds the first usable
/// address (the gateway, where the DNS gate listens), the sandbox the second.
package struct SessionAddresses: Sendable, Equatable {
    package var slot: Int
    package var network4: IPNetwork?
    package var network6: IPNetwork?

    package var gateway4: IPAddress? { network4.map { $0.address.adding(1) } }
    package var sandbox4: IPAddress? { network4.map { $0.address.adding(2) } }
    package var gateway6: IPAddress? { network6.map { $0.address.adding(1) } }
    package var sandbox6: IPAddress? { network6.map { $0.address.adding(2) } }
}

/// Where session links take their addresses from. Slot N is the Nth /30 of the IPv4 pool and the Nth /64 of
/// the IPv6 pool. A slot is free when no live session holds it and neither of its blocks overlaps a route or
/// address the host already has (so a session never shadows a real network, and sessions never collide:
/// each live session's link routes are themselves host routes).
package struct AddressPool: Sendable, Equatable {
    package var pool4: IPNetwork
    package var pool6: IPNetwork
    package var prefix4: Int
    package var prefix6: Int

    /// Defaults chosen away from this project's machines and test ranges: 100.72.0.0/16 is carrier-grade NAT
    /// space rarely routed on a host, fd63:6167:656e::/48 is a ULA prefix (its bytes spell "cagen").
    package static let standard = AddressPool(pool4: IPNetwork("100.72.0.0/16")!, pool6: IPNetwork("fd63:6167:656e::/48")!)

    /// Ranges the default pool must never hand out even if a host lacks a route for them: documentation and
    /// benchmark ranges used by the test network, and cloud metadata.
    package static let reserved: [IPNetwork] = ["198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24",
                                               "169.254.0.0/16", "100.100.100.200/32", "2001:db8::/32", "fe80::/10",
                                               "fd00::/64", "fd00:ec2::/64"].map { IPNetwork($0)! }

    package init(pool4: IPNetwork, pool6: IPNetwork, prefix4: Int = 30, prefix6: Int = 64) {
        self.pool4 = pool4; self.pool6 = pool6; self.prefix4 = prefix4; self.prefix6 = prefix6
    }

    /// Parses `--pool4 100.72.0.0/16 --pool6 fd63:...::/48` style configuration.
    package init(pool4 text4: String?, pool6 text6: String?) throws {
        var pool = AddressPool.standard
        if let text4 {
            guard let network = IPNetwork(text4), network.family == .v4, network.prefixLength <= 30 else {
                throw CagentError(stage: "address pool", "\(text4) is not an IPv4 block of /30 or wider")
            }
            pool.pool4 = network
        }
        if let text6 {
            guard let network = IPNetwork(text6), network.family == .v6, network.prefixLength <= 64 else {
                throw CagentError(stage: "address pool", "\(text6) is not an IPv6 block of /64 or wider")
            }
            pool.pool6 = network
        }
        self = pool
    }

    package var slotCount: Int {
        let bits4 = prefix4 - pool4.prefixLength
        let bits6 = prefix6 - pool6.prefixLength
        return 1 << min(bits4, bits6, 20)
    }

    package func addresses(slot: Int, ipv4: Bool = true, ipv6: Bool = true) -> SessionAddresses {
        let network4 = IPNetwork(address: pool4.address.adding(UInt64(slot) << UInt64(32 - prefix4)), prefixLength: prefix4)!
        // The slot goes into the bits just above the /64 boundary: shift within the upper 64 bits.
        var bytes = pool6.address.bytes
        var carry = UInt64(slot) << UInt64(64 - prefix6)
        var index = 7
        while carry > 0 && index >= 0 {
            let sum = UInt64(bytes[index]) + (carry & 0xff)
            bytes[index] = UInt8(truncatingIfNeeded: sum)
            carry = (carry >> 8) + (sum >> 8)
            index -= 1
        }
        let network6 = IPNetwork(address: IPAddress(bytes: bytes)!, prefixLength: prefix6)!
        return SessionAddresses(slot: slot, network4: ipv4 ? network4 : nil, network6: ipv6 ? network6 : nil)
    }

    /// The first slot that is not taken and whose blocks overlap none of `occupied` (host routes and
    /// addresses, without default routes) nor the reserved ranges.
    package func firstFree(taken: Set<Int>, occupied: [IPNetwork]) throws -> Int {
        let blocked = occupied.filter { $0.prefixLength > 0 } + AddressPool.reserved
        for slot in 0..<slotCount where !taken.contains(slot) {
            let candidate = addresses(slot: slot)
            if blocked.contains(where: { $0.overlaps(candidate.network4!) || $0.overlaps(candidate.network6!) }) { continue }
            return slot
        }
        throw CagentError(stage: "address pool", "no free address block in \(pool4) / \(pool6)",
                          hint: "end other sessions, run `cagent doctor --clean`, or configure a wider pool")
    }
}
