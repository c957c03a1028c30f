// libFuzzer target "wire": any bytes through the parser; whatever parses must build, and the built bytes
// must parse back to the same message (round trip) and rebuild to the same bytes. The policy and the
// display form run on every parsed message too. Built by scripts/fuzz-dns.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? DNSWire.parse(bytes) else { return 0 }
    guard let built = try? DNSWire.build(message) else { fatalError("a parsed message did not build") }
    guard let again = try? DNSWire.parse(built) else { fatalError("built bytes did not parse") }
    precondition(again == message, "round trip changed the message")
    precondition((try? DNSWire.build(again)) == built, "rebuild changed the bytes")
    let policy = GatePolicy(patterns: [DomainPattern("**.allowed.test")!, DomainPattern("exact.test")!], ipv6: false)
    _ = policy.decide(message)
    for question in message.questions { _ = question.name.display }
    return 0
}
