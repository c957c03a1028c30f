import CagentCapture
import CagentDNS
import CagentNetwork
import CagentEvents
import CagentStore

// Learn mode's network observations as the store's events (`LearnEventBridge` records them). The capture and
// gate types stay free of the store (and of GRDB); this module is the only place that knows both.

extension DNSMessageSeen {
    /// `.dns(DNSObservation)`: names and answer values as sandbox text, types and rcodes as mnemonics.
    package var observedEvent: ObservedEvent {
        .dns(DNSObservation(
            time: Nanoseconds(time * 1e9), question: RawText(name), type: DNSType.name(type), isResponse: isResponse,
            rcode: rcode.map(DNSRcode.name) ?? "",
            answers: answers.map { DNSAnswer(name: RawText($0.name), type: DNSType.name($0.type), data: RawText($0.value), ttl: $0.ttl) },
            resolver: resolver?.description ?? "",
            source: source == .gate ? .gate : .pcap))
    }
}

extension FlowAttributor.Basis {
    /// How the store says the name was learned; nil for a direct-IP finding.
    package var nameSource: FlowNameSource? {
        switch self {
        case .dns: return .dns
        case .sni: return .sni
        case .directIP: return nil
        }
    }
}

extension FlowAttributor.Finding {
    /// `.flow(FlowObservation)` as the network saw it (no program): named by DNS or SNI with that source (nil for a
    /// direct-IP finding); learn mode's accepted flows are `observed`, what it still drops (metadata, LAN, the
    /// host) `blocked`. `LearnFlowMerge` uses this when no tracer connect matches the flow.
    package var observedEvent: ObservedEvent {
        .flow(FlowObservation(
            time: Nanoseconds(flow.time * 1e9), proto: flow.protoName, address: flow.destination.description,
            port: flow.port ?? 0, name: name.map { RawText($0) }, nameSource: basis.nameSource,
            verdict: flow.verdict == .accepted ? .observed : .blocked, connections: Int64(max(1, flows))))
    }
}

/// A flow's identity across sources: protocol, destination, port. An IPv4-mapped IPv6 address (a dual-stack
/// socket's connect) is the IPv4 address the firewall saw.
package struct FlowEndpoint: Hashable, Sendable {
    package var proto: String
    package var address: String
    package var port: UInt16

    package init(proto: String, address: String, port: UInt16) {
        self.proto = proto; self.port = port
        self.address = FlowObservation.canonicalAddress(IPAddress(address)?.description ?? address)
    }
}

/// The tracer's connects of a session, summarised for the merge at its end: per flow, who connected and with
/// what result (one entry per distinct program and result, in the order first seen). Bounded by distinct
/// flows times programs, not by connections.
package struct TracedConnects: Sendable {
    package struct Connector: Sendable, Equatable {
        package var program: RawText
        package var result: Int32
        /// The latest process seen making it.
        package var pid: Int32
        /// The address as the tracer recorded it (the key of its row in the store).
        package var address: String
        /// Connects held back, not recorded yet (`holds`): recorded at the end only if the network saw traffic.
        package var held: Int64 = 0
    }

    package private(set) var byEndpoint: [FlowEndpoint: [Connector]] = [:]

    package init() {}

    /// Whether a connect is held back instead of recorded as it happens: a UDP connect sends nothing (glibc's
    /// getaddrinfo connects a UDP socket to every candidate address only to pick a source address), so it is a
    /// flow only once the flow log sees its traffic. Port 53 excepted: DNS goes to the gate, which the flow log
    /// never sees, and the capture and the gate record it.
    package static func holds(_ flow: FlowObservation) -> Bool { flow.proto == "udp" && flow.port != 53 }

    package mutating func add(_ flow: FlowObservation) {
        let endpoint = FlowEndpoint(proto: flow.proto, address: flow.address, port: flow.port)
        var connectors = byEndpoint[endpoint] ?? []
        let held: Int64 = Self.holds(flow) ? max(0, flow.connections) : 0
        if let index = connectors.firstIndex(where: { $0.program == flow.program && $0.result == flow.result }) {
            connectors[index].pid = flow.pid
            connectors[index].held &+= held
        } else {
            connectors.append(Connector(program: flow.program, result: flow.result, pid: flow.pid, address: flow.address, held: held))
        }
        byEndpoint[endpoint] = connectors
    }
}

/// The tracer's rows of a flow the firewall dropped: `Store.markFlowsBlocked` turns them `blocked` at the end
/// of the session, so a blocked flow is one row (the tracer's, with its program), not two.
package struct BlockedConnect: Sendable, Equatable {
    package var proto: String
    package var address: String
    package var port: UInt16
    package var program: RawText
    package var result: Int32
}

/// Learn mode's two views of a flow as one fact in the store. The tracer's connects are recorded as they
/// happen (which program, which result; named then from the DNS answers recorded before them), except UDP
/// connects (`TracedConnects.holds`); the flow log and the capture know, by the end, the firewall's verdict and
/// how the destination was named (the DNS answer before the flow, SNI, or neither: a direct IP). For each
/// attributed flow:
/// - the tracer saw a connect to it: the name and its source (none for a direct IP) and the logged flows as
///   packets go onto the tracer's rows (one event per program and result; the held UDP connects as its
///   connections, a TCP connect adds none), so the flow stays one row per program; a dropped flow's tracer rows
///   are listed in `blocked`, for `Store.markFlowsBlocked`;
/// - no connect seen (a tracer that missed it, a sendto without connect): the network's own row (no program).
/// A held UDP connect the network never saw is no flow and is not recorded.
package enum LearnFlowMerge {
    package static func events(findings: [FlowAttributor.Finding], connects: TracedConnects) -> [ObservedEvent] {
        merge(findings: findings, connects: connects).events
    }

    package static func merge(findings: [FlowAttributor.Finding], connects: TracedConnects)
        -> (events: [ObservedEvent], blocked: [BlockedConnect]) {
        var events: [ObservedEvent] = []
        var blocked: [BlockedConnect] = []
        for finding in findings {
            let endpoint = FlowEndpoint(proto: finding.flow.protoName, address: finding.flow.destination.description,
                                        port: finding.flow.port ?? 0)
            guard let connectors = connects.byEndpoint[endpoint], !connectors.isEmpty else {
                events.append(finding.observedEvent)
                continue
            }
            // The name (none for a direct IP) goes onto the tracer's rows, and the packets the network logged (at
            // least one per logged flow): `profile propose` keeps a flow only with traffic.
            for connector in connectors {
                events.append(.flow(FlowObservation(
                    time: Nanoseconds(finding.flow.time * 1e9), pid: connector.pid, program: connector.program,
                    proto: endpoint.proto, address: connector.address, port: endpoint.port,
                    name: finding.name.map { RawText($0) }, nameSource: finding.basis.nameSource, verdict: .observed,
                    packets: Int64(max(1, finding.flows)), result: connector.result, connections: connector.held)))
                if finding.flow.verdict == .dropped {
                    blocked.append(BlockedConnect(proto: endpoint.proto, address: connector.address, port: endpoint.port,
                                                  program: connector.program, result: connector.result))
                }
            }
        }
        return (events, blocked)
    }
}
