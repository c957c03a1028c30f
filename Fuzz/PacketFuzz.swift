// libFuzzer target "packet": bytes as a frame the capture reads from the session's veth (libpcap, DLT_EN10MB)
// and as a bare IP packet: Ethernet (one 802.1Q tag), IPv4/IPv6, UDP/TCP, then the TLS ClientHello reader on
// the payload. Decoding must never trap; a segment's payload lies inside the input, its addresses are 4 or 16
// bytes of the same family, its protocol TCP or UDP. Built by scripts/fuzz.sh.

private func checked(_ segment: Segment?, within size: Int) {
    guard let segment else { return }
    precondition(segment.proto == 6 || segment.proto == 17, "a segment that is neither TCP nor UDP")
    precondition(segment.payload.count <= size, "payload larger than the frame")
    let sizes = (segment.source.bytes.count, segment.destination.bytes.count)
    precondition(sizes == (4, 4) || sizes == (16, 16), "addresses of mixed or odd families")
    if segment.proto == 17 { precondition(segment.sequence == 0 && segment.flags == 0, "UDP with TCP fields") }
    if let name = TLSClientHello.serverName(segment.payload) {
        precondition(!name.isEmpty && name.utf8.count <= 1024, "odd server name")
    }
    _ = segment.source.description
    _ = segment.destination.description
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacket(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checked(PacketDecoder.ethernet(bytes), within: size)
    checked(PacketDecoder.ip(bytes), within: size)
    return 0
}
