import CagentDNS
import CagentNetwork

/// Names learn-mode flows. An address gets the name the sandbox asked for from the session's DNS answers (the
/// latest answer containing it wins; the CNAME chain between is kept), else the server name of a TLS
/// ClientHello on that address and port, else the flow is a direct-IP finding (an address the sandbox knew
/// without asking DNS: hard-coded, or resolved some way the capture did not see).
///
/// Fed in any order (an SNI arrives after its flow's SYN was logged); `findings()` answers from everything fed
/// so far. Pure and bounded by what is fed; the caller runs it at the end of a session or periodically.
public struct FlowAttributor: Sendable {
    /// What a flow was attributed through.
    public enum Basis: String, Sendable { case dns, sni, directIP = "direct-ip" }

    public struct Finding: Sendable, Equatable {
        public var flow: FlowSeen
        public var basis: Basis
        /// The name asked (dns) or announced (sni); nil for a direct-IP finding.
        public var name: String?
        /// dns: the CNAME targets from `name` to the name owning the address, in order.
        public var chain: [String]
        /// The ClientHello's server name on this address and port, when one was seen (also when dns named it).
        public var serverName: String?
        /// How many flows the log recorded with this protocol, address, port and verdict.
        public var flows: Int = 1
    }

    struct Named { var name: String; var chain: [String]; var time: Double }
    var byAddress: [IPAddress: Named] = [:]
    var bySNI: [IPAddress: [UInt16: (name: String, time: Double)]] = [:]
    var flows: [FlowSeen] = []

    public init() {}

    /// A DNS answer (from the gate or the capture): each address in it now belongs to the question's name.
    public mutating func add(_ observation: DNSMessageSeen) {
        guard observation.isResponse, observation.rcode == 0 else { return }
        let chain = observation.answers.filter { $0.type == DNSType.cname }.map(\.value)
        for answer in observation.answers {
            guard let address = answer.address else { continue }
            if let known = byAddress[address], known.time > observation.time { continue }
            byAddress[address] = Named(name: observation.name, chain: chain, time: observation.time)
        }
    }

    public mutating func add(_ hello: ServerNameSeen) {
        if let known = bySNI[hello.destination]?[hello.port], known.time > hello.time { return }
        bySNI[hello.destination, default: [:]][hello.port] = (hello.serverName, hello.time)
    }

    public mutating func add(_ flow: FlowSeen) { flows.append(flow) }

    public mutating func add(_ event: CaptureEvent) {
        switch event {
        case .dns(let observation): add(observation)
        case .tls(let hello): add(hello)
        }
    }

    /// One finding per distinct (protocol, address, port, verdict), in the order first seen, with the number of
    /// flows logged for it.
    public func findings() -> [Finding] {
        var index: [FlowSeen: Int] = [:]
        var out: [Finding] = []
        for flow in flows {
            var key = flow
            key.time = 0
            if let at = index[key] { out[at].flows += 1; continue }
            index[key] = out.count
            out.append(attribute(flow))
        }
        return out
    }

    public func attribute(_ flow: FlowSeen) -> Finding {
        let sni = flow.port.flatMap { bySNI[flow.destination]?[$0]?.name }
        if let named = byAddress[flow.destination] {
            return Finding(flow: flow, basis: .dns, name: named.name, chain: named.chain, serverName: sni)
        }
        if let sni { return Finding(flow: flow, basis: .sni, name: sni, chain: [], serverName: sni) }
        return Finding(flow: flow, basis: .directIP, name: nil, chain: [], serverName: nil)
    }
}
