// libFuzzer target "nflog": bytes as a DLT_NFLOG frame (the IP packet inside is the sandbox's). Parsing
// must never trap; a decoded packet must carry a 4- or 16-byte address. Built by scripts/fuzz-dns.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNflog(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let packet = NflogFrame.parse(bytes) {
        precondition(packet.destination.bytes.count == 4 || packet.destination.bytes.count == 16)
        _ = packet.protoName
        _ = packet.destination.description
    }
    _ = NflogFrame.ip(bytes)
    return 0
}
