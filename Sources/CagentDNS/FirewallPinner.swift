import CagentNetwork

/// The session's firewall is the gate's pinner: `SessionFirewall.pin(_:ports:ttl:)` adds
/// `address . proto . port` with a timeout in one acknowledged batch and keeps max(remaining, new), which
/// is exactly the AddressPinner contract. Its netlink socket is bound in the host namespace at setup, so
/// the gate thread may call it whatever namespace it sits in.
extension SessionFirewall: AddressPinner {
    package func pin(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        try pin(address, ports: ports.map(\.firewallPort), ttl: ttl)
    }

    package func refresh(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        try pin(address, ports: ports.map(\.firewallPort), ttl: ttl)
    }
}

extension PinPort {
    var firewallPort: (AllowProto, UInt16) { (proto == .tcp ? .tcp : .udp, port) }
}
