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
}
