import CPcap
import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Opens a libpcap handle the way every capture of cagent needs it: on the calling thread's own network
/// namespace or another one (setns on this thread only: callers run it on their capture thread), buffered
/// with a short timeout (immediate mode with a large snaplen drops packets on this kernel: see
/// kernel-notes §4), non-blocking for a poll loop, with an optional filter.
struct PcapSource {
    var device: String
    var snaplen: Int32
    var bufferSize: Int32
    var filter: String?
    /// The stage named in errors ("dns capture", "nflog").
    var stage: String
    var activationHint: String

    func open(netnsPath: String?) throws -> OpaquePointer {
        if let netnsPath { try NamespaceThread.enter(netnsPath: netnsPath, stage: stage) }
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = cg_pcap_create(device, &errorBuffer) else {
            throw CagentError(stage: stage, "pcap_create \(device): \(Self.text(errorBuffer))")
        }
        func fail(_ what: String, hint: String? = nil) -> CagentError {
            let message = String(cString: cg_pcap_geterr(handle))
            cg_pcap_close(handle)
            return CagentError(stage: stage, "\(what) on \(device): \(message)", hint: hint)
        }
        cg_pcap_set_snaplen(handle, snaplen)
        cg_pcap_set_promisc(handle, 0)
        cg_pcap_set_immediate_mode(handle, 0)
        cg_pcap_set_timeout(handle, 100)
        cg_pcap_set_buffer_size(handle, bufferSize)
        guard cg_pcap_activate(handle) >= 0 else { throw fail("pcap_activate", hint: activationHint) }
        if let filter {
            guard cg_pcap_datalink(handle) == DLT_EN10MB else {
                cg_pcap_close(handle)
                throw CagentError(stage: stage, "\(device) is not an Ethernet-like interface")
            }
            var program = bpf_program()
            guard cg_pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else { throw fail("pcap_compile") }
            defer { cg_pcap_freecode(&program) }
            guard cg_pcap_setfilter(handle, &program) == 0 else { throw fail("pcap_setfilter") }
        }
        guard cg_pcap_setnonblock(handle, 1, &errorBuffer) == 0 else {
            cg_pcap_close(handle)
            throw CagentError(stage: stage, "pcap_setnonblock: \(Self.text(errorBuffer))")
        }
        return handle
    }

    static func text(_ buffer: [CChar]) -> String {
        String(nulTerminated: buffer)
    }

    /// Hands every captured frame to `onFrame` until `wakeFD` (the capture thread's stop pipe) is readable, then
    /// returns after a last dispatch. Non-blocking pcap driven by poll, because a blocking pcap_dispatch may never
    /// return while nothing arrives; every round dispatches, also on a timeout: buffered TPACKET_V3 blocks may be
    /// ready without a poll wake-up.
    static func pump(_ handle: OpaquePointer, wakeFD: Int32, pollMilliseconds: Int32,
                     onFrame: (UnsafePointer<pcap_pkthdr>, UnsafePointer<UInt8>) -> Void) {
        withoutActuallyEscaping(onFrame) { onFrame in
            var handler = FrameHandler(onFrame: onFrame)
            withUnsafeMutablePointer(to: &handler) { context in
                let callback: pcap_handler = { user, header, bytes in
                    guard let user, let header, let bytes else { return }
                    UnsafeMutableRawPointer(user).assumingMemoryBound(to: FrameHandler.self).pointee.onFrame(header, bytes)
                }
                let fd = cg_pcap_get_selectable_fd(handle)
                let user = UnsafeMutableRawPointer(context).assumingMemoryBound(to: UInt8.self)
                while true {
                    var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
                    let rc = poll(&fds, 2, pollMilliseconds)
                    if rc < 0 && errno != EINTR { return }
                    while cg_pcap_dispatch(handle, 64, callback, user) > 0 {}
                    if fds[0].revents != 0 { return }
                }
            }
        }
    }

    private struct FrameHandler {
        let onFrame: (UnsafePointer<pcap_pkthdr>, UnsafePointer<UInt8>) -> Void
    }
}
