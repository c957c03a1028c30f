#if canImport(Glibc)
import Glibc
#endif
import CPcap
import CShim
import CagentCore
import CagentDNS
import CagentNetwork

/// Learn mode's capture on the session's host-side veth (`cgs<id>`): every DNS message the sandbox sends or
/// receives, over UDP and TCP, to any resolver, and the first data segment of each TLS connection (its
/// ClientHello's SNI). The host side sees packets before the prerouting redirect, so a query sent to another
/// resolver keeps its original destination: that is how DNS that tried to bypass the gate is seen.
///
/// Buffered capture (immediate mode off, snaplen 2048, 100 ms timeout; kernel-notes §4: immediate mode with a
/// large snaplen drops packets), non-blocking and driven by poll on a dedicated thread, which enters
/// `netnsPath` first when given (tests: the netlab's simulated host; the product: nil, the host itself).
// @unchecked: a pcap handle (C) and its stream state, owned by the capture thread; counters read after it drained.
package final class DNSCapture: @unchecked Sendable {
    /// DNS both ways; to port 443, the segments that may hold a ClientHello: one starting with a TLS handshake
    /// record (0x16), or ending a write (PSH: the rest of a hello split over segments, as post-quantum key shares
    /// make it). The IPv6 offsets assume no extension header (what a sandbox sends).
    package static let filter = "udp port 53 or tcp port 53"
        + " or (tcp dst port 443 and (tcp[tcpflags] & tcp-push != 0 or tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16))"
        + " or (ip6 and tcp dst port 443 and (ip6[53] & 8 != 0 or ip6[(40 + ((ip6[52] & 0xf0) >> 2)):1] = 0x16))"

    package let interface: String
    let netnsPath: String?
    let onEvent: @Sendable (CaptureEvent) -> Void
    private let service = ServiceThread(name: "cagent-dns-capture")
    private var state = StreamState()
    /// Packets the kernel handed to the capture and dropped for lack of buffer, read at stop.
    package private(set) var received: UInt32 = 0
    package private(set) var dropped: UInt32 = 0

    package init(interface: String, netnsPath: String? = nil, onEvent: @escaping @Sendable (CaptureEvent) -> Void) {
        self.interface = interface; self.netnsPath = netnsPath; self.onEvent = onEvent
    }

    /// Opens the capture and starts the thread; throws when the interface cannot be captured.
    package func start() throws {
        try service.start(setup: { [self] in try open() }, run: { [self] handle in
            loop(handle)
            var stats = pcap_stat()
            if cg_pcap_stats(handle, &stats) == 0 { received = stats.ps_recv; dropped = stats.ps_drop }
            drained.open()
            cg_pcap_close(handle)
        })
        running = true
    }

    /// Drains what is already buffered, then stops the thread.
    package func stop() {
        service.stop()
        running = false
    }

    /// Drains what is already buffered and stops reading (every event delivered, counters final), without
    /// waiting for the capture socket's close, in which the kernel waits out an RCU grace period (tens of
    /// milliseconds here): the caller can tear down other things meanwhile, then `stop()` waits for the rest.
    package func stopReading() {
        guard running, !readingStopped else { return }
        readingStopped = true
        service.wake()
        drained.wait()
    }

    private let drained = Latch()
    private var running = false
    private var readingStopped = false

    deinit { stop() }

    private func open() throws -> OpaquePointer {
        try PcapSource(device: interface, snaplen: 2048, bufferSize: 4 << 20, filter: Self.filter, stage: "dns capture",
                       activationHint: "capturing needs CAP_NET_RAW on the host and the session's interface up")
            .open(netnsPath: netnsPath)
    }

    private func loop(_ handle: OpaquePointer) {
        PcapSource.pump(handle, wakeFD: service.wakeFD, pollMilliseconds: 100) { header, bytes in
            let frame = Array(UnsafeBufferPointer(start: bytes, count: Int(header.pointee.caplen)))
            let time = Double(header.pointee.ts.tv_sec) + Double(header.pointee.ts.tv_usec) / 1e6
            for event in state.handle(frame: frame, time: time) { onEvent(event) }
        }
    }
}

/// The capture's per-stream state, a pure function of the frames: DNS over UDP, DNS over TCP (2-byte length
/// prefixed messages, reassembled per direction best-effort: in-order segments appended, a gap restarts the
/// stream), and the ClientHello opening each TLS connection (over several segments when it is split). Bounded:
/// at most `maxStreams` streams of each kind (DNS: 64 KiB + 2, hellos: 16 KiB); beyond that the state is
/// forgotten.
package struct StreamState {
    struct Key: Hashable {
        var source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16
    }
    struct Stream { var next: UInt32; var buffer: [UInt8] }

    static let maxStreams = 1024
    var streams: [Key: Stream] = [:]
    var helloSeen: Set<Key> = []
    var hellos: [Key: Stream] = [:]

    package init() {}

    package mutating func handle(frame: [UInt8], time: Double) -> [CaptureEvent] {
        guard let segment = PacketDecoder.ethernet(frame) else { return [] }
        return handle(segment, time: time)
    }

    package mutating func handle(_ s: Segment, time: Double) -> [CaptureEvent] {
        let key = Key(source: s.source, destination: s.destination, sourcePort: s.sourcePort, destinationPort: s.destinationPort)
        if s.proto == 17 {
            guard s.sourcePort == 53 || s.destinationPort == 53, let event = dns(s.payload, s, transport: "udp", time: time) else { return [] }
            return [.dns(event)]
        }
        guard s.proto == 6 else { return [] }
        if s.destinationPort == 443 && s.sourcePort != 53 { return hello(s, key: key, time: time) }
        guard s.sourcePort == 53 || s.destinationPort == 53 else { return [] }
        if s.flags & 0x07 != 0 && s.payload.isEmpty {                          // SYN/FIN/RST without data
            streams[key] = nil
            if s.flags & 0x02 != 0 { streams[key] = Stream(next: s.sequence &+ 1, buffer: []) }
            return []
        }
        guard !s.payload.isEmpty else { return [] }
        var stream = streams[key] ?? Stream(next: s.sequence, buffer: [])
        if s.sequence == stream.next {
            stream.buffer += s.payload
        } else if Int32(bitPattern: s.sequence &- stream.next) < 0 {
            return []                                                            // a retransmission
        } else {
            stream.buffer = s.payload                                            // a gap: resynchronise here
        }
        stream.next = s.sequence &+ UInt32(s.payload.count)
        var events: [CaptureEvent] = []
        while stream.buffer.count >= 2 {
            let length = Int(stream.buffer[0]) << 8 | Int(stream.buffer[1])
            guard stream.buffer.count >= 2 + length else { break }
            if let event = dns(Array(stream.buffer[2..<(2 + length)]), s, transport: "tcp", time: time) { events.append(.dns(event)) }
            stream.buffer.removeFirst(2 + length)
        }
        if streams.count >= Self.maxStreams && streams[key] == nil { streams.removeAll() }
        streams[key] = s.flags & 0x05 != 0 ? nil : stream
        return events
    }

    /// The ClientHello at the start of a TLS connection, reassembled over in-order segments up to the end of its
    /// record (at most 16 KiB); one per connection.
    mutating func hello(_ s: Segment, key: Key, time: Double) -> [CaptureEvent] {
        if s.flags & 0x05 != 0 {                                                 // FIN/RST: the ports may be reused
            helloSeen.remove(key); hellos[key] = nil
            return []
        }
        guard !s.payload.isEmpty, !helloSeen.contains(key) else { return [] }
        var pending: Stream
        if let started = hellos[key] {
            guard s.sequence == started.next else {
                if Int32(bitPattern: s.sequence &- started.next) < 0 { return [] }  // a retransmission
                finishHello(key)                                                  // a gap: give up on this one
                return []
            }
            pending = Stream(next: started.next &+ UInt32(s.payload.count), buffer: started.buffer + s.payload)
        } else {
            guard s.payload.first == 0x16 else { finishHello(key); return [] }   // not TLS (or joined mid-stream)
            pending = Stream(next: s.sequence &+ UInt32(s.payload.count), buffer: s.payload)
        }
        let name = TLSClientHello.serverName(pending.buffer)
        let recordEnd = pending.buffer.count >= 5 ? 5 + (Int(pending.buffer[3]) << 8 | Int(pending.buffer[4])) : Int.max
        guard name != nil || pending.buffer.count >= min(recordEnd, 16 * 1024) else {
            if hellos.count >= Self.maxStreams && hellos[key] == nil { hellos.removeAll() }
            hellos[key] = pending
            return []
        }
        finishHello(key)
        guard let name else { return [] }
        return [.tls(ServerNameSeen(time: time, client: s.source, destination: s.destination, port: s.destinationPort, serverName: name))]
    }

    mutating func finishHello(_ key: Key) {
        hellos[key] = nil
        if helloSeen.count >= Self.maxStreams { helloSeen.removeAll() }
        helloSeen.insert(key)
    }

    func dns(_ bytes: [UInt8], _ s: Segment, transport: String, time: Double) -> DNSMessageSeen? {
        guard let message = try? DNSWire.parse(bytes), let question = message.questions.first else { return nil }
        let response = message.isResponse
        return DNSMessageSeen(source: .pcap, time: time, isResponse: response, transport: transport,
                              client: response ? s.destination : s.source,
                              resolver: response ? s.source : s.destination,
                              resolverPort: response ? s.sourcePort : s.destinationPort,
                              name: question.name.lowercased().display, type: question.type,
                              rcode: response ? message.rcode : nil,
                              answers: response ? message.answers.map(DNSMessageSeen.answer) : [])
    }
}
