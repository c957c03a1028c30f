import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads the kernel's nftables tables and base chains over netlink (a GETCHAIN dump). Used by `cagent doctor`
/// to prove nftables works, to find another firewall whose forward policy would drop what cagent allows,
/// and to find cagent's own leftover chains.
package enum NetfilterInventory {
    package struct Chain: Sendable, Equatable {
        package var family: UInt8
        package var table: String
        package var name: String
        /// Netfilter hook number when this is a base chain (NF_INET_FORWARD is 2).
        package var hook: UInt32?
        /// Base-chain policy: NF_DROP (0) or NF_ACCEPT (1).
        package var policy: UInt32?
        package var priority: Int32?

        package var familyName: String {
            switch Int(family) {
            case NFPROTO_INET: return "inet"
            case NFPROTO_IPV4: return "ip"
            case NFPROTO_IPV6: return "ip6"
            case NFPROTO_BRIDGE: return "bridge"
            case NFPROTO_ARP: return "arp"
            case NFPROTO_NETDEV: return "netdev"
            default: return "family\(family)"
            }
        }
    }

    /// Every chain in every table of the current network namespace.
    package static func chains() throws -> [Chain] {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw CagentError.system("nftables netlink", "cannot open a netfilter netlink socket",
                                     hint: "cagent needs root (CAP_NET_ADMIN) and a kernel with nf_tables")
        }
        defer { mnl_socket_close(socket) }
        if mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            throw CagentError.system("nftables netlink", "cannot bind the netlink socket")
        }
        let portID = mnl_socket_get_portid(socket)
        var buffer = [UInt8](repeating: 0, count: 65536)
        let sequence = UInt32(truncatingIfNeeded: time(nil))
        let header = buffer.withUnsafeMutableBytes { raw -> UnsafeMutablePointer<nlmsghdr>? in
            nftnl_nlmsg_build_hdr(raw.baseAddress!.assumingMemoryBound(to: CChar.self),
                                  UInt16(NFT_MSG_GETCHAIN.rawValue), UInt16(NFPROTO_UNSPEC),
                                  UInt16(NLM_F_DUMP), sequence)
        }
        guard let header else { throw CagentError(stage: "nftables netlink", "cannot build a dump request") }
        if mnl_socket_sendto(socket, header, Int(header.pointee.nlmsg_len)) < 0 {
            throw CagentError.system("nftables netlink", "cannot send the chain dump request")
        }

        final class Collector { var chains: [Chain] = [] }
        let collector = Collector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        let callback: mnl_cb_t = { message, data in
            guard let message, let data else { return MNL_CB_ERROR }
            let collector = Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue()
            guard let chain = nftnl_chain_alloc() else { return MNL_CB_ERROR }
            defer { nftnl_chain_free(chain) }
            if nftnl_chain_nlmsg_parse(message, chain) < 0 { return MNL_CB_OK }
            func string(_ attribute: nftnl_chain_attr) -> String {
                guard let value = nftnl_chain_get_str(chain, UInt16(attribute.rawValue)) else { return "" }
                return String(cString: value)
            }
            let isBase = nftnl_chain_is_set(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue))
            collector.chains.append(Chain(
                family: UInt8(truncatingIfNeeded: nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_FAMILY.rawValue))),
                table: string(NFTNL_CHAIN_TABLE),
                name: string(NFTNL_CHAIN_NAME),
                hook: isBase ? nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue)) : nil,
                policy: nftnl_chain_is_set(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue))
                    ? nftnl_chain_get_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue)) : nil,
                priority: isBase ? nftnl_chain_get_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue)) : nil))
            return MNL_CB_OK
        }

        while true {
            let received = buffer.withUnsafeMutableBytes { raw in
                mnl_socket_recvfrom(socket, raw.baseAddress, raw.count)
            }
            if received < 0 { throw CagentError.system("nftables netlink", "cannot read the chain dump") }
            if received == 0 { break }
            let result = buffer.withUnsafeBytes { raw in
                mnl_cb_run(raw.baseAddress, received, sequence, portID, callback, context)
            }
            if result < 0 { throw CagentError.system("nftables netlink", "the kernel refused the chain dump") }
            if result == MNL_CB_STOP { break }
        }
        return collector.chains
    }

    /// Base chains on the forward hook, in tables that are not cagent's, whose policy is drop: traffic cagent
    /// allows would still be dropped there (Docker and ufw set such policies).
    package static func foreignForwardDrops(in chains: [Chain], ownTable: String = "cagent") -> [Chain] {
        chains.filter { $0.table != ownTable && $0.hook == UInt32(NF_INET_FORWARD.rawValue) && $0.policy == UInt32(NF_DROP) }
    }
}
