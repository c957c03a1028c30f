#if !CAGENT_FUZZ
import CagentNetwork
#endif

/// What the gate does with one client query: a pure function of the message and the session's policy,
/// so every rule is unit-tested without a socket.
package struct GatePolicy: Sendable {
    /// One allowed name pattern and what its answers open (a `domains:` entry opens the web defaults; an
    /// endpoint naming a host opens its own port).
    package struct Rule: Sendable, Equatable {
        package var pattern: DomainPattern
        package var ports: [PinPort]
        package init(pattern: DomainPattern, ports: [PinPort] = PinPort.webDefaults) {
            self.pattern = pattern; self.ports = ports
        }
    }

    package var rules: [Rule]
    package var patterns: [DomainPattern] { rules.map(\.pattern) }
    /// False when the sandbox has no IPv6: AAAA on an allowed name gets NODATA.
    package var ipv6: Bool
    /// Special-use blocks (private, loopback, ...) the profile explicitly allows as answers.
    package var allowedSpecial: [IPNetwork]
    /// Learn mode: every well-formed question of class IN is forwarded (fresh, one question, any type but zone
    /// transfers), nothing is pinned, the exchange is observed. Malformed queries are still refused.
    package var observe: Bool

    package init(rules: [Rule], ipv6: Bool, allowedSpecial: [IPNetwork] = [], observe: Bool = false) {
        self.rules = rules; self.ipv6 = ipv6; self.allowedSpecial = allowedSpecial; self.observe = observe
    }

    /// The learn-mode policy: no rules, every name forwarded and observed.
    package static func observing(ipv6: Bool) -> GatePolicy { GatePolicy(rules: [], ipv6: ipv6, observe: true) }

    package init(patterns: [DomainPattern], ipv6: Bool, allowedSpecial: [IPNetwork] = []) {
        self.init(rules: patterns.map { Rule(pattern: $0) }, ipv6: ipv6, allowedSpecial: allowedSpecial)
    }

    /// Builds the policy from profile strings: `domains` open the web defaults, `endpoints` (the profile's
    /// `host:port/proto` entries whose host is a name) open their own port. Throws on a pattern or block
    /// that does not parse, naming it.
    package init(domains: [String], endpoints: [(host: String, port: PinPort)] = [], ipv6: Bool,
                allowedSpecial: [String] = []) throws(GatePolicyError) {
        var rules: [Rule] = []
        for text in domains {
            guard let pattern = DomainPattern(text) else { throw GatePolicyError(text: text, what: "domain pattern") }
            rules.append(Rule(pattern: pattern))
        }
        for (host, port) in endpoints {
            guard let pattern = DomainPattern(host) else { throw GatePolicyError(text: host, what: "endpoint host name") }
            rules.append(Rule(pattern: pattern, ports: [port]))
        }
        var blocks: [IPNetwork] = []
        for text in allowedSpecial {
            guard let block = IPNetwork(text) else { throw GatePolicyError(text: text, what: "address block") }
            blocks.append(block)
        }
        self.init(rules: rules, ipv6: ipv6, allowedSpecial: blocks)
    }

    package enum Decision: Equatable, Sendable {
        /// Not a query we answer at all (a response, garbage): drop silently.
        case drop
        /// Answer locally with this rcode and no data; `reason` goes to the denial report when set.
        case refuse(rcode: UInt8, reason: String)
        /// Name not in the profile: NXDOMAIN, never forwarded.
        case notAllowed
        /// Allowed name, but a type we do not forward (or AAAA without IPv6): NOERROR, no data.
        case noData
        /// Allowed name and A/AAAA: resolve upstream with a fresh query for this (lowercased) question, and
        /// pin the answers on `ports` (the union over every rule the name matches).
        case resolve(DNSQuestion, ports: [PinPort])
    }

    package func allows(_ name: DNSName) -> Bool { rules.contains { $0.pattern.matches(name) } }

    /// What an answer for `name` opens: every matching rule's ports, in order, without repeats.
    package func ports(for name: DNSName) -> [PinPort] {
        var out: [PinPort] = []
        for rule in rules where rule.pattern.matches(name) {
            for port in rule.ports where !out.contains(port) { out.append(port) }
        }
        return out
    }

    package func decide(_ query: DNSMessage) -> Decision {
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
        if observe {
            // Zone transfers and OPT as a question type make no sense from a sandbox: refused, like malformed input.
            guard ![DNSType.opt, 251, 252].contains(question.type) else {
                return .refuse(rcode: DNSRcode.refused, reason: "type \(DNSType.name(question.type))")
            }
            return .resolve(DNSQuestion(name: question.name.lowercased(), type: question.type), ports: [])
        }
        let ports = ports(for: question.name)
        guard !ports.isEmpty else { return .notAllowed }
        switch question.type {
        case DNSType.a: return .resolve(DNSQuestion(name: question.name.lowercased(), type: DNSType.a), ports: ports)
        case DNSType.aaaa where ipv6: return .resolve(DNSQuestion(name: question.name.lowercased(), type: DNSType.aaaa), ports: ports)
        default: return .noData
        }
    }

    /// Nil when an answer address may be pinned; otherwise why not ("loopback", ...).
    package func refusal(for address: IPAddress) -> String? {
        guard let use = address.specialUse else { return nil }
        return allowedSpecial.contains { $0.contains(address) } ? nil : use
    }
}

package struct GatePolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    package var text: String
    package var what: String
    package var description: String { "not a valid \(what): \(text)" }
}

/// A transport port an answer's addresses are opened for.
package struct PinPort: Hashable, Sendable, CustomStringConvertible {
    package enum Proto: String, Sendable, Hashable { case tcp, udp }
    package var proto: Proto
    package var port: UInt16
    package init(_ proto: Proto, _ port: UInt16) { self.proto = proto; self.port = port }
    package var description: String { "\(proto.rawValue)/\(port)" }
    /// What a `domains:` entry opens (the Firewall's `SessionFirewall.Ports.webDefaults`).
    package static let webDefaults = [PinPort(.tcp, 443), PinPort(.tcp, 80)]
}
