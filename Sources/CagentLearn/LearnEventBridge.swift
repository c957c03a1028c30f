import CagentCapture
import CagentDNS
import CagentEvents
import CagentStore
import CagentTrace
import Synchronization

/// The single place learn mode's events enter the Recorder: the gate's exchanges, the DNS capture's packets,
/// the flow log's flows and the tracer's events, each also handed to the flow attributor and the live view.
/// Called from the gate, nflog, pcap and tracer threads at once.
package final class LearnEventBridge: Sendable {
    let recorder: Recorder
    let live: LearnLiveView
    /// For the live view's secret lines (the recorder applies its own rules to what it stores).
    let rules: FindingRules
    private let attributor = Mutex(FlowAttributor())
    /// The tracer's connects, merged with the attributed flows at the end (`LearnFlowMerge`).
    private let connects = Mutex(TracedConnects())

    init(recorder: Recorder, live: LearnLiveView, secretPaths: [String]) {
        self.recorder = recorder; self.live = live; self.rules = FindingRules(secretPaths: secretPaths)
    }

    /// An exchange through the gate.
    func gateSaw(_ seen: DNSMessageSeen) {
        recorder.record(seen.observedEvent)
        attributor.withLock { $0.add(seen) }
        live.domain(seen.name)
    }

    /// A packet of the DNS capture (DNS or a TLS ClientHello).
    func captureSaw(_ event: CaptureEvent) {
        if case .dns(let seen) = event { recorder.record(seen.observedEvent) }
        attributor.withLock { $0.add(event) }
    }

    /// A new flow the firewall logged: attributed now for the live view, recorded at the end (`finish`).
    func flowLogged(_ flow: FlowSeen) {
        let finding = attributor.withLock { state -> FlowAttributor.Finding in state.add(flow); return state.attribute(flow) }
        live.flow(finding)
    }

    /// Tracer events to the recorder and the live view. cagent-init's own setup (mounts through /oldroot) is
    /// not the agent's behaviour: eBPF sees it (the init is in the cgroup), so its pid's file events are dropped.
    func traceSink(dropping initPid: Int32) -> TraceSink {
        let oldroot = Array("/oldroot".utf8), newroot = Array("/newroot".utf8)
        return TraceSink(events: { [self] event in
            switch event {
            case .file(let access):
                if initPid != 0 && access.pid == initPid { return }
                if access.path.bytes.starts(with: oldroot) || access.path.bytes.starts(with: newroot) { return }
                if let pattern = rules.secret(access.path) { live.secret(pattern, access) }
                live.file(access)
            case .flow(let flow):
                // Recorded now (a crash loses nothing); named at the end from the flow log's attribution. A UDP
                // connect is held until then: a flow only if the network saw its traffic (`TracedConnects.holds`).
                connects.withLock { $0.add(flow) }
                if TracedConnects.holds(flow) { return }
            case .bind(let bind):
                live.bind(bind)
            default:
                break
            }
            recorder.record(event)
        })
    }

    /// The flows as attributed so far.
    func findings() -> [FlowAttributor.Finding] { attributor.withLock { $0.findings() } }

    /// After every source stopped: the attributed flows merged with the tracer's connects into the recorder,
    /// the connects the firewall dropped marked blocked, the session closed. Returns the events committed.
    func finish(sessionID: String, findings: [FlowAttributor.Finding]) throws -> Int {
        let traced = connects.withLock { $0 }
        let merged = LearnFlowMerge.merge(findings: findings, connects: traced)
        for event in merged.events { recorder.record(event) }
        try recorder.flush()
        try recorder.store.markFlowsBlocked(session: sessionID, merged.blocked.map {
            ($0.proto, $0.address, $0.port, $0.program, $0.result)
        })
        try recorder.close()
        return recorder.committed
    }
}
