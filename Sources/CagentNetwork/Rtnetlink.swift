import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// rtnetlink requests cagent needs (no `ip` process): veth pairs, addresses, link state, routes, and a route
/// dump. Each call acts in the network namespace the calling thread was in when the socket was opened.
final class Rtnetlink {
    private let socket: NetlinkSocket

    init(stage: String) throws { socket = try NetlinkSocket(NETLINK_ROUTE, stage: stage) }

    /// On a NETLINK_ROUTE socket made elsewhere (rootless mode: in the sandbox's namespace); owned from here.
    init(descriptor: Int32, stage: String) throws { socket = try NetlinkSocket(descriptor: descriptor, stage: stage) }

    private func request(_ type: Int, flags: Int32, _ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws {
        let sequence = socket.sequences(1)
        let message = buildNetlinkMessage { header in
            header.pointee.nlmsg_type = UInt16(type)
            header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK | flags)
            header.pointee.nlmsg_seq = sequence
            fill(header)
        }
        try socket.transact(message, acks: 1)
    }

    private static func putInfo(_ header: UnsafeMutablePointer<nlmsghdr>, index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) {
        let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)!.assumingMemoryBound(to: ifinfomsg.self)
        info.pointee.ifi_family = UInt8(AF_UNSPEC)
        info.pointee.ifi_index = index
        info.pointee.ifi_flags = flags
        info.pointee.ifi_change = change
    }

    /// Creates a veth pair: `hostName` here, `peerName` created directly inside the namespace `peerNetns`.
    func createVeth(hostName: String, peerName: String, peerNetns: Int32) throws {
        try request(RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL) { header in
            Rtnetlink.putInfo(header)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), hostName)
            let linkInfo = mnl_attr_nest_start(header, UInt16(IFLA_LINKINFO))
            mnl_attr_put_strz(header, UInt16(IFLA_INFO_KIND), "veth")
            let data = mnl_attr_nest_start(header, UInt16(IFLA_INFO_DATA))
            let peer = mnl_attr_nest_start(header, 1) // VETH_INFO_PEER: an ifinfomsg followed by attributes
            Rtnetlink.putInfo(header)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), peerName)
            mnl_attr_put_u32(header, UInt16(IFLA_NET_NS_FD), UInt32(bitPattern: peerNetns))
            mnl_attr_nest_end(header, peer)
            mnl_attr_nest_end(header, data)
            mnl_attr_nest_end(header, linkInfo)
        }
    }

    func deleteLink(_ name: String) throws {
        try request(RTM_DELLINK, flags: 0) { header in
            Rtnetlink.putInfo(header)
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
        }
    }

    func setUp(_ name: String) throws {
        try request(RTM_NEWLINK, flags: 0) { header in
            Rtnetlink.putInfo(header, flags: UInt32(IFF_UP), change: UInt32(IFF_UP))
            mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
        }
    }

    /// Adds an address; IPv6 addresses skip duplicate address detection (the link has two ends we own).
    func addAddress(_ address: IPAddress, prefixLength: Int, interface index: UInt32) throws {
        try request(RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL) { header in
            let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifaddrmsg>.size)!.assumingMemoryBound(to: ifaddrmsg.self)
            info.pointee.ifa_family = UInt8(address.family == .v4 ? AF_INET : AF_INET6)
            info.pointee.ifa_prefixlen = UInt8(prefixLength)
            info.pointee.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
            info.pointee.ifa_index = index
            address.bytes.withUnsafeBytes { raw in
                mnl_attr_put(header, UInt16(IFA_LOCAL), raw.count, raw.baseAddress)
                mnl_attr_put(header, UInt16(IFA_ADDRESS), raw.count, raw.baseAddress)
            }
            if address.family == .v6 { mnl_attr_put_u32(header, UInt16(IFA_FLAGS), UInt32(IFA_F_NODAD)) }
        }
    }

    /// Adds a default route through `gateway` on the interface.
    func addDefaultRoute(via gateway: IPAddress, interface index: UInt32) throws {
        try request(RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_EXCL) { header in
            let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<rtmsg>.size)!.assumingMemoryBound(to: rtmsg.self)
            info.pointee.rtm_family = UInt8(gateway.family == .v4 ? AF_INET : AF_INET6)
            info.pointee.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
            info.pointee.rtm_protocol = UInt8(RTPROT_BOOT)
            info.pointee.rtm_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
            info.pointee.rtm_type = UInt8(RTN_UNICAST)
            gateway.bytes.withUnsafeBytes { mnl_attr_put(header, UInt16(RTA_GATEWAY.rawValue), $0.count, $0.baseAddress) }
            mnl_attr_put_u32(header, UInt16(RTA_OIF.rawValue), index)
        }
    }

    struct Route: Sendable, Equatable {
        var destination: IPNetwork
        var outputInterface: UInt32?
        var table: UInt32
        var isDefault: Bool { destination.prefixLength == 0 }
    }

    /// Every route of one family in every table (local routes included: they name the host's own addresses).
    func routes(family: IPAddress.Family) throws -> [Route] {
        let sequence = socket.sequences(1)
        let message = buildNetlinkMessage { header in
            header.pointee.nlmsg_type = UInt16(RTM_GETROUTE)
            header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
            header.pointee.nlmsg_seq = sequence
            let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<rtmsg>.size)!.assumingMemoryBound(to: rtmsg.self)
            info.pointee.rtm_family = UInt8(family == .v4 ? AF_INET : AF_INET6)
        }
        var routes: [Route] = []
        try socket.dump(message) { header in
            guard header.pointee.nlmsg_type == UInt16(RTM_NEWROUTE) else { return }
            let info = mnl_nlmsg_get_payload(header)!.assumingMemoryBound(to: rtmsg.self).pointee
            var destination = [UInt8](repeating: 0, count: family == .v4 ? 4 : 16)
            var oif: UInt32?
            var table = UInt32(info.rtm_table)
            var offset = mnl_nlmsg_get_payload_offset(header, MemoryLayout<rtmsg>.size)!
            let end = UnsafeRawPointer(header) + Int(header.pointee.nlmsg_len)
            while UnsafeRawPointer(offset) < end {
                let attribute = UnsafeMutableRawPointer(mutating: offset).assumingMemoryBound(to: nlattr.self)
                let length = Int(attribute.pointee.nla_len)
                if length < 4 { break }
                let type = Int32(attribute.pointee.nla_type & 0x3fff)
                let value = UnsafeRawPointer(attribute) + 4
                if type == RTA_DST.rawValue, length - 4 == destination.count {
                    destination = Array(UnsafeRawBufferPointer(start: value, count: destination.count))
                } else if type == RTA_OIF.rawValue, length >= 8 {
                    oif = value.loadUnaligned(as: UInt32.self)
                } else if type == RTA_TABLE.rawValue, length >= 8 {
                    table = value.loadUnaligned(as: UInt32.self)
                }
                offset = UnsafeMutableRawPointer(mutating: offset) + ((length + 3) & ~3)
            }
            if let network = IPNetwork(address: IPAddress(bytes: destination)!, prefixLength: Int(info.rtm_dst_len)) {
                routes.append(Route(destination: network, outputInterface: oif, table: table))
            }
        }
        return routes
    }
}

/// The interface index of `name` in the calling thread's network namespace (the ioctl socket is created there).
func interfaceIndex(_ name: String) throws -> UInt32 {
    let index = if_nametoindex(name)
    if index == 0 { throw CagentError.system("interface \(name)", "no such interface") }
    return index
}

func interfaceName(_ index: UInt32) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
    guard if_indextoname(index, &buffer) != nil else { return nil }
    return String(nulTerminated: buffer)
}
