import CShim
import CagentCapture
import CagentCore
import CagentDNS
import CagentNetwork
import CagentProfile
import CagentSandbox
#if canImport(Glibc)
import Glibc
#endif

/// `cagent enforce --in-container`: cagent is the container's entrypoint, running as root in it, and the
/// container is the sandbox. No namespace is made and nothing is mounted (Docker refuses CAP_SYS_ADMIN and
/// new user namespaces by default); the filesystem view is the container's own (`cagent docker run`, on the
/// host, lays the hidden paths over it). The steps, in this order, each named, and the agent never started
/// when one fails:
///
/// 1. `firewall`: the allowlist in the container's network namespace (ContainerFirewall; needs CAP_NET_ADMIN);
/// 2. `agent`: the agent child (C, cg_container.c) drops every capability, switches to the agent user, sets
///    no_new_privs, applies the process policy (rlimits, Landlock where Docker's seccomp lets it through, the
///    seccomp filter) and waits;
/// 3. `supervisor-privileges`: cagent itself keeps only CAP_NET_ADMIN (the gate's pins) and CAP_KILL (signals
///    to the agent's uid), before any of its threads exists;
/// 4. `dns-gate`: the gate on 127.0.0.1, and the denial reader;
/// 5. `release`: the agent execs.
///
/// cagent then waits for the agent (reaping orphans: it is usually pid 1), forwards signals, stops the gate,
/// removes the ruleset and exits with the agent's status.
/// What runs around the agent in container mode besides the firewall: enforce's gate and denial lines
/// (ContainerNetwork), or learn's observation (CagentLearn's ContainerLearnObserver).
package protocol ContainerObserver: AnyObject {
    /// The ruleset: enforce's allowlist or learn's log-and-accept.
    var firewallMode: Firewall.Mode { get }
    /// The profile's literal entries (enforce).
    var entries: [AllowEntry] { get }
    /// Capabilities cagent keeps besides CAP_NET_ADMIN and CAP_KILL (learn: CAP_SYS_PTRACE, which the
    /// seccomp tracer needs to read another uid's memory).
    var extraCapabilities: UInt64 { get }
    /// Learn: the agent child installs the seccomp tracer's filter and passes its listener.
    var traces: Bool { get }
    /// After cagent dropped its privileges, before the agent is released: the gate and the readers.
    func start(firewall: SessionFirewall) throws
    /// The tracer's listener (only when `traces`), before the release.
    func startTracer(listener: Int32) throws
    /// The agent exited with `status`: stop the sources, write the summary and records.
    func finish(status: Int32) throws
    /// Idempotent teardown for every path.
    func stop()
}

/// Container mode's entry for other commands (`learn --in-container`).
package enum ContainerMode {
    /// Runs `options.command` in this container with `observer` (nil: enforce's gate). Throws CagentExit.
    package static func run(_ options: EnforceOptions, observer: ((Profile) throws -> any ContainerObserver)?) throws {
        try ContainerEnforce(options: options, makeObserver: observer).run()
    }
}

struct ContainerEnforce {
    let options: EnforceOptions
    var makeObserver: ((Profile) throws -> any ContainerObserver)? = nil

    /// Stages `--fail-at-stage` can name in container mode (tests of the fail-closed paths).
    static let stages = ["firewall", "agent", "supervisor-privileges", "dns-gate", "release"]
    /// The agent user when no --user is given: the image's `agent` account (docker/Dockerfile makes it).
    static let defaultUserName = "agent"

    static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP, SIGALRM]

    func refuseUnsupported() throws {
        let unsupported: [(Bool, String)] = [
            (options.proxy != nil, "--proxy"), (options.ask, "--ask"), (options.dumpPlan != nil, "--dump-plan"),
            (options.revertRisky, "--revert-risky"),
        ]
        if let (_, name) = unsupported.first(where: { $0.0 }) {
            throw CagentError(stage: "arguments", "\(name) is not available with --in-container",
                              hint: "run the agent without it, or use cagent enforce on the host")
        }
    }

    func run() throws {
        CagentLog.bootstrap(verbose: options.verbose, debug: options.debug)
        // Blocked before any thread exists (every thread inherits the mask): the supervisor takes them with
        // sigtimedwait, and as a container's pid 1 a blocked signal is queued, not dropped for lack of a handler.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in Self.forwardedSignals + [SIGCHLD] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, nil)

        try refuseUnsupported()
        guard getuid() == 0 else {
            throw CagentError(stage: "container", "--in-container starts as root inside the container (uid \(getuid()) here)",
                              hint: "leave the image's USER as root: cagent itself switches to the agent user before the agent starts")
        }
        let environment = ProcessEnvironment.current
        let agent = try agentUser()
        let workspace = options.workspace ?? FileSystem.currentDirectory(orElse: "/")
        let places = agent.placesEnvironment(environment)
        let profile = try loadProfileForEnforce(nameOrPath: options.profile, workspace: workspace, environment: places)
        // HOSTNAME: Docker sets it in every container (the container's id); no secret, so no "not passed" line for it.
        let agentEnvironment = AgentEnvironment(host: environment, profilePass: profile.env.pass,
                                                requested: options.passEnvironment + (environment["HOSTNAME"] != nil ? ["HOSTNAME"] : []),
                                                home: agent.home)
        if !options.allowProxy, let refusal = agentEnvironment.proxyRefusal() { throw refusal }
        if let line = agentEnvironment.droppedLine { FileDescriptorStream.standardError.write(line + "\n") }

        let observer: any ContainerObserver = try makeObserver?(profile)
            ?? ContainerNetwork(profile: profile.network, upstreamOverride: options.upstreamDns, offline: options.offline, json: options.json)
        // The process policy: rlimits, Landlock (read-only but where the agent works), seccomp. With the tracer
        // no Landlock: its rules open paths, which would wait for a tracer that serves only once the child is ready.
        let writable = [workspace, agent.home, "/tmp", "/var/tmp", "/dev/shm"].filter { FileSystem.isDirectory($0) }
        var (policy, notices) = try ProcessPolicy.forSandbox(limits: ResourceLimits(profile: profile.limits),
                                                             readOnly: ["/"], readWrite: writable)
        if observer.traces { policy.landlock = nil; notices = [] }
        let policyMessage = try policy.serialized()
        for notice in notices { FileDescriptorStream.standardError.write("cagent: notice: \(notice)\n") }
        // No session cgroup here: a container's cgroup is Docker's (docker run --pids-limit/--memory bound it).
        FileDescriptorStream.standardError.write(
            "cagent: notice: --in-container: the profile's limits hold as rlimits only (no session cgroup); bound the container with docker run --pids-limit and --memory\n")

        let failAt = options.failAtStage

        // 1. firewall
        let firewall: SessionFirewall
        do { firewall = try ContainerFirewall.install(entries: observer.entries, mode: observer.firewallMode) }
        catch { throw Self.setupError(error, stage: "firewall") }
        var result = cg_container_result()
        var released = false
        // Teardown on every path: an agent child that was prepared but not released exits without running.
        defer {
            if result.pid > 0 && !released { cg_container_abort(&result) }
            observer.stop()
            do { try ContainerFirewall.remove() }
            catch { FileDescriptorStream.standardError.write("cagent: warning: \(error)\n") }
        }
        if failAt == "firewall" { throw Self.setupError(CagentError(stage: "firewall", "failing as asked (--fail-at-stage)"), stage: "firewall") }

        // 2. agent (prepared, not started); learn: its tracer's listener comes over a socket pair.
        var pair: [Int32] = [-1, -1]
        if observer.traces {
            guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                throw CagentError(stage: .sandboxSetup(.named("trace-notify")), "socketpair failed", errno: errno, hint: "the agent did not start")
            }
        }
        defer { for fd in pair where fd >= 0 { close(fd) } }
        try spawnAgent(agent: agent, workspace: workspace, environment: agentEnvironment.entries, policy: policyMessage,
                       notifySocket: pair[1], result: &result)
        var listener: Int32 = -1
        if observer.traces {
            close(pair[1]); pair[1] = -1
            listener = cg_container_receive_fd(pair[0])
            if listener < 0 {
                throw CagentError(stage: .sandboxSetup(.named("trace-notify")), "no listener from the agent child", errno: -listener, hint: "the agent did not start")
            }
        }
        // 3. supervisor-privileges. Capabilities are per thread: every other thread that takes signals drops
        // its own from a handler, then this one; threads made later inherit it. Every thread is read back.
        // The lean front (enforce) has no other thread here. cagent-full (learn) has runtime threads that block
        // every signal; they keep the container's capabilities: a notice says so (learn observes, it does not
        // enforce), and enforce refuses to start if any thread holds more than it keeps.
        let keep: UInt64 = (1 << 12) | (1 << 5) | observer.extraCapabilities   // CAP_NET_ADMIN, CAP_KILL
        let (answering, blocking) = Self.otherThreads(signal: cg_container_keep_signal())
        var kept = answering.withUnsafeBufferPointer { cg_container_keep_only_threads(keep, $0.baseAddress, Int32($0.count)) }
        if kept == 0 {
            let holding = Self.threadsHoldingMore(than: keep)
            if !holding.isEmpty && (observer.firewallMode == .enforce || !Set(holding).isSubset(of: Set(blocking))) {
                FileDescriptorStream.standardError.write("cagent: threads \(holding.joined(separator: ", ")) still hold other capabilities\n")
                kept = -EPERM
            } else if !holding.isEmpty {
                FileDescriptorStream.standardError.write(
                    "cagent: notice: learn: \(holding.count) idle runtime thread(s) of cagent keep the container's capabilities (they block signals); the agent holds none\n")
            }
        }
        if kept != 0 || failAt == "supervisor-privileges" {
            if listener >= 0 { close(listener) }
            throw CagentError(stage: .sandboxSetup(.named("supervisor-privileges")), kept != 0 ? "cannot keep cagent's own capabilities" : "failing as asked (--fail-at-stage)",
                              errno: kept != 0 ? -kept : nil,
                              hint: observer.traces ? "learn in a container needs --cap-add SYS_PTRACE (the tracer reads the agent's memory); the agent did not start"
                                                    : "the agent did not start")
        }
        // 4. dns-gate (and learn's sources, the tracer)
        do {
            try observer.start(firewall: firewall)
            if listener >= 0 { try observer.startTracer(listener: listener) }
            if failAt == "dns-gate" { throw CagentError(stage: "dns-gate", "failing as asked (--fail-at-stage)") }
        } catch {
            throw Self.setupError(error, stage: "dns-gate")
        }
        // 5. release
        if failAt == "release" { throw CagentError(stage: .sandboxSetup(.named("release")), "failing as asked (--fail-at-stage)", hint: "the agent did not start") }
        released = true
        if cg_container_release(&result) != 0 {
            throw Self.childError(result)
        }
        let status = supervise(agent: result.pid)
        result.pid = 0
        try observer.finish(status: status)
        throw CagentExit(status: status)
    }

    /// `--user UID`, else the image's `agent` account. Never root.
    func agentUser() throws -> InvokingUser {
        if let uid = options.user { return try InvokingUser.agent(uid: uid, environment: [:]) }
        guard let entry = getpwnam(Self.defaultUserName) else {
            throw CagentError(stage: "user", "no --user given and the image has no user named \(Self.defaultUserName)",
                              hint: "pass --user UID (an unprivileged account of the image)")
        }
        return try InvokingUser.agent(uid: entry.pointee.pw_uid, environment: [:])
    }

    func spawnAgent(agent: InvokingUser, workspace: String, environment: [String], policy: [UInt8], notifySocket: Int32,
                    result: inout cg_container_result) throws {
        guard let first = options.command.first, !first.isEmpty else {
            throw CagentError(stage: "arguments", "no agent command after --", hint: "cagent enforce --in-container --profile P -- CMD [ARGS...]")
        }
        var storage = cg_policy_storage()
        let childStage = options.failAtStage.flatMap { name in
            (1...10).first { String(cString: cg_container_stage_name(Int32($0))) == name.description }.map(Int32.init)
        } ?? 0
        let argv = options.command.map { strdup($0) } + [nil]
        let envp = (environment + ["HOME=\(agent.home)", "USER=\(agent.name)", "LOGNAME=\(agent.name)"]).map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        let status: Int32 = policy.withUnsafeBytes { bytes in
            guard cg_policy_decode(bytes.baseAddress, UInt(bytes.count), &storage) == 0 else { return -2 }
            return withUnsafePointer(to: &storage.policy) { policyPointer in
                workspace.withCString { cwd in
                    argv.withUnsafeBufferPointer { argvBuffer in
                        envp.withUnsafeBufferPointer { envpBuffer in
                            var request = cg_container_request(uid: agent.uid, gid: agent.gid, groups: nil, group_count: 0, cwd: cwd,
                                                               argv: argvBuffer.baseAddress, envp: envpBuffer.baseAddress,
                                                               policy: policyPointer, fail_at: childStage, notify_socket: notifySocket,
                                                               supervisor: 0)
                            return cg_container_spawn(&request, &result)
                        }
                    }
                }
            }
        }
        if status == -2 { throw CagentError(stage: .sandboxSetup(.named("policy")), "the process policy did not decode", hint: "the agent did not start") }
        if status != 0 { throw Self.childError(result) }
    }

    /// The threads of this process whose effective, permitted, bounding, ambient or inheritable set holds more
    /// than `keep` (or whose status cannot be read).
    static func threadsHoldingMore(than keep: UInt64) -> [String] {
        FileSystem.list("/proc/self/task").filter { tid in
            guard let status = FileSystem.readText("/proc/self/task/\(tid)/status") else { return true }
            return status.split(separator: "\n").contains { line in
                guard ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "CapInh:"].contains(where: { line.hasPrefix($0) }) else { return false }
                guard let value = UInt64(line.split(separator: "\t").last ?? "", radix: 16) else { return true }
                return value & ~keep != 0
            }
        }
    }

    /// The other threads, split by whether they block `signal` (SigBlk of their status).
    static func otherThreads(signal: Int32) -> (answering: [pid_t], blocking: [String]) {
        let me = String(cg_container_gettid())
        var answering: [pid_t] = [], blocking: [String] = []
        for tid in FileSystem.list("/proc/self/task") where tid != me {
            let status = FileSystem.readText("/proc/self/task/\(tid)/status") ?? ""
            let mask = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
                .flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? ~0
            if mask & (UInt64(1) << UInt64(signal - 1)) != 0 { blocking.append(tid) } else if let id = pid_t(tid) { answering.append(id) }
        }
        return (answering, blocking)
    }

    static func childError(_ result: cg_container_result) -> CagentError {
        var stage = String(cString: cg_container_stage_name(result.stage))
        if result.stage == CG_CONTAINER_STAGE_POLICY && result.detail != 0 { stage += " " + String(cString: cg_policy_stage_name(result.detail)) }
        let hint: String
        switch Int(result.stage) {
        case Int(CG_CONTAINER_STAGE_DROP_CAPABILITIES), Int(CG_CONTAINER_STAGE_SWITCH_USER):
            hint = "the container must keep Docker's default SETPCAP, SETUID and SETGID (do not --cap-drop ALL); the agent did not start"
        case Int(CG_CONTAINER_STAGE_EXEC):
            hint = "is the agent command installed in the image, on PATH? the agent did not start"
        default:
            hint = "the agent did not start"
        }
        return CagentError(stage: .sandboxSetup(.named(stage)), "the agent's step failed", errno: result.error, hint: hint)
    }

    static func setupError(_ error: any Error, stage: String) -> CagentError {
        let error = error as? CagentError ?? CagentError(stage: stage, "\(error)")
        return error.duringSetup(hint: "the agent did not start")
    }

    /// Waits for the agent; reaps every other child (as pid 1 cagent inherits the container's orphans);
    /// forwards signals to the agent. Returns the agent's status (128+N for signal N).
    func supervise(agent: pid_t) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in Self.forwardedSignals + [SIGCHLD] { sigaddset(&set, signal) }
        var timeout = timespec(tv_sec: 1, tv_nsec: 0)
        while true {
            var info = siginfo_t()
            let signal = sigtimedwait(&set, &info, &timeout)
            if signal > 0 && signal != SIGCHLD { kill(agent, signal); continue }
            // SIGCHLD, or the periodic check (a SIGCHLD merged with another is never lost this way).
            var status: Int32 = 0
            while true {
                let pid = waitpid(-1, &status, WNOHANG)
                if pid <= 0 { break }
                if pid == agent {
                    let code = status & 0x7f
                    return code == 0 ? (status >> 8) & 0xff : 128 + code
                }
            }
        }
    }
}

/// The container's DNS gate and denial lines (EnforceNetwork's parts without a veth or a host side).
/// `--offline`: the firewall without an entry and no gate (every name fails, nothing leaves).
// @unchecked: `gate` and `reader` are set by start() and cleared by stop(), both on the owner's (launch) thread.
final class ContainerNetwork: ContainerObserver, @unchecked Sendable {
    let offline: Bool
    let json: Bool
    var firewallMode: Firewall.Mode { .enforce }
    var extraCapabilities: UInt64 { 0 }
    var traces: Bool { false }
    func startTracer(listener: Int32) throws { close(listener) }
    func finish(status: Int32) throws {
        stop()
        if !offline { FileDescriptorStream.standardError.write((json ? reporter.json() : reporter.summaryLine(listPath: nil)) + "\n") }
    }

    let entries: [AllowEntry]
    let rules: ProfileNetworkRules
    let book = AddressBook()
    let reporter: DenialReporter
    private var gate: Gate?
    private var reader: NflogReader?

    init(profile: NetworkPolicy, upstreamOverride: [String], offline: Bool, json: Bool) throws {
        self.offline = offline; self.json = json
        rules = try ProfileNetworkRules(profile: profile, upstreamOverride: upstreamOverride,
                                        resolverHint: "the container's resolver (docker run --dns)")
        entries = offline ? [] : rules.entries
        reporter = DenialReporter(book: book, output: { FileDescriptorStream.standardError.write($0 + "\n") })
    }

    func start(firewall: SessionFirewall) throws {
        if offline { return }
        let policy = try rules.gatePolicy(ipv6: true)
        let reporter = reporter
        let gate = Gate(configuration: Gate.Configuration(listen: [ContainerFirewall.gateAddress], port: ContainerFirewall.gatePort,
                                                          policy: policy, upstream: rules.upstream),
                        pinner: firewall, book: book) { reporter.record($0) }
        try gate.start()
        self.gate = gate
        let reader = NflogReader(group: ContainerFirewall.nflogGroup) { reporter.record($0) }
        try reader.start()
        self.reader = reader
    }

    /// Idempotent.
    func stop() {
        reader?.stop(); reader = nil
        gate?.stop(); gate = nil
    }
}
