import CagentCapture
import CagentCore
import CagentDNS
import CagentEvents
import CagentLaunch
import CagentNetwork
import CagentProfile
import CagentSandbox
import CagentStore
import CagentTrace
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cagent learn --in-container`: container mode (CagentLaunch's ContainerMode: firewall, agent child, cagent's
/// own privileges, release) with learn's observation instead of enforce's gate. The container's ruleset logs
/// and accepts every new flow of the agent (the LAN and metadata stay dropped), the gate forwards every name
/// and records it, and the seccomp tracer (the agent child's listener) records files, execs and connects. All
/// of it goes through one LearnEventBridge into a store on a volume (`--db`), where `cagent report` and
/// `cagent profile propose` on the host read it. No DNS capture (the gate sees every query the agent makes).
// @unchecked: the recorder, bridge, gate and reader are set by start() and cleared by stop() on the owner's thread.
package final class ContainerLearnObserver: ContainerObserver, @unchecked Sendable {
    package let sessionID = SessionID.new()
    let database: String
    let command: [String]
    let secretPaths: [String]
    let upstream: UpstreamConfig
    let live: LearnLiveView
    private var recorder: Recorder?
    private var bridge: LearnEventBridge?
    private var gate: Gate?
    private var flows: NflogReader?
    private let tracer = Mutex<SeccompNotifyTracer?>(nil)
    private var stopped = false

    package var firewallMode: Firewall.Mode { .learn }
    package var entries: [AllowEntry] { [] }
    package var extraCapabilities: UInt64 { 1 << 19 }   // CAP_SYS_PTRACE: the tracer reads the agent's memory
    package var traces: Bool { true }

    package init(profile: Profile, database: String, command: [String], quiet: Bool, home: String, upstreamOverride: [String]) throws {
        self.database = database
        self.command = command
        secretPaths = LearnPlanner.hiddenEntries(profile) + FindingRules.systemSecrets
        live = LearnLiveView(quiet: quiet, home: home)
        do {
            upstream = upstreamOverride.isEmpty ? try UpstreamConfig.system(read: FileSystem.readText)
                                                : try UpstreamConfig(override: upstreamOverride)
        } catch {
            throw CagentError(stage: "learn", "\(error)", hint: "fix the container's resolver (docker run --dns)")
        }
    }

    package func start(firewall: SessionFirewall) throws {
        // The store belongs to root in the container: the agent (another uid, no capability) cannot change
        // what is recorded about it.
        let store = try Store(path: database, create: true)
        // The agent's resolvers are the container's (resolv.conf is Docker's), but every port-53 packet of the
        // agent goes to the gate: its queries to them are the gate's, not direct-IP flows.
        let gateAddress = ([ContainerFirewall.gateAddress.description] + upstream.servers.map { $0.address.description })
            .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.joined(separator: ",")
        let recorder = try Recorder(store: store, session: SessionInfo(id: sessionID, kind: "learn", source: "cagent learn --in-container (seccomp)",
                                                                       command: command.map { RawText($0) }, gate: gateAddress),
                                    rules: FindingRules(secretPaths: secretPaths, gateAddress: gateAddress),
                                    redaction: ArgvRedaction(secretValues: ArgvRedaction.secretValues(environment: ProcessEnvironment.current)),
                                    batchEvents: 8192)
        self.recorder = recorder
        let bridge = LearnEventBridge(recorder: recorder, live: live, secretPaths: secretPaths)
        self.bridge = bridge
        let gate = Gate(configuration: .init(listen: [ContainerFirewall.gateAddress], port: ContainerFirewall.gatePort,
                                             policy: .observing(ipv6: true), upstream: upstream),
                        pinner: firewall, observer: LearnGateObserver { seen in bridge.gateSaw(seen) })
        try gate.start()
        self.gate = gate
        let flows = FlowLog.reader(group: ContainerFirewall.nflogGroup) { flow in bridge.flowLogged(flow) }
        try flows.start()
        self.flows = flows
    }

    package func startTracer(listener: Int32) throws {
        guard let bridge else { close(listener); throw CagentError(stage: "trace-notify", "the recorder is not running") }
        tracer.withLock { $0 = SeccompNotifyTracer(listener: listener, sink: bridge.traceSink(dropping: 0)) }
    }

    package func finish(status: Int32) throws {
        let current = tracer.withLock { t -> SeccompNotifyTracer? in let c = t; t = nil; return c }
        _ = try? current?.stop()
        flows?.stop(); flows = nil
        gate?.stop(); gate = nil
        guard let bridge else { return }
        let events = try bridge.finish(sessionID: sessionID, findings: bridge.findings())
        self.bridge = nil
        recorder = nil
        FileDescriptorStream.standardError.write(
            "cagent: learned session \(sessionID): \(events) events in \(TerminalEscape.escape(database)); on the host: cagent profile propose --db PATH-OF-THAT-FILE --session \(sessionID)\n")
    }

    package func stop() {
        if stopped { return }
        stopped = true
        let current = tracer.withLock { t -> SeccompNotifyTracer? in let c = t; t = nil; return c }
        _ = try? current?.stop()
        flows?.stop(); gate?.stop()
        if let recorder { try? recorder.close() }
    }
}
