// libFuzzer target "tls": bytes as the first data segment of a TLS connection (the sandbox's). Parsing must
// never trap; a name, when found, holds only [a-z0-9._-] and \DDD escapes. Built by scripts/fuzz-dns.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTLS(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let name = TLSClientHello.serverName(bytes) {
        precondition(!name.isEmpty && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x2d || $0 == 0x5f || $0 == 0x5c })
    }
    // The same bytes as an Ethernet frame and as an IP packet on the capture path.
    _ = PacketDecoder.ethernet(bytes)
    _ = PacketDecoder.ip(bytes)
    return 0
}
