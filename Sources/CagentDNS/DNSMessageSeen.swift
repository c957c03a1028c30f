#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// One DNS exchange seen in learn mode, in plain values (the store's `DNSObservation` event maps onto it field by field).
/// `source` says who saw it: the gate (it forwarded the question itself) or the packet capture on the
/// session's veth (any DNS the sandbox sent, to any resolver, before the redirect to the gate).
package struct DNSMessageSeen: Sendable, Equatable {
    package enum Source: String, Sendable { case gate, pcap }

    /// One answer record: an address (A/AAAA), a CNAME target, or the record's type for anything else.
    package struct Answer: Sendable, Equatable {
        /// Owner name, lower case, in `DNSName.display` form (safe to print after TerminalEscape).
        package var name: String
        package var type: UInt16
        package var ttl: UInt32
        /// "203.0.113.10", "edge.cdn.test", or "<N bytes>" for other data.
        package var value: String
        package init(name: String, type: UInt16, ttl: UInt32, value: String) {
            self.name = name; self.type = type; self.ttl = ttl; self.value = value
        }
        package var address: IPAddress? { type == DNSType.a || type == DNSType.aaaa ? IPAddress(value) : nil }
    }

    package var source: Source
    /// Seconds since the epoch.
    package var time: Double
    /// False for a query the capture saw (no answer in it); the gate reports whole exchanges.
    package var isResponse: Bool
    /// "udp" or "tcp".
    package var transport: String
    /// The sandbox's address (capture), or nil.
    package var client: IPAddress?
    /// Where the question went: the resolver the sandbox addressed (capture: its original destination, before
    /// the redirect; an address other than the gateway is DNS that tried to bypass the gate), or the upstream
    /// the gate asked.
    package var resolver: IPAddress?
    package var resolverPort: UInt16?
    /// The question's name, lower case, display form.
    package var name: String
    package var type: UInt16
    /// The response code (nil for a query).
    package var rcode: UInt8?
    /// The answer section: CNAME chain in order, then the records of the asked type.
    package var answers: [Answer]
    /// Why the gate did not pass the answer on (a rebinding answer, a failure), else nil.
    package var note: String?

    package init(source: Source, time: Double, isResponse: Bool, transport: String, client: IPAddress? = nil,
                resolver: IPAddress?, resolverPort: UInt16? = nil, name: String, type: UInt16, rcode: UInt8?,
                answers: [Answer] = [], note: String? = nil) {
        self.source = source; self.time = time; self.isResponse = isResponse; self.transport = transport
        self.client = client; self.resolver = resolver; self.resolverPort = resolverPort; self.name = name
        self.type = type; self.rcode = rcode; self.answers = answers; self.note = note
    }

    package static func answer(_ record: DNSRecord) -> Answer {
        let value: String
        switch record.data {
        case .a(let bytes), .aaaa(let bytes): value = IPAddress(bytes: bytes)?.description ?? "<\(bytes.count) bytes>"
        case .cname(let target): value = target.lowercased().display
        case .other(let bytes): value = "<\(bytes.count) bytes>"
        }
        return Answer(name: record.name.lowercased().display, type: record.type, ttl: record.ttl, value: value)
    }
}

/// Receives the gate's observations (learn mode). Called on the gate thread: return quickly.
package protocol GateObserver: Sendable {
    func observe(_ observation: DNSMessageSeen)
}

extension DNSRcode {
    /// The mnemonic the store and reports use: "NOERROR", "NXDOMAIN", ..., "RCODE12".
    package static func name(_ rcode: UInt8) -> String {
        switch rcode {
        case noError: return "NOERROR"
        case formErr: return "FORMERR"
        case servFail: return "SERVFAIL"
        case nxDomain: return "NXDOMAIN"
        case notImp: return "NOTIMP"
        case refused: return "REFUSED"
        default: return "RCODE\(rcode)"
        }
    }
}

extension DNSMessageSeen {
    /// True for a message the capture saw going to, or coming from, a resolver other than the session's gate
    /// addresses: DNS that tried to bypass the gate (it was redirected to the gate all the same).
    package func bypassedGate(gateways: [IPAddress]) -> Bool {
        guard source == .pcap, let resolver else { return false }
        return !gateways.contains(resolver)
    }
}
