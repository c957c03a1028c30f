import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// One netlink socket (rtnetlink or nfnetlink) bound in the calling thread's network namespace at the time it
/// is opened; it stays bound there after the thread leaves (setns is per thread, the socket is not).
final class NetlinkSocket {
    let stage: String
    private let socket: OpaquePointer
    private let portID: UInt32
    private var nextSequence: UInt32

    convenience init(_ bus: Int32, stage: String) throws {
        guard let socket = mnl_socket_open(bus) else {
            throw CagentError.system(stage, "cannot open a netlink socket",
                                     hint: "cagent needs root (CAP_NET_ADMIN)")
        }
        try self.init(socket: socket, stage: stage)
    }

    /// Rootless mode: a netlink socket created in another namespace (cg_netns_sockets); this object owns it.
    convenience init(descriptor: Int32, stage: String) throws {
        guard let socket = mnl_socket_fdopen(descriptor) else {
            Glibc.close(descriptor)
            throw CagentError.system(stage, "cannot adopt a netlink socket")
        }
        try self.init(socket: socket, stage: stage)
    }

    private init(socket: OpaquePointer, stage: String) throws {
        self.stage = stage
        if mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            mnl_socket_close(socket)
            throw CagentError.system(stage, "cannot bind a netlink socket")
        }
        // Large batches (thousands of set elements) exceed the default socket buffers (kernel-notes §3).
        var size: Int32 = 16 << 20
        let fd = mnl_socket_get_fd(socket)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        // Extended ACKs carry the kernel's reason for a refusal.
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
        self.nextSequence = UInt32(truncatingIfNeeded: time(nil)) &* 8
    }

    deinit { mnl_socket_close(socket) }

    /// Reserves `count` consecutive sequence numbers.
    func sequences(_ count: Int) -> UInt32 {
        let first = nextSequence
        nextSequence &+= UInt32(count)
        return first
    }

    /// Sends a message or a batch and waits for `acks` acknowledgements; the first refusal throws.
    func transact(_ message: [UInt8], acks: Int, meaning: [UInt32: String] = [:]) throws {
        try send(message)
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while received < acks {
            let count = try receive(&buffer)
            try buffer.withUnsafeBytes { raw in
                var remaining = Int32(count)
                var header: UnsafePointer<nlmsghdr>? = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                while let current = header, mnl_nlmsg_ok(current, remaining) {
                    if current.pointee.nlmsg_type == UInt16(NLMSG_ERROR) {
                        let payload = mnl_nlmsg_get_payload(current)!.assumingMemoryBound(to: nlmsgerr.self)
                        if payload.pointee.error != 0 {
                            let what = meaning[payload.pointee.msg.nlmsg_seq].map { ": `\($0)`" } ?? ""
                            throw CagentError(stage: stage, "the kernel refused the change" + what, errno: -payload.pointee.error)
                        }
                        received += 1
                    }
                    header = UnsafePointer(mnl_nlmsg_next(current, &remaining))
                }
            }
        }
    }

    /// Sends a dump request and hands every answer message (until NLMSG_DONE) to `each`.
    func dump(_ message: [UInt8], _ each: (UnsafePointer<nlmsghdr>) -> Void) throws {
        try send(message)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try receive(&buffer)
            var done = false
            try buffer.withUnsafeBytes { raw in
                var remaining = Int32(count)
                var header: UnsafePointer<nlmsghdr>? = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                while let current = header, mnl_nlmsg_ok(current, remaining) {
                    switch Int32(current.pointee.nlmsg_type) {
                    case NLMSG_DONE: done = true
                    case NLMSG_ERROR:
                        let payload = mnl_nlmsg_get_payload(current)!.assumingMemoryBound(to: nlmsgerr.self)
                        if payload.pointee.error != 0 {
                            throw CagentError(stage: stage, "the kernel refused the dump", errno: -payload.pointee.error)
                        }
                        done = true
                    default: each(current)
                    }
                    header = UnsafePointer(mnl_nlmsg_next(current, &remaining))
                }
            }
            if done { return }
        }
    }

    private func send(_ message: [UInt8]) throws {
        let sent = message.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        if sent < 0 { throw CagentError.system(stage, "cannot send to netlink") }
    }

    private func receive(_ buffer: inout [UInt8]) throws -> Int {
        while true {
            let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { throw CagentError.system(stage, "no answer from netlink") }
            return count
        }
    }
}

/// Builds one netlink message in a scratch buffer with libmnl and returns its bytes.
func buildNetlinkMessage(capacity: Int = 8192, _ fill: (UnsafeMutablePointer<nlmsghdr>) throws -> Void) rethrows -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: capacity)
    let length: Int = try buffer.withUnsafeMutableBytes { raw in
        let header = mnl_nlmsg_put_header(raw.baseAddress)!
        try fill(header)
        return Int(header.pointee.nlmsg_len)
    }
    return Array(buffer[0..<length])
}
