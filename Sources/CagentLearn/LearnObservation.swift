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

/// `CAGENT_TIMING=1`: a learn session prints a monotonic timestamp at each stage to standard error (where
/// the fixed cost goes; docs/benchmarks.md "Learn mode").
package let learnTimingOn = getenv("CAGENT_TIMING") != nil
package func learnTiming(_ what: String) {
    guard learnTimingOn else { return }
    var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t)
    let micros = String(Int(t.tv_nsec) / 1000)
    let padded = String(repeating: "0", count: max(0, 6 - micros.count)) + micros
    FileDescriptorStream.standardError.write("T \(Int(t.tv_sec) % 1000).\(padded) \(what)\n")
}

/// A value computed on another thread from now on; `get` waits for it (and rethrows its error).
package final class LearnPending<T>: @unchecked Sendable {
    /// Waits for the work to end (an event, not a lock); `outcome` is written before the signal.
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<T, Error> = .failure(CagentError(stage: "learn", "the pending work has not ended"))
    private var waited = false

    package init(_ work: @escaping @Sendable () throws -> T) {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            outcome = Result { try work() }
            done.signal()
        }
    }

    /// From one thread at a time (the command's).
    package func get() throws -> T {
        if !waited { done.wait(); waited = true }
        return try outcome.get()
    }
}

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

    private(set) var session: NetworkSession?
    private(set) var recorder: Recorder?
    private var bridge: LearnEventBridge?
    private var gate: Gate?
    private var flows: NflogReader?
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
    }

    /// The sandbox's resolvers: the gateway addresses (every port-53 packet is redirected to the gate anyway).
    package var nameservers: [String] {
        guard let session else { return [] }
        return [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0?.description }
    }

    /// The launcher's hooks for this observation: `start` before the init is released, the resolv.conf naming
    /// the gate, the seccomp listener.
    package func attach(to launcher: Launcher) {
        launcher.beforeRelease = { [self] pid in try start(initPid: pid) }
        launcher.finalizePlan = { [self] plan in
            var plan = plan
            let resolv = nameservers.map { "nameserver \($0)\n" }.joined() + "options edns0\n"
            plan.steps = plan.steps.map { step in
                if case .file(let path, let mode, _) = step.operation, path == "/etc/resolv.conf" {
                    return .init(.file(path: path, mode: mode, contents: resolv), step.reason)
                }
                return step
            }
            return plan
        }
        launcher.onListener = { [self] fd in startSeccomp(listener: fd) }
    }

    package func start(initPid pid: Int32) throws {
        initPid = pid
        learnTiming("start")
        let preload = backend == .ebpf ? (ebpfPreload ?? LearnEbpfPreload()) : nil
        if let preload {
            ebpfPreload = preload  // stop() discards it unless taken
            preload.admit(pid: pid)
        }
        do {
            let id = sessionID, paths = paths
            let session = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") {
                try NetworkSession.setUp(sessionID: id, sandbox: NetworkNamespace(pid: pid), entries: [], paths: paths, mode: .learn)
            }
            self.session = session
            learnTiming("network session")
            // Both of the gate's addresses (resolv.conf lists both: glibc asks the second after a SERVFAIL).
            let gateAddresses = [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0?.description }
            let gateAddress = gateAddresses.isEmpty ? nil : gateAddresses.joined(separator: ",")
            let recorder = try Recorder(store: store.get(), session: SessionInfo(id: sessionID, kind: "learn", source: "cagent learn (\(backend.rawValue))",
                                                                           command: command.map { RawText($0) }, gate: gateAddress),
                                        rules: FindingRules(secretPaths: secretPaths, gateAddress: gateAddress),
                                        batchEvents: 8192)  // small batches: written while the agent runs, a short final flush
            self.recorder = recorder
            let bridge = LearnEventBridge(recorder: recorder, live: live, secretPaths: secretPaths)
            self.bridge = bridge
            learnTiming("recorder")

            // The capture opens on its own thread (its packet ring takes a while) while the gate and the flow
            // log start; every path below waits for it before going on (or tearing down).
            let capture = DNSCapture(interface: session.interface) { event in bridge.captureSaw(event) }
            self.capture = capture
            // Waits for the capture's start to end (an event, not a lock); its error is set before the signal.
            let captureStarted = DispatchSemaphore(value: 0)
            let captureError = Mutex<Error?>(nil)
            DispatchQueue.global(qos: .userInitiated).async {
                do { try capture.start() } catch { captureError.withLock { $0 = error } }
                captureStarted.signal()
            }
            do {
            let gate = Gate(configuration: .init(listen: [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 },
                                                 port: session.gatePort, policy: .observing(ipv6: session.addresses.gateway6 != nil),
                                                 upstream: upstream),
                            pinner: session.firewall,
                            observer: LearnGateObserver { seen in bridge.gateSaw(seen) })
            try gate.start()
            self.gate = gate
            learnTiming("gate")

            let flows = FlowLog.reader(group: session.nflogGroup) { flow in bridge.flowLogged(flow) }
            try flows.start()
            self.flows = flows
            learnTiming("flows")
            } catch {
                captureStarted.wait()
                throw error
            }
            captureStarted.wait()
            if let error = captureError.withLock({ $0 }) { throw error }
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
        let capture = capture, flows = flows, gate = gate
        if let capture { DispatchQueue.global(qos: .userInitiated).async(group: sources) { capture.stopReading() } }
        if let flows { DispatchQueue.global(qos: .userInitiated).async(group: sources) { flows.stop() } }
        if let gate { DispatchQueue.global(qos: .userInitiated).async(group: sources) { gate.stop() } }
        if let current { summary.trace = try? current.stop() }
        learnTiming("tracer stopped")
        sources.wait()
        summary.captureDropped = capture?.dropped ?? 0
        let closing = capture
        self.capture = nil; self.flows = nil; self.gate = nil
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
        if let session {
            self.session = nil
            do { _ = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") { try session.tearDown() } } catch {
                FileDescriptorStream.standardError.write("cagent: network teardown: \(error)\n")
            }
        }
        if let cgroup { self.cgroup = nil; try? cgroup.remove() }
    }

    /// Tears down what started (reverse order); idempotent, for every exit path.
    package func stop() {
        if stopped { return }
        stopped = true
        let current = tracer.withLock { t -> (any LearnTracer)? in let c = t; t = nil; return c }
        if let current { _ = try? current.stop() }
        capture?.stop(); flows?.stop(); gate?.stop()
        if let recorder { try? recorder.close() }
        tearDownNetwork()
        ebpfPreload?.discard()
    }
}

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

/// Learn mode's eBPF tracer and its cgroup, loaded on a thread of their own while the command plans the
/// sandbox and sets up its network (loading, verifying and relocating the programs takes ~30 ms that would
/// otherwise come before the agent starts). Attached but idle: the cgroup holds no task until `admit` moves
/// the sandbox's init into it (also on its own thread: a cgroup migration waits for an RCU grace period),
/// and the init runs nothing before its plan, which comes after `take` (the real sink is set by then).
/// Exactly one of `take` or `discard` owns the result; an admitted init is moved back out (to the root
/// cgroup) before the cgroup is removed on a failure path, since the init is still alive then.
package final class LearnEbpfPreload: @unchecked Sendable {
    // Each semaphore waits for an event (the cgroup made, the programs loaded, the init moved), not a lock:
    // its result is written before the signal and read after the wait.
    private let created = DispatchSemaphore(value: 0)
    private let loaded = DispatchSemaphore(value: 0)
    private let admitted = DispatchSemaphore(value: 0)
    private var cgroup: Result<TraceCgroup, Error> = .failure(LearnEbpfPreload.notYet)       // set before `created`
    private var tracer: Result<EbpfTracer, Error> = .failure(LearnEbpfPreload.notYet)        // set before `loaded`
    private var admission: Result<Int32, Error> = .failure(LearnEbpfPreload.notYet)          // set before `admitted`
    private var loadWaited = false, admitWaited = false, admitting = false, taken = false

    private static var notYet: CagentError { CagentError(stage: "trace cgroup", "the eBPF preload has not finished") }

    package init() {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            learnTiming("preload begin")
            let made = Result { try TraceCgroup() }
            cgroup = made
            created.signal()
            switch made {
            case .success(let cgroup):
                tracer = Result { try EbpfTracer(cgroup: cgroup, sink: TraceSink(events: { _ in }), counts: false) }
            case .failure(let error):
                tracer = .failure(error)
            }
            learnTiming("preload end")
            loaded.signal()
        }
    }

    private func waitLoaded() -> Result<EbpfTracer, Error> {
        if !loadWaited { loaded.wait(); loadWaited = true }
        return tracer
    }

    /// The admission's outcome (nil: none was asked for).
    private func waitAdmitted() -> Result<Int32, Error>? {
        guard admitting else { return nil }
        if !admitWaited { admitted.wait(); admitWaited = true }
        return admission
    }

    /// nil when the tracer loaded, else why not (the auto choice's probe).
    package func failure() -> String? {
        if case .failure(let error) = waitLoaded() { return "cannot load: \(error)" }
        return nil
    }

    /// Moves `pid` (the sandbox's init, waiting for its plan) into the cgroup as soon as the cgroup exists,
    /// on another thread; `take` waits for it. Once only.
    package func admit(pid: Int32) {
        guard !admitting else { return }
        admitting = true
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            created.wait()
            created.signal()  // for anyone else waiting on the cgroup
            switch cgroup {
            case .success(let cgroup):
                admission = Result { try Self.write(pid, into: cgroup.path); return pid }
            case .failure(let error):
                admission = .failure(error)
            }
            admitted.signal()
        }
    }

    /// The loaded tracer and its cgroup (with the init in it, when admitted), now the caller's; or the error
    /// of the load or the admission, with everything already released.
    package func take() throws -> (TraceCgroup, EbpfTracer) {
        let loadedTracer = waitLoaded()
        let admission = waitAdmitted()
        taken = true
        do {
            let tracer = try loadedTracer.get()
            if let admission { _ = try admission.get() }
            guard case .success(let cgroup) = cgroup else { throw CagentError(stage: "trace cgroup", "no cgroup") }
            return (cgroup, tracer)
        } catch {
            release(tracer: try? loadedTracer.get(), admission: admission)
            throw error
        }
    }

    /// Stops and removes what nobody took (an exit before the sandbox started). Idempotent.
    package func discard() {
        guard !taken else { return }
        taken = true
        let loadedTracer = waitLoaded()
        release(tracer: try? loadedTracer.get(), admission: waitAdmitted())
    }

    private func release(tracer: EbpfTracer?, admission: Result<Int32, Error>?) {
        if let tracer { _ = try? tracer.stop() }
        guard case .success(let cgroup) = cgroup else { return }
        if case .success(let pid) = admission, let root = TraceCgroup.cgroup2Mount() {
            try? Self.write(pid, into: root)  // the init is alive (the launcher ends it): out, so the cgroup can go
        }
        try? cgroup.remove()
    }

    private static func write(_ pid: Int32, into directory: String) throws {
        let procs = open(directory + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procs >= 0 else { throw CagentError.system("trace cgroup", "cannot open \(directory)/cgroup.procs") }
        let text = Array("\(pid)\n".utf8)
        let written = text.withUnsafeBytes { Glibc.write(procs, $0.baseAddress, $0.count) }
        let code = errno
        close(procs)
        guard written == text.count else {
            throw CagentError(stage: "trace cgroup", "cannot move pid \(pid) into \(directory)", errno: code)
        }
    }
}

/// The live lines (standard error, escaped): one per new domain, direct-IP flow, dropped flow, secret attempt
/// and new top-level directory; the summary at the end.
package final class LearnLiveView: Sendable {
    package let quiet: Bool
    package let home: String
    private struct Seen { var domains: Set<String> = []; var directIP: Set<String> = []; var secrets: Set<String> = []
                          var directories: Set<String> = []; var blocked: Set<String> = []; var binds: Set<String> = []
                          /// tcp/443 flows no DNS answer named when their SYN was logged: the ClientHello comes later.
                          var awaitingHello: Set<String> = []
                          var lastDirectory: [UInt8] = [] }
    private let seen = Mutex(Seen())

    package init(quiet: Bool, home: String) { self.quiet = quiet; self.home = home }

    package func say(_ text: String) { FileDescriptorStream.standardError.write("cagent learn: \(TerminalEscape.escape(text))\n") }
    private func line(_ text: String) { if !quiet { say(text) } }

    package func domain(_ name: String) {
        if seen.withLock({ $0.domains.insert(name).inserted }) { line("domain \(name)") }
    }

    package func flow(_ finding: FlowAttributor.Finding) {
        let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
        if finding.flow.verdict == .dropped {
            if seen.withLock({ $0.blocked.insert(key).inserted }) { line("blocked \(key) (metadata, host or LAN)") }
        } else if finding.basis == .directIP {
            if finding.flow.proto == 6 && finding.flow.port == 443 {
                // Its server name may still come: decided at the end (`summary`).
                seen.withLock { _ = $0.awaitingHello.insert(key) }
            } else if seen.withLock({ $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
    }

    package func bind(_ bind: BindObservation) {
        let host = bind.address.contains(":") ? "[\(bind.address)]" : bind.address
        let key = "\(bind.proto) \(host):\(bind.port)"
        let program = String(decoding: bind.program.bytes, as: UTF8.self)
        if seen.withLock({ $0.binds.insert(key).inserted }) {
            line("bind \(key) by \(program)" + (bind.result == 0 ? "" : " (\(Errno.name(bind.result)))"))
        }
    }

    package func secret(_ pattern: String, _ access: FileAccess) {
        let path = String(decoding: access.path.bytes, as: UTF8.self)
        if seen.withLock({ $0.secrets.insert(path).inserted }) {
            line("secret \(pattern): \(access.operation.rawValue) \(path) (\(access.result == 0 ? "ok" : Errno.name(access.result)))")
        }
    }

    /// Called for every file event: the common case (the same top-level directory as the previous event)
    /// compares bytes and allocates nothing.
    package func file(_ access: FileAccess) {
        let bytes = access.path.bytes
        guard bytes.first == UInt8(ascii: "/") else { return }
        // A top-level *directory*: the path goes below it (a missing `/x` is a file lookup, not a directory).
        var start = 1
        while start < bytes.count && bytes[start] == UInt8(ascii: "/") { start += 1 }
        var stop = start
        while stop < bytes.count && bytes[stop] != UInt8(ascii: "/") { stop += 1 }
        guard stop > start, stop + 1 < bytes.count else { return }  // something after the separator
        let top = bytes[start..<stop]
        let name: String? = seen.withLock { seen in
            if seen.lastDirectory.elementsEqual(top) { return nil }
            seen.lastDirectory = Array(top)
            let name = "/" + String(decoding: top, as: UTF8.self)
            return seen.directories.insert(name).inserted ? name : nil
        }
        if let name { line("directory \(name)") }
    }

    package func summary(_ summary: LearnObservation.Summary, sessionID: String, status: Int32, scratch: String?, followUp: LearnFollowUp = LearnFollowUp()) {
        // TLS flows held back for their ClientHello: a direct IP only if nothing named them by the end.
        for finding in summary.flows where finding.flow.verdict == .accepted && finding.basis == .directIP {
            let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
            if seen.withLock({ $0.awaitingHello.contains(key) && $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
        let counts = seen.withLock { ($0.domains.count, $0.directIP.count, $0.secrets.count, $0.directories.count, $0.blocked.count, $0.binds.count) }
        var text = "done (agent exit \(status)): \(counts.0) domains, \(counts.1) direct-IP flows, \(counts.4) blocked, \(counts.2) secret attempts, \(counts.3) top-level directories, \(counts.5) binds"
        if let trace = summary.trace {
            text += "; \(trace.backend.rawValue): \(trace.syscalls) syscalls traced, \(trace.lost) lost"
        }
        if summary.captureDropped > 0 { text += "; the DNS capture dropped \(summary.captureDropped) packets" }
        say(text)
        if let scratch { say("scratch layer kept: \(scratch) (an ext4 image, root's: sudo mount -o loop,ro IMAGE DIR to look inside)") }
        say("session \(sessionID): \(followUp.command("report \(sessionID)"))")
        // The next step of the loop: a profile from what the session did (docs/profiles.md "Proposals").
        say("propose a profile from it: \(followUp.command("profile propose --session \(sessionID)")) -o profile.yaml")
    }
}

/// How the commands the learn summary prints reach the session's database as typed: `--db` when one was
/// named, `--user UID` when the database is another user's than a plain invocation's default (`learn --user`),
/// with `sudo` first when learn itself ran under sudo (reading another user's database takes root).
package struct LearnFollowUp: Equatable {
    package var database: String?
    package var user: UInt32?
    package var sudo = false

    package init(database: String? = nil, user: UInt32? = nil, sudo: Bool = false) {
        self.database = database; self.user = user; self.sudo = sudo
    }

    /// "cagent report ID" or "sudo cagent report ID --user 1001": `words` (the command and its arguments),
    /// then what finds the database.
    package func command(_ words: String) -> String {
        var text = (sudo ? "sudo " : "") + "cagent " + words
        if let user { text += " --user \(user)" }
        if let database { text += " --db " + shellQuoted(database) }
        return text
    }
}

/// A word as a shell reads it back: bare when plain, else single-quoted.
package func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./=:,+@%".unicodeScalars.contains($0)
    }
    return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}
