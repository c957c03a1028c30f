#if canImport(Glibc)
import Glibc
#endif
import CPcap
import CShim
import CagentCore
import CagentDNS
import CagentNetwork

/// Reads `nflog:GROUP` through libpcap on a dedicated thread. The thread enters the session's network
/// namespace (when given) before pcap_activate, since an nflog group belongs to a netns; non-blocking
/// pcap with poll, because a blocking pcap_dispatch may never return while nothing arrives.
package final class NflogReader: Sendable {
    package let group: UInt16
    let netnsPath: String?
    let onPacket: @Sendable (DeniedPacket) -> Void
    private let service = ServiceThread(name: "cagent-nflog")

    package init(group: UInt16, netnsPath: String? = nil, onPacket: @escaping @Sendable (DeniedPacket) -> Void) {
        self.group = group; self.netnsPath = netnsPath; self.onPacket = onPacket
    }

    /// Opens the capture; throws when the group cannot be read (another reader holds it, no permission).
    package func start() throws {
        try service.start(setup: { [self] in try open() }, run: { [self] handle in
            loop(handle)
            cg_pcap_close(handle)
        })
    }

    /// Drains what is already queued, then stops the thread.
    package func stop() { service.stop() }

    deinit { stop() }

    private func open() throws -> OpaquePointer {
        // libpcap sizes its nflog receive buffer from the snaplen (snaplen + 128 bytes). The kernel batches
        // records (up to a page, or one second) unless the rule sets a queue threshold, and a batch cut short by
        // a small buffer made libpcap hand out a record running past its buffer (seen in learn mode, where
        // every new flow is logged). 65535 holds any batch and any single record.
        try PcapSource(device: "nflog:\(group)", snaplen: 65535, bufferSize: 2 << 20, filter: nil, stage: "nflog",
                       activationHint: "only one reader per nflog group and netns; is another cagent or tcpdump reading it?")
            .open(netnsPath: netnsPath)
    }

    private func loop(_ handle: OpaquePointer) {
        PcapSource.pump(handle, wakeFD: service.wakeFD, pollMilliseconds: 200) { header, bytes in
            let frame = Array(UnsafeBufferPointer(start: bytes, count: Int(min(header.pointee.caplen, 65535 + 256))))
            if let packet = NflogFrame.parse(frame) { onPacket(packet) }
        }
    }
}
