import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Small netlink operations shared by setup and clean-up: delete an interface, delete cagent's nft table.
package enum NetlinkControl {
    /// Deletes a network interface by name (RTM_DELLINK). Deleting one end of a veth removes both.
    package static func deleteLink(named name: String) throws {
        try withSocket(NETLINK_ROUTE, stage: "delete interface \(name)") { socket, sequence in
            var buffer = [UInt8](repeating: 0, count: 4096)
            let length: Int = buffer.withUnsafeMutableBytes { raw in
                let header = mnl_nlmsg_put_header(raw.baseAddress)!
                header.pointee.nlmsg_type = UInt16(RTM_DELLINK)
                header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK)
                header.pointee.nlmsg_seq = sequence
                let info = mnl_nlmsg_put_extra_header(header, MemoryLayout<ifinfomsg>.size)!
                    .assumingMemoryBound(to: ifinfomsg.self)
                info.pointee.ifi_family = UInt8(AF_UNSPEC)
                mnl_attr_put_strz(header, UInt16(IFLA_IFNAME), name)
                return Int(header.pointee.nlmsg_len)
            }
            return Array(buffer[0..<length])
        }
    }

    /// Deletes a whole nftables table (family inet by default) in one batch.
    package static func deleteTable(named name: String, family: Int32 = Int32(NFPROTO_INET)) throws {
        try withSocket(NETLINK_NETFILTER, stage: "delete nft table \(name)") { _, sequence in
            guard let table = nftnl_table_alloc() else { throw CagentError(stage: "nft", "out of memory") }
            defer { nftnl_table_free(table) }
            nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), name)
            var buffer = [UInt8](repeating: 0, count: 8192)
            let length = buffer.withUnsafeMutableBytes { raw -> Int in
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                // A batch: BEGIN, DELTABLE (acknowledged), END — applied atomically by the kernel.
                var offset = Int(nftnl_batch_begin(base, sequence).pointee.nlmsg_len)
                let header = nftnl_nlmsg_build_hdr(base + offset, UInt16(NFT_MSG_DELTABLE.rawValue),
                                                   UInt16(family), UInt16(NLM_F_ACK), sequence + 1)!
                nftnl_table_nlmsg_build_payload(header, table)
                offset += Int(header.pointee.nlmsg_len)
                offset += Int(nftnl_batch_end(base + offset, sequence + 2).pointee.nlmsg_len)
                return offset
            }
            return Array(buffer[0..<length])
        }
    }

    /// Opens a netlink socket, sends one message (or batch), and waits for the kernel's acknowledgement.
    private static func withSocket(_ bus: Int32, stage: String,
                                   build: (OpaquePointer, UInt32) throws -> [UInt8]) throws {
        guard let socket = mnl_socket_open(bus) else { throw CagentError.system(stage, "cannot open netlink") }
        defer { mnl_socket_close(socket) }
        if mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            throw CagentError.system(stage, "cannot bind netlink")
        }
        let sequence = UInt32(truncatingIfNeeded: time(nil)) &* 4
        let message = try build(socket, sequence)
        if message.withUnsafeBytes({ mnl_socket_sendto(socket, $0.baseAddress, $0.count) }) < 0 {
            throw CagentError.system(stage, "cannot send to netlink")
        }
        // Read acknowledgements until the last message's (or an error) arrives.
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let received = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if received <= 0 { throw CagentError.system(stage, "no answer from netlink") }
            var remaining = Int32(received)
            var done = false
            try buffer.withUnsafeBytes { raw in
                var header: UnsafePointer<nlmsghdr>? = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                while let current = header, mnl_nlmsg_ok(current, remaining) {
                    if current.pointee.nlmsg_type == UInt16(NLMSG_ERROR) {
                        let payload = mnl_nlmsg_get_payload(current)!.assumingMemoryBound(to: nlmsgerr.self)
                        if payload.pointee.error != 0 {
                            throw CagentError(stage: stage, "the kernel refused", errno: -payload.pointee.error)
                        }
                        done = true
                    }
                    header = UnsafePointer(mnl_nlmsg_next(current, &remaining))
                }
            }
            if done { return }
        }
    }
}
