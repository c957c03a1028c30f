import CagentDNS
import CagentNetwork

/// Names learn-mode flows. An address gets the name the sandbox asked for from the session's DNS answers: the
/// latest answer containing it *before the flow* (a later lookup answering the same address, say 50 names under
/// a wildcard, never renames an earlier flow; the CNAME chain between is kept), else the server name of a TLS
/// ClientHello on that address and port, else the flow is a direct-IP finding (an address the sandbox knew
/// without asking DNS: hard-coded, or resolved some way the capture did not see).
///
/// Not per process: the gate sees a lookup's source address and port only, the sandbox's one address for every
/// process, so the answer chosen is the session's most recent one for that address before the flow.
///
/// Fed in any order (an SNI arrives after its flow's SYN was logged); `findings()` answers from everything fed
/// so far. Pure and bounded by what is fed; the caller runs it at the end of a session or periodically.
package struct FlowAttributor: Sendable {
    /// What a flow was attributed through.
    package enum Basis: String, Sendable { case dns, sni, directIP = "direct-ip" }

    package struct Finding: Sendable, Equatable {
        package var flow: FlowSeen
        package var basis: Basis
        /// The name asked (dns) or announced (sni); nil for a direct-IP finding.
        package var name: String?
        /// dns: the CNAME targets from `name` to the name owning the address, in order.
        package var chain: [String]
        /// The ClientHello's server name on this address and port, when one was seen (also when dns named it).
        package var serverName: String?
        /// How many flows the log recorded with this protocol, address, port and verdict.
        package var flows: Int = 1
    }

    struct Named: Equatable { var name: String; var chain: [String]; var time: Double }
    /// Per address, the answers in time order; a repeat of the latest name is not kept again (it names the same).
    var byAddress: [IPAddress: [Named]] = [:]
    /// Answers kept per address: a spray of distinct names on one address drops its oldest beyond this.
    package static let answersPerAddress = 1024
    var bySNI: [IPAddress: [UInt16: (name: String, time: Double)]] = [:]
    var flows: [FlowSeen] = []

    package init() {}

    /// A DNS answer (from the gate or the capture): each address in it now belongs to the question's name.
    package mutating func add(_ observation: DNSMessageSeen) {
        guard observation.isResponse, observation.rcode == 0 else { return }
        let chain = observation.answers.filter { $0.type == DNSType.cname }.map(\.value)
        for answer in observation.answers {
            guard let address = answer.address else { continue }
            let named = Named(name: observation.name, chain: chain, time: observation.time)
            var history = byAddress[address] ?? []
            // In time order (the gate and the capture feed from their own threads).
            var at = history.count
            while at > 0 && history[at - 1].time > named.time { at -= 1 }
            if at > 0 && history[at - 1].name == named.name && history[at - 1].chain == named.chain { continue }
            history.insert(named, at: at)
            if history.count > Self.answersPerAddress { history.removeFirst(history.count - Self.answersPerAddress) }
            byAddress[address] = history
        }
    }

    package mutating func add(_ hello: ServerNameSeen) {
        if let known = bySNI[hello.destination]?[hello.port], known.time > hello.time { return }
        bySNI[hello.destination, default: [:]][hello.port] = (hello.serverName, hello.time)
    }

    package mutating func add(_ flow: FlowSeen) { flows.append(flow) }

    package mutating func add(_ event: CaptureEvent) {
        switch event {
        case .dns(let observation): add(observation)
        case .tls(let hello): add(hello)
        }
    }

    /// One finding per distinct (protocol, address, port, verdict), in the order first seen, named as its first
    /// flow was, with the number of flows logged for it.
    package func findings() -> [Finding] {
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

    package func attribute(_ flow: FlowSeen) -> Finding {
        let sni = flow.port.flatMap { bySNI[flow.destination]?[$0]?.name }
        // An answer after the flow did not name it: the latest one at or before it did.
        if let named = byAddress[flow.destination]?.last(where: { $0.time <= flow.time }) {
            return Finding(flow: flow, basis: .dns, name: named.name, chain: named.chain, serverName: sni)
        }
        if let sni { return Finding(flow: flow, basis: .sni, name: sni, chain: [], serverName: sni) }
        return Finding(flow: flow, basis: .directIP, name: nil, chain: [], serverName: nil)
    }
}
