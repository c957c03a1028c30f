import CagentCapture
import CagentCore
import CagentLaunch
import CagentDNS
import CagentNetwork
import CagentStore
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// A value behind a mutex (the observation's parts are fed from the gate, nflog, pcap and tracer threads).
final class LearnLocked<T>: @unchecked Sendable {
    private var value: T
    private var mutex = pthread_mutex_t()
    init(_ value: T) { self.value = value; pthread_mutex_init(&mutex, nil) }
    func with<R>(_ body: (inout T) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        return try body(&value)
    }
}

/// Gate exchanges to a closure (the Recorder, the attributor and the live view).
struct LearnGateObserver: GateObserver {
    let onSeen: @Sendable (DNSMessageSeen) -> Void
    func observe(_ observation: DNSMessageSeen) { onSeen(observation) }
}

/// Everything learn mode observes around one sandbox, in the order docs/dns-gate.md gives: the network
/// session (learn ruleset), the Recorder, the gate (observing), the flow log, the DNS capture, then the
/// tracer (eBPF: the init pid moved into a fresh cgroup before the plan releases it; seccomp: the listener
/// the agent child passes before its exec). `start` is all-or-nothing; `stop` tears down whatever started
/// and is idempotent (the command's `defer`), `finish` stops in order and records the attributed flows.
final class LearnObservation: @unchecked Sendable {
    let sessionID: String
    let paths: CagentPaths
    let upstream: UpstreamConfig
    let store: Store
    let command: [String]
    let secretPaths: [String]
    let backend: TracerBackend
    let workspace: String
    let live: LearnLiveView
    /// `--tracer tracee`: the executable found on PATH.
    var traceePath: String?

    private(set) var session: NetworkSession?
    private(set) var recorder: Recorder?
    private var gate: Gate?
    private var flows: NflogReader?
    private var capture: DNSCapture?
    private var cgroup: TraceCgroup?
    private let tracer = LearnLocked<(any LearnTracer)?>(nil)
    private let attributor = LearnLocked(FlowAttributor())
    /// The tracer's connects, merged with the attributed flows at the end (`LearnFlowMerge`).
    private let connects = LearnLocked(TracedConnects())
    private var initPid: Int32 = 0
    private var stopped = false

    init(sessionID: String, paths: CagentPaths, upstream: UpstreamConfig, store: Store, command: [String],
         rules secretPaths: [String], backend: TracerBackend, workspace: String, live: LearnLiveView) {
        self.sessionID = sessionID; self.paths = paths; self.upstream = upstream; self.store = store
        self.command = command; self.secretPaths = secretPaths; self.backend = backend
        self.workspace = workspace; self.live = live
    }

    /// The sandbox's resolvers: the gateway addresses (every port-53 packet is redirected to the gate anyway).
    var nameservers: [String] {
        guard let session else { return [] }
        return [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0?.description }
    }

    func start(initPid pid: Int32) throws {
        initPid = pid
        do {
            let id = sessionID, paths = paths
            let session = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") {
                try NetworkSession.setUp(sessionID: id, sandbox: NetworkNamespace(pid: pid), entries: [], paths: paths, mode: .learn)
            }
            self.session = session
            let gateAddress = session.addresses.gateway4?.description
            let recorder = try Recorder(store: store, session: SessionInfo(id: sessionID, kind: "learn", source: "cagent learn (\(backend.rawValue))",
                                                                           command: command.map { RawText($0) }, gate: gateAddress),
                                        rules: FindingRules(secretPaths: secretPaths, gateAddress: gateAddress))
            self.recorder = recorder
            let live = live, attributor = attributor

            let gate = Gate(configuration: .init(listen: [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 },
                                                 port: session.gatePort, policy: .observing(ipv6: session.addresses.gateway6 != nil),
                                                 upstream: upstream),
                            pinner: session.firewall,
                            observer: LearnGateObserver { seen in
                                recorder.record(seen.observedEvent)
                                attributor.with { $0.add(seen) }
                                live.domain(seen.name)
                            })
            try gate.start()
            self.gate = gate

            let flows = FlowLog.reader(group: session.nflogGroup) { flow in
                let finding = attributor.with { state -> FlowAttributor.Finding in state.add(flow); return state.attribute(flow) }
                live.flow(finding)
            }
            try flows.start()
            self.flows = flows

            let capture = DNSCapture(interface: session.interface) { event in
                if case .dns(let seen) = event { recorder.record(seen.observedEvent) }
                attributor.with { $0.add(event) }
            }
            try capture.start()
            self.capture = capture

            if backend == .tracee, let traceePath {
                // Tracee follows the tree from the init's pid; the init is held (no plan yet) until Tracee runs.
                let tracer = try TraceeRunner(executable: traceePath, scope: .tree(pid), sink: sink(dropping: pid))
                self.tracer.with { $0 = tracer }
            }
            if backend == .ebpf {
                // The init pid joins the traced cgroup before the plan releases it: nothing in the sandbox has run
                // yet, so this is equivalent to CLONE_INTO_CGROUP.
                let cgroup = try TraceCgroup()
                self.cgroup = cgroup
                let tracer = try EbpfTracer(cgroup: cgroup, sink: sink(dropping: pid))
                self.tracer.with { $0 = tracer }
                let procs = open(cgroup.path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
                guard procs >= 0 else { throw CagentError.system("trace cgroup", "cannot open \(cgroup.path)/cgroup.procs") }
                let text = Array("\(pid)\n".utf8)
                let written = text.withUnsafeBytes { write(procs, $0.baseAddress, $0.count) }
                let code = errno
                close(procs)
                guard written == text.count else {
                    throw CagentError(stage: "trace cgroup", "cannot move the sandbox into \(cgroup.path)", errno: code)
                }
            }
        } catch {
            stop()
            throw error
        }
    }

    /// The seccomp backend: the listener arrives from the agent child, before its exec.
    func startSeccomp(listener: Int32) {
        let tracer = SeccompNotifyTracer(listener: listener, sink: sink(dropping: 0))
        self.tracer.with { $0 = tracer }
    }

    /// Events to the recorder and the live view. cagent-init's own setup (mounts through /oldroot) is not the
    /// agent's behaviour: eBPF sees it (the init is in the cgroup), so its pid's file events are dropped.
    private func sink(dropping initPid: Int32) -> TraceSink {
        let recorder = recorder!, live = live, rules = FindingRules(secretPaths: secretPaths), connects = connects
        return TraceSink(events: { event in
            switch event {
            case .file(let access):
                if initPid != 0 && access.pid == initPid { return }
                if access.path.bytes.starts(with: Array("/oldroot".utf8)) || access.path.bytes.starts(with: Array("/newroot".utf8)) { return }
                if let pattern = rules.secret(access.path) { live.secret(pattern, access) }
                live.file(access)
            case .flow(let flow):
                // Recorded now (a crash loses nothing); named at the end from the flow log's attribution.
                connects.with { $0.add(flow) }
            case .bind(let bind):
                live.bind(bind)
            default:
                break
            }
            recorder.record(event)
        })
    }

    struct Summary {
        var trace: TraceSummary?
        var flows: [FlowAttributor.Finding] = []
        var captureDropped: UInt32 = 0
        var events = 0
    }

    /// After the agent's tree has exited: stops every source, records the attributed flows, closes the session.
    func finish() throws -> Summary {
        var summary = Summary()
        let current = tracer.with { t -> (any LearnTracer)? in let c = t; t = nil; return c }
        if let current { summary.trace = try? current.stop() }
        capture?.stop(); summary.captureDropped = capture?.dropped ?? 0; capture = nil
        flows?.stop(); flows = nil
        gate?.stop(); gate = nil
        summary.flows = attributor.with { $0.findings() }
        if let recorder {
            let traced = connects.with { $0 }
            for event in LearnFlowMerge.events(findings: summary.flows, connects: traced) { recorder.record(event) }
            try recorder.close()
            summary.events = recorder.committed
        }
        stop()
        return summary
    }

    /// Tears down what started (reverse order); idempotent, for every exit path.
    func stop() {
        if stopped { return }
        stopped = true
        let current = tracer.with { t -> (any LearnTracer)? in let c = t; t = nil; return c }
        if let current { _ = try? current.stop() }
        capture?.stop(); flows?.stop(); gate?.stop()
        if let recorder { try? recorder.close() }
        if let session {
            do { _ = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") { try session.tearDown() } } catch {
                FileDescriptorStream.standardError.write("cagent: network teardown: \(error)\n")
            }
        }
        if let cgroup { try? cgroup.remove() }
    }
}

/// The live lines (standard error, escaped): one per new domain, direct-IP flow, dropped flow, secret attempt
/// and new top-level directory; the summary at the end.
final class LearnLiveView: @unchecked Sendable {
    let quiet: Bool
    let home: String
    private struct Seen { var domains: Set<String> = []; var directIP: Set<String> = []; var secrets: Set<String> = []
                          var directories: Set<String> = []; var blocked: Set<String> = []; var binds: Set<String> = []
                          /// tcp/443 flows no DNS answer named when their SYN was logged: the ClientHello comes later.
                          var awaitingHello: Set<String> = [] }
    private let seen = LearnLocked(Seen())

    init(quiet: Bool, home: String) { self.quiet = quiet; self.home = home }

    func say(_ text: String) { FileDescriptorStream.standardError.write("cagent learn: \(TerminalEscape.escape(text))\n") }
    private func line(_ text: String) { if !quiet { say(text) } }

    func domain(_ name: String) {
        if seen.with({ $0.domains.insert(name).inserted }) { line("domain \(name)") }
    }

    func flow(_ finding: FlowAttributor.Finding) {
        let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
        if finding.flow.verdict == .dropped {
            if seen.with({ $0.blocked.insert(key).inserted }) { line("blocked \(key) (metadata, host or LAN)") }
        } else if finding.basis == .directIP {
            if finding.flow.proto == 6 && finding.flow.port == 443 {
                // Its server name may still come: decided at the end (`summary`).
                seen.with { _ = $0.awaitingHello.insert(key) }
            } else if seen.with({ $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
    }

    func bind(_ bind: BindObservation) {
        let host = bind.address.contains(":") ? "[\(bind.address)]" : bind.address
        let key = "\(bind.proto) \(host):\(bind.port)"
        let program = String(decoding: bind.program.bytes, as: UTF8.self)
        if seen.with({ $0.binds.insert(key).inserted }) {
            line("bind \(key) by \(program)" + (bind.result == 0 ? "" : " (\(Errno.name(bind.result)))"))
        }
    }

    func secret(_ pattern: String, _ access: FileAccess) {
        let path = String(decoding: access.path.bytes, as: UTF8.self)
        if seen.with({ $0.secrets.insert(path).inserted }) {
            line("secret \(pattern): \(access.operation.rawValue) \(path) (\(access.result == 0 ? "ok" : Errno.name(access.result)))")
        }
    }

    func file(_ access: FileAccess) {
        let bytes = access.path.bytes
        guard bytes.first == UInt8(ascii: "/") else { return }
        // A top-level *directory*: the path goes below it (a missing `/x` is a file lookup, not a directory).
        let parts = bytes.dropFirst().split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, let top = parts.first else { return }
        let name = "/" + String(decoding: top, as: UTF8.self)
        if seen.with({ $0.directories.insert(name).inserted }) { line("directory \(name)") }
    }

    func summary(_ summary: LearnObservation.Summary, sessionID: String, status: Int32, scratch: String?) {
        // TLS flows held back for their ClientHello: a direct IP only if nothing named them by the end.
        for finding in summary.flows where finding.flow.verdict == .accepted && finding.basis == .directIP {
            let key = "\(finding.flow.protoName) \(finding.flow.destination):\(finding.flow.port ?? 0)"
            if seen.with({ $0.awaitingHello.contains(key) && $0.directIP.insert(key).inserted }) {
                line("direct-ip \(key) (no DNS answer or SNI named it)")
            }
        }
        let counts = seen.with { ($0.domains.count, $0.directIP.count, $0.secrets.count, $0.directories.count, $0.blocked.count, $0.binds.count) }
        var text = "done (agent exit \(status)): \(counts.0) domains, \(counts.1) direct-IP flows, \(counts.4) blocked, \(counts.2) secret attempts, \(counts.3) top-level directories, \(counts.5) binds"
        if let trace = summary.trace {
            text += "; \(trace.backend.rawValue): \(trace.syscalls) syscalls traced, \(trace.lost) lost"
        }
        if summary.captureDropped > 0 { text += "; the DNS capture dropped \(summary.captureDropped) packets" }
        say(text)
        if let scratch { say("scratch layer kept: \(scratch)") }
        say("session \(sessionID): cagent report \(sessionID)")
    }
}
