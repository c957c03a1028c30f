import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads one nflog group — the firewall's log rules: denied packets in enforce mode, new flows in learn mode —
/// on a thread of its own, straight from its nfnetlink_log socket (cg_nflog.h says why not libpcap), and hands
/// each record to `onPacket`. `netnsPath`: the namespace whose group it is (tests); nil: the calling thread's.
/// `descriptor`: a NETLINK_NETFILTER socket made in the group's namespace already (rootless mode: a plain user
/// cannot enter the sandbox's namespace, cg_netns_sockets makes it there), owned by the reader from `init`.
package final class NflogReader: Sendable {
    package let group: UInt16
    let netnsPath: String?
    private let descriptor: Int32?
    let onPacket: @Sendable (DeniedPacket) -> Void
    private let service = ServiceThread(name: "cagent-nflog")

    /// Each record copies this much of its packet: the IP header and the ports are all that is read.
    static let copyRange: UInt32 = 256
    /// The socket's receive buffer: a burst of records (learn logs every new flow) waits here for the loop.
    static let receiveBuffer: Int32 = 2 << 20

    package init(group: UInt16, netnsPath: String? = nil, descriptor: Int32? = nil,
                 onPacket: @escaping @Sendable (DeniedPacket) -> Void) {
        self.group = group; self.netnsPath = netnsPath; self.descriptor = descriptor; self.onPacket = onPacket
    }

    /// Opens the group's socket; throws when the group cannot be read (another reader holds it, no permission).
    package func start() throws {
        try service.start(setup: { [self] in try open() }, run: { [self] fd in
            loop(fd)
            close(fd)
        })
    }

    /// Drains what is already queued, then stops the thread.
    package func stop() { service.stop() }

    deinit { stop() }

    private func open() throws -> Int32 {
        let hint = "only one reader per nflog group and netns; is another cagent or tcpdump reading it?"
        if let descriptor {
            let result = cg_nflog_bind(descriptor, group, Self.copyRange, Self.receiveBuffer)
            guard result == 0 else {
                close(descriptor)
                throw CagentError(stage: "nflog", "cannot read nflog group \(group) in the sandbox's namespace", errno: -result, hint: hint)
            }
            return descriptor
        }
        if let netnsPath { try NamespaceThread.enter(netnsPath: netnsPath, stage: "nflog") }
        let fd = cg_nflog_open(group, Self.copyRange, Self.receiveBuffer)
        guard fd >= 0 else { throw CagentError(stage: "nflog", "cannot read nflog group \(group)", errno: -fd, hint: hint) }
        return fd
    }

    /// Until the stop pipe is readable: every datagram's messages, each packet record to `onPacket`; then a last
    /// drain of what is queued.
    private func loop(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var fds = [pollfd(fd: service.wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, 200)
            if rc < 0 && errno != EINTR { return }
            drain(fd, &buffer)
            if fds[0].revents != 0 { return }
        }
    }

    private func drain(_ fd: Int32, _ buffer: inout [UInt8]) {
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                // ENOBUFS: the kernel dropped records the loop was too slow for; the socket goes on.
                if errno == EINTR || errno == ENOBUFS { continue }
                return   // EAGAIN: nothing queued
            }
            if count == 0 { return }
            for record in NflogMessages.records(in: buffer[0..<count]) {
                if let packet = NflogFrame.parse(record) { onPacket(packet) }
            }
        }
    }
}

/// The packet records of one nfnetlink datagram: each NFULNL_MSG_PACKET message's payload (its nfgenmsg
/// header, then the TLVs NflogFrame reads — the layout libpcap's DLT_NFLOG frames have too).
package enum NflogMessages {
    package static func records(in datagram: ArraySlice<UInt8>) -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = datagram.startIndex
        while offset + 16 <= datagram.endIndex {
            // nlmsghdr: u32 length, u16 type, in host byte order.
            let (length, type) = datagram.withUnsafeBytes { raw -> (Int, UInt16) in
                let at = offset - datagram.startIndex
                return (Int(raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)),
                        raw.loadUnaligned(fromByteOffset: at + 4, as: UInt16.self))
            }
            guard length >= 16, offset + length <= datagram.endIndex else { break }
            if type == CG_NFLOG_PACKET_MESSAGE { records.append(Array(datagram[(offset + 16)..<(offset + length)])) }
            offset += (length + 3) & ~3
        }
        return records
    }
}
