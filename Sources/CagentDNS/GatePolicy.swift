#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// What the gate does with one client query: a pure function of the message and the session's policy,
/// so every rule is unit-tested without a socket.
public struct GatePolicy: Sendable {
    public var patterns: [DomainPattern]
    /// False when the sandbox has no IPv6: AAAA on an allowed name gets NODATA.
    public var ipv6: Bool
    /// Special-use blocks (private, loopback, ...) the profile explicitly allows as answers.
    public var allowedSpecial: [IPNetwork]

    public init(patterns: [DomainPattern], ipv6: Bool, allowedSpecial: [IPNetwork] = []) {
        self.patterns = patterns; self.ipv6 = ipv6; self.allowedSpecial = allowedSpecial
    }

    /// Builds the policy from profile strings; throws on a pattern that does not parse, naming it.
    public init(domains: [String], ipv6: Bool, allowedSpecial: [String] = []) throws(GatePolicyError) {
        var patterns: [DomainPattern] = []
        for text in domains {
            guard let pattern = DomainPattern(text) else { throw GatePolicyError(text: text, what: "domain pattern") }
            patterns.append(pattern)
        }
        var blocks: [IPNetwork] = []
        for text in allowedSpecial {
            guard let block = IPNetwork(text) else { throw GatePolicyError(text: text, what: "address block") }
            blocks.append(block)
        }
        self.init(patterns: patterns, ipv6: ipv6, allowedSpecial: blocks)
    }

    public enum Decision: Equatable, Sendable {
        /// Not a query we answer at all (a response, garbage): drop silently.
        case drop
        /// Answer locally with this rcode and no data; `reason` goes to the denial report when set.
        case refuse(rcode: UInt8, reason: String)
        /// Name not in the profile: NXDOMAIN, never forwarded.
        case notAllowed
        /// Allowed name, but a type we do not forward (or AAAA without IPv6): NOERROR, no data.
        case noData
        /// Allowed name and A/AAAA: resolve upstream with a fresh query for this (lowercased) question.
        case resolve(DNSQuestion)
    }

    public func allows(_ name: DNSName) -> Bool { patterns.contains { $0.matches(name) } }

    public func decide(_ query: DNSMessage) -> Decision {
        if query.isResponse { return .drop }
        guard query.opcode == 0 else { return .refuse(rcode: DNSRcode.notImp, reason: "opcode \(query.opcode)") }
        guard query.questions.count == 1 else {
            return .refuse(rcode: DNSRcode.refused, reason: "\(query.questions.count) questions")
        }
        guard query.answers.isEmpty, query.authority.isEmpty else {
            return .refuse(rcode: DNSRcode.refused, reason: "records in a query")
        }
        let question = query.questions[0]
        for label in question.name.labels where label.contains(0) || label.contains(UInt8(ascii: ".")) {
            return .refuse(rcode: DNSRcode.refused, reason: "NUL or dot inside a label")
        }
        guard question.klass == DNSType.classIN else { return .refuse(rcode: DNSRcode.refused, reason: "class \(question.klass)") }
        guard allows(question.name) else { return .notAllowed }
        switch question.type {
        case DNSType.a: return .resolve(DNSQuestion(name: question.name.lowercased(), type: DNSType.a))
        case DNSType.aaaa where ipv6: return .resolve(DNSQuestion(name: question.name.lowercased(), type: DNSType.aaaa))
        default: return .noData
        }
    }

    /// Nil when an answer address may be pinned; otherwise why not ("loopback", ...).
    public func refusal(for address: IPAddress) -> String? {
        guard let use = address.specialUse else { return nil }
        return allowedSpecial.contains { $0.contains(address) } ? nil : use
    }
}

public struct GatePolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public var text: String
    public var what: String
    public var description: String { "not a valid \(what): \(text)" }
}
