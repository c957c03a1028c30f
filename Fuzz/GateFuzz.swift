// libFuzzer target "gate": the gate's allow/deny decision on names. The first line of the input is a profile
// pattern as text (`*.allowed.test`, `**.x`, `exact.test`); the rest builds query names as wire labels, some of
// them the pattern's suffix under a prefix with the case flipped. Checked against an independent matcher that
// compares lowercased wire bytes at label offsets (not DomainPattern's label loop), and: case and trailing-dot
// variants decide alike, `*.x` implies `**.x`, a query is forwarded exactly when the pattern matches (NUL or
// dot inside a label: refused). Built by scripts/fuzz.sh.

/// The name's wire bytes, ASCII lowercased, and the offset where each label starts.
private func wire(_ labels: [[UInt8]]) -> (bytes: [UInt8], starts: [Int]) {
    var bytes: [UInt8] = [], starts: [Int] = []
    for label in labels {
        starts.append(bytes.count)
        bytes.append(UInt8(label.count))
        bytes += label.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
    }
    return (bytes, starts)
}

/// Reference matcher: the suffix's wire bytes must equal the name's wire bytes from a label start on, and the
/// number of labels before that start decides the depth.
private func referenceMatch(depth: DomainPattern.Depth, suffix: [[UInt8]], name: DNSName) -> Bool {
    let n = wire(name.labels), s = wire(suffix)
    guard n.bytes.count >= s.bytes.count else { return false }
    let start = n.bytes.count - s.bytes.count
    guard let before = n.starts.firstIndex(of: start),
          Array(n.bytes[start...]) == s.bytes else { return false }
    switch depth {
    case .exact: return before == 0
    case .oneLabel: return before == 1
    case .anyDepth: return before >= 1
    }
}

private func query(_ name: DNSName, type: UInt16 = DNSType.a) -> DNSMessage {
    DNSMessage(id: 1, flags: 0x0100, questions: [DNSQuestion(name: name, type: type)])
}

private func flipCase(_ name: DNSName, mask: UInt8) -> DNSName {
    var bit = 0
    return DNSName(labels: name.labels.map { label in
        label.map { byte in
            defer { bit += 1 }
            let isLetter = (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
            return isLetter && (mask >> (bit % 8)) & 1 == 1 ? byte ^ 0x20 : byte
        }
    })
}

private func check(_ pattern: DomainPattern, text: String, _ name: DNSName) {
    let matches = pattern.matches(name)
    require(matches == referenceMatch(depth: pattern.depth, suffix: pattern.suffix, name: name),
                 "DomainPattern disagrees with the reference matcher")
    for mask: UInt8 in [0xFF, 0x55, 0xAA] {
        require(pattern.matches(flipCase(name, mask: mask)) == matches, "case changed the decision")
    }
    if matches && pattern.depth == .oneLabel {
        require(DomainPattern("*" + text).map { $0.matches(name) } == true,
                     "*.x matched but **.x did not")
    }
    let policy = GatePolicy(patterns: [pattern], ipv6: true)
    let oddLabel = name.labels.contains { $0.contains(0) || $0.contains(UInt8(ascii: ".")) }
    switch policy.decide(query(name)) {
    case .resolve(let question, _):
        require(matches && !oddLabel, "forwarded a name the pattern does not allow")
        require(question.name == name.lowercased(), "forwarded another name")
    case .notAllowed: require(!matches && !oddLabel, "refused a name the pattern allows")
    case .refuse: require(oddLabel || name.wireLength > 255, "refused a plain name")
    case .drop, .noData: fatalError("an A query decided as drop/noData")
    }
    // Other types on an allowed name never leave the gate.
    if case .resolve = policy.decide(query(name, type: DNSType.txt)) { fatalError("TXT forwarded") }
}

/// precondition's message is compiled out with -O; a finding must say which property broke.
private func require(_ holds: Bool, _ message: @autoclosure () -> String) {
    if !holds { fatalError(message()) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let newline = bytes.firstIndex(of: 0x0A) ?? bytes.count
    let text = String(decoding: bytes[..<newline], as: UTF8.self)
    guard let pattern = DomainPattern(text) else { return 0 }
    // A trailing dot names the same pattern.
    if !text.hasSuffix(".") { require(DomainPattern(text + ".") == pattern, "a trailing dot changed the pattern") }
    // The printed form parses back when its labels are plain.
    if pattern.suffix.allSatisfy({ $0.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x2E && $0 != 0x5C && $0 != 0x2A } }) {
        require(DomainPattern(pattern.description) == pattern, "the printed pattern parses to another one")
    }
    // The rest: labels as (length byte % 64, bytes); a length byte with the top bit set means "the pattern's
    // suffix here, case flipped by the next byte".
    var labels: [[UInt8]] = []
    var index = min(newline + 1, bytes.count)
    while index < bytes.count {
        let head = bytes[index]; index += 1
        if head & 0x80 != 0 {
            let mask = index < bytes.count ? bytes[index] : 0
            index += 1
            labels += flipCase(DNSName(labels: pattern.suffix), mask: mask).labels
        } else {
            let length = Int(head & 0x3F)
            guard length > 0 else { continue }
            let end = min(index + length, bytes.count)
            if end > index { labels.append(Array(bytes[index..<end])) }
            index = end
        }
        if labels.count > 40 { break }
    }
    let name = DNSName(labels: labels)
    guard name.wireLength <= 255 else { return 0 }
    check(pattern, text: text, name)
    // The name as presentation text with a trailing dot (the form a resolver library prints) decides alike.
    if labels.allSatisfy({ $0.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x2E && $0 != 0x5C } }), !labels.isEmpty,
       let dotted = DNSName(String(decoding: Array(name.display.utf8), as: UTF8.self) + ".") {
        require(pattern.matches(dotted) == pattern.matches(name), "a trailing dot changed the decision")
    }
    return 0
}
