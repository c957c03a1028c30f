import Testing
import CShim
import CagentNetwork
import Synchronization
@testable import CagentCapture
@testable import CagentDNS

@Suite struct NflogFrameTests {
    /// An nflog record as nfnetlink_log sends it (and libpcap's DLT_NFLOG frames carry it): the nfgenmsg header, a
    /// prefix TLV, a payload TLV (host byte order).
    static func frame(prefix: String, packet: [UInt8]) -> [UInt8] {
        func tlv(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
            let length = UInt16(4 + value.count)
            var out = [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)] + value
            while out.count % 4 != 0 { out.append(0) }
            return out
        }
        return [2, 0, 0, 5] + tlv(10, Array(prefix.utf8) + [0]) + tlv(9, packet)
    }

    static func tcpSYN(to address: [UInt8], port: UInt16) -> [UInt8] {
        var ip: [UInt8] = [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2] + address
        ip += [0xC3, 0x50, UInt8(port >> 8), UInt8(port & 0xFF)] + [UInt8](repeating: 0, count: 16)
        return ip
    }

    @Test func decodesATCPDenial() {
        let packet = NflogFrame.parse(Self.frame(prefix: "cagent-deny ", packet: Self.tcpSYN(to: [203, 0, 113, 9], port: 443)))
        #expect(packet == DeniedPacket(proto: 6, destination: IPAddress("203.0.113.9")!, port: 443, prefix: Array("cagent-deny ".utf8)))
    }

    @Test func decodesIPv6UDP() {
        var ip: [UInt8] = [0x60, 0, 0, 0, 0, 8, 17, 64] + IPAddress("2001:db8::2")!.bytes + IPAddress("2001:db8::9")!.bytes
        ip += [0x30, 0x39, 0x01, 0xBB, 0, 8, 0, 0]
        #expect(NflogFrame.parse(Self.frame(prefix: "x", packet: ip))?.port == 443)
    }

    /// A netlink message around `payload` (nlmsghdr in host byte order), padded to 4 bytes.
    static func message(type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(16 + payload.count)
        var out = withUnsafeBytes(of: length.littleEndian, Array.init) + withUnsafeBytes(of: type.littleEndian, Array.init)
            + [0, 0] + [UInt8](repeating: 0, count: 8) + payload
        while out.count % 4 != 0 { out.append(0) }
        return out
    }

    @Test("A datagram's packet records are found among other messages; a cut or lying length ends the walk")
    func netlinkDatagrams() {
        let first = Self.frame(prefix: "a", packet: Self.tcpSYN(to: [203, 0, 113, 9], port: 443))
        let second = Self.frame(prefix: "b", packet: Self.tcpSYN(to: [203, 0, 113, 10], port: 80))
        let datagram = Self.message(type: CG_NFLOG_PACKET_MESSAGE, first) + Self.message(type: 2, [0, 0, 0, 0])
            + Self.message(type: CG_NFLOG_PACKET_MESSAGE, second)
        let records = NflogMessages.records(in: datagram[...])
        #expect(records.count == 2)
        #expect(records.compactMap { NflogFrame.parse($0)?.port } == [443, 80])
        // A cut datagram: the whole messages before the cut only.
        #expect(NflogMessages.records(in: datagram[0..<(datagram.count - 3)]).count == 1)
        // A length running past the datagram, and one shorter than a header: nothing read past either.
        var lying = datagram
        lying[0] = 0xFF; lying[1] = 0xFF
        #expect(NflogMessages.records(in: lying[...]).isEmpty)
        var short = datagram
        short[0] = 4; short[1] = 0; short[2] = 0; short[3] = 0
        #expect(NflogMessages.records(in: short[...]).isEmpty)
        #expect(NflogMessages.records(in: [UInt8](repeating: 0, count: 15)[...]).isEmpty)
        // Offsets of a slice that does not start at 0.
        let padded = [UInt8](repeating: 7, count: 8) + datagram
        #expect(NflogMessages.records(in: padded[8...]).count == 2)
    }

    @Test func fuzzCorpusReplays() {
        // Seeds and any former nflog fuzz findings: parsing must not trap.
        let files = Corpus.files().filter { $0.contains("/nflog/") }
        #expect(!files.isEmpty)
        for path in files { _ = NflogFrame.parse(Corpus.read(path)) }
        #expect(NflogFrame.parse(Corpus.read(Corpus.directory + "/nflog/tcp4.bin"))?.port == 443)
    }

    @Test func packetAndGateCorpusReplays() throws {
        // The packet/tls targets' seeds and findings through the decoders, the gate's through pattern matching.
        let packets = Corpus.files().filter { $0.contains("/packet/") || $0.contains("/tls/") }
        #expect(packets.count >= 6)
        for path in packets {
            let bytes = Corpus.read(path)
            for segment in [PacketDecoder.ethernet(bytes), PacketDecoder.ip(bytes)].compactMap({ $0 }) {
                #expect(segment.payload.count <= bytes.count)
                _ = TLSClientHello.serverName(segment.payload)
            }
            _ = TLSClientHello.serverName(bytes)
        }
        #expect(PacketDecoder.ethernet(Corpus.read(Corpus.directory + "/packet/tcp4_hello_vlan.bin"))
            .flatMap { TLSClientHello.serverName($0.payload) } != nil, "the ClientHello seed decodes (control)")
        let gates = Corpus.files().filter { $0.contains("/gate/") }
        #expect(gates.count >= 7)
        for path in gates {
            let bytes = Corpus.read(path)
            let line = bytes.prefix { $0 != 0x0A }
            guard let pattern = DomainPattern(String(decoding: line, as: UTF8.self)) else { continue }
            _ = pattern.matches(DNSName(labels: [Array(line)]))
            _ = GatePolicy(patterns: [pattern], ipv6: true).decide(DNSMessage(id: 1, flags: 0x0100,
                questions: [DNSQuestion(name: DNSName(labels: pattern.suffix), type: DNSType.a)]))
        }
    }

    @Test func survivesGarbage() {
        for length in 0..<40 {
            _ = NflogFrame.parse([UInt8](repeating: 0xFF, count: length))
            _ = NflogFrame.parse([2, 0, 0, 5] + [UInt8](repeating: 0x01, count: length))
        }
        #expect(NflogFrame.parse([2, 0, 0, 5, 0xFF, 0xFF, 9, 0]) == nil)
    }
}

@Suite struct DenialReporterTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func oneLinePerDistinctDenialWithTheName() {
        let book = AddressBook()
        book.record(IPAddress("203.0.113.9")!, for: DNSName("api.evil.test")!)
        let lines = Lines()
        let reporter = DenialReporter(book: book) { lines.add($0) }
        let syn = DeniedPacket(proto: 6, destination: IPAddress("203.0.113.9")!, port: 443)
        reporter.record(syn); reporter.record(syn)                       // a retransmitted SYN
        reporter.record(GateEvent.notAllowed(name: DNSName("x.attacker.test")!, type: 1))
        reporter.record(GateEvent.notAllowed(name: DNSName("X.Attacker.TEST")!, type: 28))
        reporter.record(GateEvent.resolved(name: DNSName("a.allowed.test")!, type: 1, addresses: []))
        #expect(lines.all == ["cagent: blocked tcp 203.0.113.9:443 (api.evil.test)",
                              "cagent: refused DNS x.attacker.test (not in profile)"])
        #expect(reporter.summary == .init(allowed: 1, refused: 2, blocked: 2, suppressedLines: 0))
        #expect(reporter.summaryLine(listPath: "/tmp/s/denials.json") == "cagent: 1 allowed, 2 refused, 2 blocked (full list: /tmp/s/denials.json)")
        #expect(reporter.json().contains("\"subject\":\"203.0.113.9\""))
    }

    /// A flood of fresh names: the list keeps `maxEntries` distinct findings, the rest are counted (the totals
    /// stay exact, the exit line says how many were not listed), and a known finding still counts past the cap.
    @Test func theListIsBoundedAndSaysWhatItLeftOut() {
        let reporter = DenialReporter(book: nil, linesPerSecond: 0, burst: 0, maxEntries: 3) { _ in }
        for index in 0..<10 { reporter.record(GateEvent.notAllowed(name: DNSName("f\(index).flood.test")!, type: 1)) }
        reporter.record(GateEvent.notAllowed(name: DNSName("f0.flood.test")!, type: 1))
        #expect(reporter.entries.count == 3)
        #expect(reporter.entries.first?.count == 2)
        #expect(reporter.summary.refused == 11 && reporter.summary.unlisted == 7, "\(reporter.summary)")
        #expect(reporter.summaryLine(listPath: nil) == "cagent: 0 allowed, 11 refused, 0 blocked; 7 more distinct not listed (the list keeps the first 3)")
        #expect(reporter.json().contains("\"unlisted\":7,"))
        // The control: under the cap nothing is left out and the line says nothing of it.
        let small = DenialReporter(book: nil, maxEntries: 3) { _ in }
        small.record(GateEvent.notAllowed(name: DNSName("one.flood.test")!, type: 1))
        #expect(small.summary.unlisted == 0 && !small.summaryLine(listPath: nil).contains("not listed") && !small.json().contains("unlisted"))
    }

    /// SERVFAIL from upstream (a timeout, an upstream error) is the network's failure, not the profile's
    /// refusal: it is listed, never counted as refused, and never proposed.
    @Test func upstreamFailuresAreNotRefusals() {
        let lines = Lines()
        let reporter = DenialReporter(book: nil) { lines.add($0) }
        reporter.record(GateEvent.failed(name: DNSName("slow.allowed.test")!, reason: "upstream timeout"))
        reporter.record(GateEvent.notAllowed(name: DNSName("api.allowed.test")!, type: 1))
        #expect(reporter.summary.refused == 1, "\(reporter.summary)")
        #expect(reporter.summary.failed == 1, "\(reporter.summary)")
        #expect(reporter.entries.first?.verdict == .failed)
        #expect(reporter.summaryLine(listPath: nil) == "cagent: 0 allowed, 1 refused, 0 blocked, 1 upstream DNS failure")
    }

    /// Every denial the profile can change ends with the command that proposes allowing it, escaped.
    @Test func denialLinesEndWithTheProposeCommand() {
        let lines = Lines()
        let book = AddressBook()
        book.record(IPAddress("203.0.113.9")!, for: DNSName("git.allowed.test")!)
        let reporter = DenialReporter(book: book, allowHint: "cagent profile propose --update 'my\u{1B}p.yaml' --session S1") { lines.add($0) }
        reporter.record(GateEvent.notAllowed(name: DNSName("api.allowed.test")!, type: 1))
        reporter.record(DeniedPacket(proto: 6, destination: IPAddress("203.0.113.9")!, port: 22))
        reporter.record(GateEvent.noData(name: DNSName("api.allowed.test")!, type: 16))
        #expect(lines.all.count == 3)
        #expect(lines.all[0] == "cagent: refused DNS api.allowed.test (not in profile) — allow: cagent profile propose --update 'my\\x1Bp.yaml' --session S1", "\(lines.all)")
        #expect(lines.all[1] == "cagent: blocked tcp 203.0.113.9:22 (git.allowed.test) — allow: cagent profile propose --update 'my\\x1Bp.yaml' --session S1", "\(lines.all)")
        #expect(!lines.all[2].contains("allow:"), "a TXT query no profile entry can allow: \(lines.all[2])")
        #expect(!reporter.entries.isEmpty && reporter.entries.allSatisfy { $0.firstSeen > 0 && $0.lastSeen >= $0.firstSeen })
    }

    /// A refused name that looks like encoded data (DNS exfiltration) gets no allow command: the proposer
    /// would refuse to propose it, and the line must not invite the user to allow it. Control: a plain name
    /// under the same parent gets the command.
    @Test func encodedNamesGetNoAllowCommand() {
        let lines = Lines()
        let reporter = DenialReporter(book: nil, allowHint: "cagent profile propose --update p.yaml --session S1") { lines.add($0) }
        reporter.record(GateEvent.notAllowed(name: DNSName("736b2d64656d6f2d3466386132633931.x.attacker.test")!, type: 1))
        reporter.record(GateEvent.notAllowed(name: DNSName("www.attacker.test")!, type: 1))
        #expect(lines.all.count == 2)
        #expect(lines.all[0].hasSuffix("looks like encoded data (DNS exfiltration?): never proposed") && !lines.all[0].contains("allow:"), "\(lines.all)")
        #expect(lines.all[1].hasSuffix("— allow: cagent profile propose --update p.yaml --session S1"), "\(lines.all)")
        #expect(reporter.entries.first { $0.subject.hasPrefix("736b") }?.allowable == false)
    }

    @Test func hostileNamesCannotDriveTheTerminal() {
        let lines = Lines()
        let reporter = DenialReporter(book: nil) { lines.add($0) }
        let evil = DNSName(labels: [[0x1B] + Array("]0;pwned".utf8) + [0x07], [0xE2, 0x80, 0xAE] + Array("txt".utf8), Array("test".utf8)])
        reporter.record(GateEvent.notAllowed(name: evil, type: 1))
        let line = lines.all[0]
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0.value == 0x202E })
    }

    @Test func rateLimitsAndSaysHowManyWereHidden() {
        let lines = Lines()
        let now = Mutex<Double>(0)
        let reporter = DenialReporter(book: nil, linesPerSecond: 1, burst: 3, clock: { now.withLock { $0 } }) { lines.add($0) }
        for i in 0..<10 { reporter.record(DeniedPacket(proto: 17, destination: IPAddress("203.0.113.\(i)")!, port: 53)) }
        #expect(lines.all.count == 3)
        now.withLock { $0 = 5 }
        reporter.record(DeniedPacket(proto: 17, destination: IPAddress("203.0.113.99")!, port: 53))
        #expect(lines.all.count == 5)
        #expect(lines.all[3] == "cagent: (7 more not shown, see the list at exit)")
        #expect(reporter.summary.blocked == 11)
    }
}
