#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CPcap
import CShim
import CagentCore
import CagentDNS
import CagentNetwork

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
