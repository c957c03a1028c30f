import Testing
@testable import CagentDNS

/// Hand-built bytes for the parser's edge cases.
enum Bytes {
    static func header(id: UInt16 = 1, flags: UInt16 = 0x0100, qd: UInt16 = 1, an: UInt16 = 0, ns: UInt16 = 0, ar: UInt16 = 0) -> [UInt8] {
        [id, flags, qd, an, ns, ar].flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
    static func name(_ labels: [[UInt8]]) -> [UInt8] { labels.flatMap { [UInt8($0.count)] + $0 } + [0] }
    static func name(_ text: String) -> [UInt8] { name(text.split(separator: ".").map { Array($0.utf8) }) }
    static func query(_ text: String, type: UInt16 = 1, id: UInt16 = 1) -> [UInt8] {
        header(id: id) + name(text) + [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    }
}

@Suite struct WireTests {
    @Test func parsesAQuery() throws {
        let message = try DNSWire.parse(Bytes.query("WWW.Allowed.test", type: 28, id: 0xBEEF))
        #expect(message.id == 0xBEEF)
        #expect(message.questions.count == 1)
        #expect(message.questions[0].type == DNSType.aaaa)
        #expect(message.questions[0].name.labels == [Array("WWW".utf8), Array("Allowed".utf8), Array("test".utf8)])
        #expect(message.questions[0].name.equalsIgnoringCase(DNSName("www.allowed.test")!))
    }

    @Test func roundTripsWithCompressionAndCNAME() throws {
        // Question www.allowed.test; answer: CNAME (owner is a pointer to the question) -> edge.cdn.test, then A.
        var bytes = Bytes.header(id: 7, flags: 0x8180, qd: 1, an: 2) + Bytes.name("www.allowed.test") + [0, 1, 0, 1]
        let edgeOffset = bytes.count + 12
        bytes += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, UInt8(Bytes.name("edge.cdn.test").count)] + Bytes.name("edge.cdn.test")
        bytes += [0xC0, UInt8(edgeOffset), 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 203, 0, 113, 9]
        let message = try DNSWire.parse(bytes)
        #expect(message.answers.count == 2)
        #expect(message.answers[0].data == .cname(DNSName("edge.cdn.test")!))
        #expect(message.answers[1].name == DNSName("edge.cdn.test")!)
        #expect(message.answers[1].data == .a([203, 0, 113, 9]))
        #expect(try DNSWire.parse(DNSWire.build(message)) == message)
    }

    @Test func rejectsPointerLoops() {
        // A name that points at itself, and two pointers pointing at each other.
        let selfLoop = Bytes.header() + [0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(selfLoop) }
        let forward = Bytes.header() + [0xC0, 14, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(forward) }
    }

    @Test func rejectsLongLabelsAndNames() {
        // 64 is a reserved label type (0x40); a name of 5 x 63-byte labels exceeds 255 bytes.
        let long = Bytes.header() + [64] + [UInt8](repeating: 97, count: 64) + [0, 0, 1, 0, 1]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(long) }
        let label = [UInt8](repeating: 97, count: 63)
        let huge = Bytes.header() + Bytes.name([label, label, label, label, label]) + [0, 1, 0, 1]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(huge) }
        #expect(DNSName(String(repeating: "a", count: 64) + ".test") == nil)
        #expect(throws: DNSWireError.self) { try DNSWire.build(DNSMessage(id: 1, flags: 0, questions: [DNSQuestion(name: DNSName(labels: [label, label, label, label, label]), type: 1)])) }
    }

    @Test func rejectsCountsLargerThanTheMessage() {
        let bytes = Bytes.header(qd: 1, an: 0xFFFF) + Bytes.name("a.test") + [0, 1, 0, 1]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(bytes) }
    }

    @Test func rejectsTruncatedRecords() {
        var bytes = Bytes.header(id: 7, flags: 0x8180, qd: 1, an: 1) + Bytes.name("a.test") + [0, 1, 0, 1]
        bytes += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 203, 0]
        #expect(throws: DNSWireError.self) { try DNSWire.parse(bytes) }
        for cut in 0..<12 { #expect(throws: DNSWireError.self) { try DNSWire.parse(Array(Bytes.query("a.test")[0..<cut])) } }
    }

    @Test func displayEscapesDotsAndControlBytes() {
        let name = DNSName(labels: [Array("a.b".utf8), [0x1B, 0x5B, 0x32, 0x4A], Array("test".utf8)])
        #expect(name.display == "a\\.b.\\027[2J.test")
    }

    @Test func seedCorpusParsesOrFailsCleanly() throws {
        // Every checked-in fuzz seed (and every former finding) runs through parse/build/parse.
        for path in Corpus.files() {
            let bytes = Corpus.read(path)
            guard let message = try? DNSWire.parse(bytes) else { continue }
            #expect(try DNSWire.parse(DNSWire.build(message)) == message, "\(path)")
        }
        #expect(Corpus.files().count >= 10)
    }
}

enum Corpus {
    static var directory: String {
        // Tests/Fuzz: the seeds of scripts/fuzz.sh and every former finding.
        let file = #filePath
        let tests = file[..<file.lastIndex(of: "/")!]
        return String(tests[..<tests.lastIndex(of: "/")!]) + "/Fuzz"
    }

    static func files() -> [String] {
        ["wire", "answer", "nflog", "tls", "gate", "packet"].flatMap { sub in
            (try? listing(directory + "/" + sub)) ?? []
        }
    }

    static func listing(_ dir: String) throws -> [String] {
        guard let handle = opendir(dir) else { return [] }
        defer { closedir(handle) }
        var out: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { out.append(dir + "/" + name) }
        }
        return out.sorted()
    }

    static func read(_ path: String) -> [UInt8] {
        guard let file = fopen(path, "rb") else { return [] }
        defer { fclose(file) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#endif
