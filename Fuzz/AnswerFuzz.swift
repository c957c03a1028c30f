// libFuzzer target "answer": bytes as an upstream response to the gate's question (www.allowed.test, the
// type from the message itself). The walk must only return addresses owned by the chain's end, and the
// reply the client gets must always encode and parse. Built by scripts/fuzz-dns.sh.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAnswer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let response = try? DNSWire.parse(bytes) else { return 0 }
    let asked = response.questions.first?.type ?? DNSType.a
    let question = DNSQuestion(name: DNSName("www.allowed.test")!, type: asked)
    guard let walk = GateAnswer.walk(response, id: response.id, question: question) else { return 0 }
    precondition(walk.chain.count <= GateAnswer.maxChain)
    var current = question.name
    for record in walk.chain {
        precondition(record.name.equalsIgnoringCase(current), "chain broken")
        guard case .cname(let target) = record.data else { fatalError("non-CNAME in chain") }
        current = target
    }
    precondition(current == walk.finalName)
    let clamp = GateAnswer.Clamp(floor: 30, cap: 300)
    var answers = walk.chain
    for (address, ttl) in walk.addresses {
        precondition(clamp.client(ttl) <= clamp.pin(ttl))
        answers.append(DNSRecord(name: walk.finalName, type: asked, ttl: clamp.client(ttl),
                                 data: address.isV4 ? .a(address.bytes) : .aaaa(address.bytes)))
        _ = address.specialUse
        _ = address.description
    }
    let query = DNSMessage(id: 7, flags: 0x0100, questions: [question])
    let encoded = GateAnswer.encode(GateAnswer.reply(to: query, rcode: walk.rcode, answers: answers), limit: 512)
    precondition(encoded.count <= 512 && (try? DNSWire.parse(encoded)) != nil, "reply did not encode")
    return 0
}
