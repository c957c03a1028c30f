#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CPcap
import CShim
import CagentCore
import CagentDNS

/// One packet the firewall denied, as read from its NFLOG record.
public struct DeniedPacket: Sendable, Equatable {
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    public var proto: UInt8
    public var destination: IPAddress
    /// Destination port for TCP and UDP, else nil.
    public var port: UInt16?
    /// The log rule's prefix (NFULA_PREFIX), without its NUL.
    public var prefix: [UInt8]

    public init(proto: UInt8, destination: IPAddress, port: UInt16?, prefix: [UInt8] = []) {
        self.proto = proto; self.destination = destination; self.port = port; self.prefix = prefix
    }

    public var protoName: String {
        switch proto {
        case 6: return "tcp"
        case 17: return "udp"
        case 1: return "icmp"
        case 58: return "icmpv6"
        default: return "proto \(proto)"
        }
    }
}

/// Decodes DLT_NFLOG frames: a 4-byte nflog header, then TLVs `{u16 length, u16 type}` in host byte order,
/// each padded to 4 bytes; NFULA_PAYLOAD (9) holds the IP packet, NFULA_PREFIX (10) the rule's prefix.
public enum NflogFrame {
    static let payload: UInt16 = 9
    static let prefixType: UInt16 = 10

    public static func parse(_ frame: [UInt8]) -> DeniedPacket? {
        guard frame.count >= 4 else { return nil }
        var offset = 4
        var packet: [UInt8]?
        var prefix: [UInt8] = []
        while offset + 4 <= frame.count {
            let length = Int(UInt16(frame[offset]) | UInt16(frame[offset + 1]) << 8)
            let type = UInt16(frame[offset + 2]) | UInt16(frame[offset + 3]) << 8
            guard length >= 4, offset + length <= frame.count else { break }
            let value = Array(frame[(offset + 4)..<(offset + length)])
            switch type & 0x7FFF {
            case payload: packet = value
            case prefixType: prefix = Array(value.prefix { $0 != 0 })
            default: break
            }
            offset += (length + 3) & ~3
        }
        guard let packet, var denied = ip(packet) else { return nil }
        denied.prefix = prefix
        return denied
    }

    /// Protocol, destination and port of an IPv4 or IPv6 packet (IPv6 extension headers are not walked:
    /// the port is then nil, the address still reported).
    public static func ip(_ p: [UInt8]) -> DeniedPacket? {
        guard let first = p.first else { return nil }
        switch first >> 4 {
        case 4:
            let headerLength = Int(first & 0x0F) * 4
            guard headerLength >= 20, p.count >= 20, let destination = IPAddress(bytes: Array(p[16..<20])) else { return nil }
            let proto = p[9]
            return DeniedPacket(proto: proto, destination: destination, port: port(p, at: headerLength, proto: proto))
        case 6:
            guard p.count >= 40, let destination = IPAddress(bytes: Array(p[24..<40])) else { return nil }
            let proto = p[6]
            return DeniedPacket(proto: proto, destination: destination, port: port(p, at: 40, proto: proto))
        default:
            return nil
        }
    }

    static func port(_ p: [UInt8], at offset: Int, proto: UInt8) -> UInt16? {
        guard proto == 6 || proto == 17, p.count >= offset + 4 else { return nil }
        return UInt16(p[offset + 2]) << 8 | UInt16(p[offset + 3])
    }
}

/// Reads `nflog:GROUP` through libpcap on a dedicated thread. The thread enters the session's network
/// namespace (when given) before pcap_activate, since an nflog group belongs to a netns; non-blocking
/// pcap with poll, because a blocking pcap_dispatch may never return while nothing arrives.
public final class NflogReader: @unchecked Sendable {
    public let group: UInt16
    let netnsPath: String?
    let onPacket: @Sendable (DeniedPacket) -> Void
    private var thread: Thread?
    private var wakePipe: [Int32] = [-1, -1]
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var startError: CagentError?

    public init(group: UInt16, netnsPath: String? = nil, onPacket: @escaping @Sendable (DeniedPacket) -> Void) {
        self.group = group; self.netnsPath = netnsPath; self.onPacket = onPacket
    }

    /// Opens the capture; throws when the group cannot be read (another reader holds it, no permission).
    public func start() throws {
        guard pipe(&wakePipe) == 0 else { throw CagentError.system("nflog", "pipe") }
        let thread = Thread { [self] in
            let handle: OpaquePointer
            do {
                handle = try open()
            } catch {
                startError = error as? CagentError ?? CagentError(stage: "nflog", "\(error)")
                started.signal(); finished.signal()
                return
            }
            started.signal()
            loop(handle)
            pcap_close(handle)
            finished.signal()
        }
        thread.name = "cagent-nflog"
        self.thread = thread
        thread.start()
        started.wait()
        if let startError {
            Glibc.close(wakePipe[0]); Glibc.close(wakePipe[1])
            thread_done()
            throw startError
        }
    }

    private func thread_done() { thread = nil }

    /// Drains what is already queued, then stops the thread.
    public func stop() {
        guard thread != nil else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe[1], &byte, 1)
        finished.wait()
        thread = nil
        Glibc.close(wakePipe[0]); Glibc.close(wakePipe[1])
    }

    deinit { stop() }

    private func open() throws -> OpaquePointer {
        if let netnsPath {
            let fd = Glibc.open(netnsPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CagentError.system("nflog: enter netns", "open \(netnsPath)") }
            defer { Glibc.close(fd) }
            guard cg_setns(fd, CG_CLONE_NEWNET) == 0 else { throw CagentError.system("nflog: enter netns", "setns \(netnsPath)") }
        }
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create("nflog:\(group)", &errorBuffer) else {
            throw CagentError(stage: "nflog", "pcap_create nflog:\(group): \(text(errorBuffer))")
        }
        pcap_set_snaplen(handle, 512)
        pcap_set_timeout(handle, 100)
        pcap_set_buffer_size(handle, 2 << 20)
        let rc = pcap_activate(handle)
        if rc < 0 {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw CagentError(stage: "nflog", "pcap_activate nflog:\(group): \(message)",
                              hint: "only one reader per nflog group and netns; is another cagent or tcpdump reading it?")
        }
        guard pcap_setnonblock(handle, 1, &errorBuffer) == 0 else {
            pcap_close(handle)
            throw CagentError(stage: "nflog", "pcap_setnonblock: \(text(errorBuffer))")
        }
        return handle
    }

    private func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func loop(_ handle: OpaquePointer) {
        let fd = pcap_get_selectable_fd(handle)
        let context = Unmanaged.passUnretained(self).toOpaque()
        let callback: pcap_handler = { user, header, bytes in
            guard let user, let header, let bytes else { return }
            let reader = Unmanaged<NflogReader>.fromOpaque(UnsafeRawPointer(user)).takeUnretainedValue()
            let frame = Array(UnsafeBufferPointer(start: bytes, count: Int(header.pointee.caplen)))
            if let packet = NflogFrame.parse(frame) { reader.onPacket(packet) }
        }
        while true {
            var fds = [pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, 200)
            if rc < 0 && errno != EINTR { return }
            // Always dispatch (also on timeout): TPACKET_V3 blocks may be ready without a poll wake-up.
            while pcap_dispatch(handle, 64, callback, context.assumingMemoryBound(to: UInt8.self)) > 0 {}
            if fds[0].revents != 0 { return }
        }
    }
}
