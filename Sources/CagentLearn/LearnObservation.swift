import CagentCapture
import CagentCore
import CagentLaunch
import CagentDNS
import CagentNetwork
import CagentEvents
import CagentSandbox
import CagentStore
import CagentTrace
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Gate exchanges to a closure (the event bridge).
struct LearnGateObserver: GateObserver {
    let onSeen: @Sendable (DNSMessageSeen) -> Void
    func observe(_ observation: DNSMessageSeen) { onSeen(observation) }
}

/// Everything learn mode observes around one sandbox, in the order docs/dns-gate.md gives: the network
/// session (learn ruleset), the Recorder, the gate (observing), the flow log, the DNS capture, then the
/// tracer (eBPF: the init pid moved into a fresh cgroup before the plan releases it; seccomp: the listener
/// the agent child passes before its exec). `start` is all-or-nothing; `stop` tears down whatever started
/// and is idempotent (the command's `defer`), `finish` stops in order and records the attributed flows.
/// Every event reaches the recorder through one `LearnEventBridge`.
// @unchecked: the parts are set by start() and cleared by finish()/stop() on the owner's thread; the tracer is in a Mutex.
package final class LearnObservation: @unchecked Sendable {
    package let sessionID: String
    let paths: CagentPaths
    let upstream: UpstreamConfig
    let store: LearnPending<Store>
    let command: [String]
    let secretPaths: [String]
    let backend: TracerBackend
    let workspace: String
    let live: LearnLiveView
    /// `--tracer tracee`: the executable found on PATH.
    package var traceePath: String?
    /// eBPF: the tracer loading since the command started (`start` takes it).
    package var ebpfPreload: LearnEbpfPreload?
    /// What is cut from every recorded argv (docs/security.md, "what cagent keeps").
    package var redaction = ArgvRedaction()

    /// The veth, chains (learn ruleset), gate and flow log (shared with enforce).
    let uplink: Uplink
    /// Rootless mode: instead of `uplink`, the ruleset, gate, flow log and user-mode uplink inside the sandbox's
    /// own namespace (RootlessLearnNetwork); set before `attach`.
    package var rootless = false
    private var rootlessNetwork: RootlessLearnNetwork?
    private(set) var recorder: Recorder?
    private var bridge: LearnEventBridge?
    private var capture: DNSCapture?
    private var cgroup: TraceCgroup?
    private let tracer = Mutex<(any LearnTracer)?>(nil)
    private var initPid: Int32 = 0
    private var stopped = false

    package init(sessionID: String, paths: CagentPaths, upstream: UpstreamConfig, store: LearnPending<Store>, command: [String],
                 rules secretPaths: [String], backend: TracerBackend, workspace: String, live: LearnLiveView) {
        self.sessionID = sessionID; self.paths = paths; self.upstream = upstream; self.store = store
        self.command = command; self.secretPaths = secretPaths; self.backend = backend
        self.workspace = workspace; self.live = live
        uplink = Uplink(sessionID: sessionID, paths: paths)
    }

    /// The sandbox's resolvers: the gateway addresses (every port-53 packet is redirected to the gate anyway).
    package var nameservers: [String] { rootless ? ["127.0.0.1"] : uplink.nameservers }

    /// The launcher's hooks for this observation: `start` before the init is released, the resolv.conf naming
    /// the gate, the seccomp listener. The uplink's host side (lease, chains) starts coming up now, as enforce's.
    package func attach(to launcher: Launcher) {
        launcher.beforeRelease = { [self] pid in try start(initPid: pid) }
        if rootless {
            launcher.finalizePlan = { plan in
                var plan = plan
                plan.setNameservers(["127.0.0.1"])
                return plan
            }
        } else {
            // The host's part (lease, chains) meanwhile: `start` waits for it. Rootless has no host part.
            uplink.prepareAhead(entries: [], mode: .learn)
            launcher.finalizePlan = { [uplink] plan in uplink.resolving(plan) }
        }
        launcher.onListener = { [self] fd in startSeccomp(listener: fd) }
    }

    package func start(initPid pid: Int32) throws {
        initPid = pid
        if rootless { return try startRootless(pid: pid) }
        learnTiming("start")
        let preload = backend == .ebpf ? (ebpfPreload ?? LearnEbpfPreload()) : nil
        if let preload {
            ebpfPreload = preload  // stop() discards it unless taken
            preload.admit(pid: pid)
        }
        do {
            let session = try uplink.open(pid: pid, entries: [], mode: .learn)
            learnTiming("network session")
            // Both of the gate's addresses (resolv.conf lists both: glibc asks the second after a SERVFAIL).
            let gateAddresses = uplink.nameservers
            let gateAddress = gateAddresses.isEmpty ? nil : gateAddresses.joined(separator: ",")
            let recorder = try Recorder(store: store.get(), session: SessionInfo(id: sessionID, kind: "learn", source: "cagent learn (\(backend.rawValue))",
                                                                           command: command.map { RawText($0) }, gate: gateAddress),
                                        rules: FindingRules(secretPaths: secretPaths, gateAddress: gateAddress),
                                        redaction: redaction, batchEvents: 8192)  // small batches: written while the agent runs, a short final flush
            self.recorder = recorder
            let bridge = LearnEventBridge(recorder: recorder, live: live, secretPaths: secretPaths)
            self.bridge = bridge
            learnTiming("recorder")

            // The capture opens on its own thread (its packet ring takes a while) while the gate and the flow
            // log start; every path below waits for it before going on (or tearing down).
            let capture = DNSCapture(interface: session.interface) { event in bridge.captureSaw(event) }
            self.capture = capture
            let captureStart = LearnPending { try capture.start() }
            do {
            let configuration = try uplink.gateConfiguration(policy: .observing(ipv6: session.addresses.gateway6 != nil),
                                                             upstream: upstream)
            try uplink.startGate(configuration) { configuration, firewall in
                Gate(configuration: configuration, pinner: firewall, observer: LearnGateObserver { seen in bridge.gateSaw(seen) })
            }
            learnTiming("gate")

            try uplink.startReader { group in FlowLog.reader(group: group) { flow in bridge.flowLogged(flow) } }
            learnTiming("flows")
            } catch {
                _ = try? captureStart.get()  // stop() tears the capture down: once its start has ended
                throw error
            }
            try captureStart.get()
            learnTiming("capture")


            if backend == .tracee, let traceePath {
                // Tracee follows the tree from the init's pid; the init is held (no plan yet) until Tracee runs.
                let tracer = try TraceeRunner(executable: traceePath, scope: .tree(pid), sink: bridge.traceSink(dropping: pid))
                self.tracer.withLock { $0 = tracer }
            }
            if backend == .ebpf, let preload {
                // The init pid joins the traced cgroup (admitted at the start, beside the network setup) before the
                // plan releases it: nothing in the sandbox has run yet, so this is equivalent to CLONE_INTO_CGROUP.
                // The programs were loaded meanwhile; the init is blocked reading its plan, so the sink is in place
                // before the first record.
                let (cgroup, tracer) = try preload.take()
                self.cgroup = cgroup
                tracer.setSink(bridge.traceSink(dropping: pid))
                self.tracer.withLock { $0 = tracer }
                learnTiming("ebpf")
            }
        } catch {
            stop()
            throw error
        }
    }

    /// Rootless mode (seccomp tracer only): the recorder, then the network inside the sandbox's namespace
    /// with the gate's exchanges (the session's DNS), the flow log and the TLS hello capture feeding the bridge.
    /// DNS goes only through the gate (every port-53 packet is redirected to it).
    private func startRootless(pid: Int32) throws {
        do {
            let gateAddress = "127.0.0.1"
            let recorder = try Recorder(store: store.get(), session: SessionInfo(id: sessionID, kind: "learn", source: "cagent learn (\(backend.rawValue))",
                                                                           command: command.map { RawText($0) }, gate: gateAddress),
                                        rules: FindingRules(secretPaths: secretPaths, gateAddress: gateAddress),
                                        batchEvents: 8192)
            self.recorder = recorder
            let bridge = LearnEventBridge(recorder: recorder, live: live, secretPaths: secretPaths)
            self.bridge = bridge
            let network = RootlessLearnNetwork(upstream: upstream)
            rootlessNetwork = network
            try network.start(pid: pid, observer: LearnGateObserver { seen in bridge.gateSaw(seen) },
                              onFlow: { flow in bridge.flowLogged(flow) }, onCapture: { event in bridge.captureSaw(event) })
            learnTiming("rootless network")
        } catch {
            stop()
            throw error
        }
    }

    /// The seccomp backend: the listener arrives from the agent child, before its exec.
    package func startSeccomp(listener: Int32) {
        // Started before the recorder exists (a failed start): nothing to record into, the listener unserved.
        guard let bridge else { return }
        let tracer = SeccompNotifyTracer(listener: listener, sink: bridge.traceSink(dropping: 0))
        self.tracer.withLock { $0 = tracer }
    }

    package struct Summary {
        package var trace: TraceSummary?
        package var flows: [FlowAttributor.Finding] = []
        package var captureDropped: UInt32 = 0
        package var events = 0
    }

    /// After the agent's tree has exited: stops every source, records the attributed flows, closes the session.
    package func finish() throws -> Summary {
        var summary = Summary()
        learnTiming("finish")
        // Every source stops at once: each drains what is pending (the capture's close alone waits tens of
        // milliseconds for the kernel).
        let current = tracer.withLock { t -> (any LearnTracer)? in let c = t; t = nil; return c }
        let sources = DispatchGroup()
        let capture = capture, uplink = uplink
        if let capture { DispatchQueue.global(qos: .userInitiated).async(group: sources) { capture.stopReading() } }
        DispatchQueue.global(qos: .userInitiated).async(group: sources) { uplink.stopReader() }
        DispatchQueue.global(qos: .userInitiated).async(group: sources) { uplink.stopGate() }
        if let rootlessNetwork { DispatchQueue.global(qos: .userInitiated).async(group: sources) { rootlessNetwork.stopObserving() } }
        if let current { summary.trace = try? current.stop() }
        learnTiming("tracer stopped")
        sources.wait()
        summary.captureDropped = capture?.dropped ?? 0
        let closing = capture
        self.capture = nil
        summary.flows = bridge?.findings() ?? []
        learnTiming("sources stopped")
        // The store's last write, the capture socket's close and the network's teardown are independent: at once.
        let network = DispatchGroup()
        DispatchQueue.global(qos: .userInitiated).async(group: network) { closing?.stop() }
        DispatchQueue.global(qos: .userInitiated).async(group: network) { [self] in tearDownNetwork() }
        defer { network.wait() }
        if let bridge {
            summary.events = try bridge.finish(sessionID: sessionID, findings: summary.flows)
        }
        learnTiming("recorder closed")
        network.wait()
        stop()
        learnTiming("stopped")
        return summary
    }

    /// Removes the session's network and the trace cgroup (once).
    private func tearDownNetwork() {
        rootlessNetwork?.stop()
        do { try uplink.tearDown() } catch {
            FileDescriptorStream.standardError.write("cagent: network teardown: \(error)\n")
        }
        if let cgroup { self.cgroup = nil; try? cgroup.remove() }
    }

    /// Tears down what started (reverse order); idempotent, for every exit path.
    package func stop() {
        if stopped { return }
        stopped = true
        let current = tracer.withLock { t -> (any LearnTracer)? in let c = t; t = nil; return c }
        if let current { _ = try? current.stop() }
        capture?.stop(); uplink.stopReader(); uplink.stopGate()
        if let recorder { try? recorder.close() }
        tearDownNetwork()
        ebpfPreload?.discard()
    }
}
