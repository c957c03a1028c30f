import CagentCapture
import CagentDNS
import CagentStore

// Learn mode's network observations as the store's events: the bridge `cagent learn` feeds its Recorder with.
// The capture and gate types stay free of the store (and of GRDB); this is the only place that knows both.

extension DNSMessageSeen {
    /// `.dns(DNSObservation)`: names and answer values as sandbox text, types and rcodes as mnemonics.
    public var observedEvent: ObservedEvent {
        .dns(DNSObservation(
            time: Nanoseconds(time * 1e9), question: RawText(name), type: DNSType.name(type), isResponse: isResponse,
            rcode: rcode.map(DNSRcode.name) ?? "",
            answers: answers.map { DNSAnswer(name: RawText($0.name), type: DNSType.name($0.type), data: RawText($0.value), ttl: $0.ttl) },
            resolver: resolver?.description ?? "",
            source: source == .gate ? .gate : .pcap))
    }
}

extension FlowAttributor.Finding {
    /// `.flow(FlowObservation)`: named by DNS or SNI (nil for a direct-IP finding); learn mode's accepted flows
    /// are `observed`, what it still drops (metadata, LAN, the host) `blocked`.
    public var observedEvent: ObservedEvent {
        .flow(FlowObservation(
            time: Nanoseconds(flow.time * 1e9), proto: flow.protoName, address: flow.destination.description,
            port: flow.port ?? 0, name: name.map { RawText($0) }, verdict: flow.verdict == .accepted ? .observed : .blocked))
    }
}

/// The gate's observer for `cagent learn`: every exchange straight into the session's Recorder.
public struct RecorderGateObserver: GateObserver {
    public let recorder: Recorder
    public init(recorder: Recorder) { self.recorder = recorder }
    public func observe(_ observation: DNSMessageSeen) { recorder.record(observation.observedEvent) }
}
