#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// Pure steps of answering: reading an upstream response for the question we asked (the CNAME chain
/// and the addresses on it, nothing from authority or additional), the TTL clamp, and the messages the
/// client gets. Fuzzed together with the wire code.
package enum GateAnswer {
    /// The part of an upstream response the gate may use.
    package struct Walk: Equatable, Sendable {
        package var rcode: UInt8
        /// CNAME records from the question's name onwards, in chain order.
        package var chain: [DNSRecord]
        /// The name at the end of the chain.
        package var finalName: DNSName
        /// A/AAAA records (of the asked type) owned by the final name, with their TTLs.
        package var addresses: [(address: IPAddress, ttl: UInt32)]
        /// Records of the asked type owned by the final name when that type is not A/AAAA (learn mode forwards
        /// every type; enforce mode only asks A/AAAA, so this stays empty there).
        package var others: [DNSRecord] = []

        package static func == (l: Walk, r: Walk) -> Bool {
            l.rcode == r.rcode && l.chain == r.chain && l.finalName == r.finalName
                && l.addresses.map(\.address) == r.addresses.map(\.address) && l.addresses.map(\.ttl) == r.addresses.map(\.ttl)
                && l.others == r.others
        }
    }

    package static let maxChain = 16

    /// Record types whose data may carry compressed names (RFC 1035 and the types RFC 3597 §4 says receivers
    /// must decompress). Their data is kept as raw bytes, so it cannot be copied into another message.
    package static func mayHoldCompressedNames(_ type: UInt16) -> Bool {
        [2, 3, 4, 6, 7, 8, 9, 12, 14, 15, 17, 18, 21, 24, 26, 30, 33, 35, 36, 39].contains(type)
    }

    /// Nil when `response` does not answer `question` with `id` (spoofed, stale, or confused upstream).
    package static func walk(_ response: DNSMessage, id: UInt16, question: DNSQuestion) -> Walk? {
        guard response.isResponse, response.id == id, response.opcode == 0, response.questions.count == 1 else { return nil }
        let asked = response.questions[0]
        guard asked.type == question.type, asked.klass == question.klass,
              asked.name.equalsIgnoringCase(question.name) else { return nil }
        var current = question.name
        var chain: [DNSRecord] = []
        var seen: [DNSName] = [current.lowercased()]
        following: while chain.count < maxChain {
            for record in response.answers where record.type == DNSType.cname && record.klass == DNSType.classIN
                && record.name.equalsIgnoringCase(current) {
                guard case .cname(let target) = record.data else { continue }
                let key = target.lowercased()
                if seen.contains(key) { break following }   // a loop: stop; the addresses decide
                seen.append(key)
                chain.append(record)
                current = target
                continue following
            }
            break
        }
        var addresses: [(IPAddress, UInt32)] = []
        var others: [DNSRecord] = []
        for record in response.answers where record.type == question.type && record.klass == DNSType.classIN
            && record.name.equalsIgnoringCase(current) {
            switch record.data {
            case .a(let bytes), .aaaa(let bytes):
                if let address = IPAddress(bytes: bytes) { addresses.append((address, record.ttl)) }
            case .other where question.type != DNSType.a && question.type != DNSType.aaaa:
                others.append(record)
            default: continue
            }
        }
        return Walk(rcode: response.rcode, chain: chain, finalName: current, addresses: addresses, others: others)
    }

    /// How long a pin lives and what TTL the client may cache.
    package struct Clamp: Sendable, Equatable {
        package var floor: UInt32
        package var cap: UInt32
        package init(floor: UInt32 = 60, cap: UInt32 = 3600) {
            self.floor = floor; self.cap = max(floor, cap)
        }
        /// Pin lifetime for a record TTL: clamp(TTL, floor, cap).
        package func pin(_ ttl: UInt32) -> UInt32 { min(max(ttl, floor), cap) }
        /// TTL the client sees: never longer than the pin it relies on.
        package func client(_ ttl: UInt32) -> UInt32 { min(ttl, pin(ttl)) }
    }

    /// A fresh upstream query: our ID, the lowercased name, RD set, no EDNS (nothing of the client's bytes).
    package static func upstreamQuery(_ question: DNSQuestion, id: UInt16) -> DNSMessage {
        DNSMessage(id: id, flags: 0x0100, questions: [DNSQuestion(name: question.name.lowercased(), type: question.type)])
    }

    /// A response to the client: its ID and question echoed (as it sent them), RD copied, RA set.
    package static func reply(to query: DNSMessage, rcode: UInt8, answers: [DNSRecord] = []) -> DNSMessage {
        let flags: UInt16 = 0x8000 | (query.flags & 0x0100) | 0x0080 | UInt16(rcode & 0xF)
        var answers = answers
        // The first record's owner is the client's spelling of the name (0x20-randomising stubs compare it).
        if let question = query.questions.first, !answers.isEmpty, answers[0].name.equalsIgnoringCase(question.name) {
            answers[0].name = question.name
        }
        return DNSMessage(id: query.id, flags: flags, questions: query.questions.count == 1 ? query.questions : [],
                          answers: answers)
    }

    /// Encodes a reply for UDP: over `limit` bytes the answers are dropped and TC set, so the client
    /// retries over TCP.
    package static func encode(_ reply: DNSMessage, limit: Int) -> [UInt8] {
        if let bytes = try? DNSWire.build(reply), bytes.count <= limit { return bytes }
        var cut = reply
        cut.answers = []; cut.authority = []; cut.additional = []
        cut.flags |= 0x0200
        if let bytes = try? DNSWire.build(cut), bytes.count <= limit { return bytes }
        cut.questions = []
        return (try? DNSWire.build(cut)) ?? []
    }
}
