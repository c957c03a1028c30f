import CagentCore
import CagentDNS
import CagentNetwork
import CagentProfile
import CagentSandbox
#if canImport(Glibc)
import Glibc
#endif

/// What `cagent enforce` was asked to do. ArgumentParser's parse (EnforceCommand.options) and the launch
/// path's own parse of the common forms (EnforceOptions.parseCommon) both produce it; the session itself
/// runs from it.
package struct EnforceOptions: Equatable, Sendable {
    package var verbose = false
    package var debug = false
    package var profile: String
    package var workspace: String?
    package var user: UInt32?
    package var revertRisky = false
    package var offline = false
    package var json = false
    package var upstreamDns: [String] = []
    /// `--env NAME`: variables passed besides the profile's env.pass (AgentEnvironment).
    package var passEnvironment: [String] = []
    /// `--allow-proxy`: let a proxy variable pass although it voids the allowlist (ProxyRisk).
    package var allowProxy = false
    /// `--proxy URL`: the agent's web traffic goes through cagent's filtering proxy, chained to this upstream proxy.
    package var proxy: String?
    /// `--fail-at-stage` (hidden): the test hook that fails one setup stage on purpose (SetupStage).
    package var failAtStage: SetupStage?
    package var dumpPlan: String?
    package var stateDir: String?
    /// `--db`: the store the session is recorded in (default: the invoking user's; with --state-dir, cagent.db there).
    package var db: String?
    /// `--ask`: ask on the terminal about a name not in the profile (DenialAsker); unanswered after `askTimeout` s: deny.
    package var ask = false
    package var askTimeout = 30.0
    /// `--ssh-key FILE`: a deploy key for git over ssh (SshDeployKey), with known_hosts for the profile's ssh hosts only.
    package var sshKey: String?
    /// `--publish PORT`: the host's 127.0.0.1:PORT relayed to the sandbox's localhost:PORT (PublishedPort: OAuth callbacks).
    package var publish: UInt16?
    /// `--in-container`: cagent is a container's entrypoint and the container is the sandbox (ContainerEnforce).
    package var inContainer = false
    package var command: [String] = []
    /// `--rootless`: rootless mode although cagent is root (it is chosen by itself when cagent is not).
    package var rootless = false

    package init(verbose: Bool = false, debug: Bool = false, profile: String, workspace: String? = nil, user: UInt32? = nil,
                revertRisky: Bool = false, offline: Bool = false, json: Bool = false, upstreamDns: [String] = [],
                passEnvironment: [String] = [], allowProxy: Bool = false, proxy: String? = nil,
                failAtStage: SetupStage? = nil, dumpPlan: String? = nil, stateDir: String? = nil, db: String? = nil,
                ask: Bool = false, askTimeout: Double = 30, sshKey: String? = nil, publish: UInt16? = nil,
                inContainer: Bool = false, command: [String] = []) {
        self.verbose = verbose; self.debug = debug; self.profile = profile; self.workspace = workspace; self.user = user
        self.revertRisky = revertRisky; self.offline = offline; self.json = json; self.upstreamDns = upstreamDns
        self.passEnvironment = passEnvironment; self.allowProxy = allowProxy; self.proxy = proxy
        self.failAtStage = failAtStage; self.dumpPlan = dumpPlan; self.stateDir = stateDir; self.db = db
        self.ask = ask; self.askTimeout = askTimeout; self.sshKey = sshKey; self.publish = publish
        self.inContainer = inContainer
        self.command = command
    }

    /// The session: plan, launch, teardown, report. Throws CagentExit with the agent's status.
    package func run() throws {
        if inContainer { return try ContainerEnforce(options: self).run() }
        CagentLog.bootstrap(verbose: verbose, debug: debug)
        Timing.mark("enforce: main")
        let environment = ProcessEnvironment.current
        let invoking = try InvokingUser.agent(uid: user, environment: environment)
        // Not root (or --rootless): the same sandbox without any privilege of the host's (RootlessMode).
        let rootless = RootlessMode.isOn(requested: self.rootless)
        // Root mode: the sandbox's network namespace (loopback up) is made from here, on a thread beside the
        // profile, the plan and the network's host side; the init is cloned into it (Launcher.networkNamespace).
        let namespaceAhead = !rootless && dumpPlan == nil ? try? NetworkNamespace.startFresh(loopbackUp: true) : nil
        defer { namespaceAhead?.join() }
        if rootless { try RootlessMode.enter(as: invoking) }
        let workspacePath = workspace ?? FileSystem.currentDirectory()
        let placed = invoking.sessionPlaces(environment: environment, actingFor: user != nil, stateDir: stateDir)
        let places = placed.environment
        var paths = placed.paths
        let loaded = try loadProfileForEnforce(nameOrPath: profile, workspace: workspacePath, environment: places)
        if rootless { paths.runtime = RootlessMode.runtimeDirectory(data: paths.data, environment: places) }
        // Keys from files the user's config names join the host environment (never printed or stored).
        let credentials = try Credentials.load(into: environment, configDirectory: paths.config, user: invoking,
                                               workspace: try EnforcePlanner.realPath(workspacePath, what: "workspace"))
        let hostEnvironment = credentials.environment
        // The environment policy first: a proxy variable would void the allowlist, so it needs --allow-proxy.
        let agentEnvironment = AgentEnvironment(host: hostEnvironment, profilePass: loaded.env.pass,
                                                requested: passEnvironment, home: invoking.home)
        // --proxy: the agent's proxy variables are replaced by cagent's filtering proxy (at finalizePlan).
        let upstreamProxy = try proxy.map { try UpstreamProxy.parse($0) }
        if upstreamProxy != nil && offline {
            throw CagentError(stage: "arguments", "--proxy and --offline exclude each other", hint: "drop one of them")
        }
        if upstreamProxy == nil {
            if !allowProxy, let refusal = agentEnvironment.proxyRefusal() { throw refusal }
            if let line = agentEnvironment.droppedLine { FileDescriptorStream.standardError.write(line + "\n") }
            if let warning = agentEnvironment.proxyWarning { FileDescriptorStream.standardError.write(warning + "\n") }
        } else {
            // The host's proxy variables are replaced, not dropped: the announcement leaves them out.
            let others = AgentEnvironment(host: hostEnvironment.filter { !ProxyRisk.isProxyVariable($0.key) }, profilePass: loaded.env.pass,
                                          requested: passEnvironment, home: invoking.home)
            if let line = others.droppedLine { FileDescriptorStream.standardError.write(line + "\n") }
            FileDescriptorStream.standardError.write("cagent: --proxy: the agent's HTTP(S)_PROXY name cagent's filtering proxy; the profile's hosts go on to \(TerminalEscape.escape(proxy ?? ""))\n")
        }
        let passedNames = agentEnvironment.entries.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) }
        if let line = Credentials.startLine(credentials, passed: passedNames, home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
        var request = EnforceRequest(profile: loaded, workspace: workspacePath, user: invoking, paths: paths,
                                     command: command, environment: hostEnvironment)
        request.requestedEnvironment = passEnvironment
        request.rootless = rootless
        if let sshKey {
            let key = try SshDeployKey.load(keyFile: sshKey, currentDirectory: FileSystem.currentDirectory(), endpoints: loaded.network.endpoints,
                                            user: invoking, workspace: try EnforcePlanner.realPath(workspacePath, what: "workspace"),
                                            configDirectory: paths.config)
            for line in key.startLines(home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
            request.sshKey = key
        }
        request.terminal = Terminal(fd: 0).map { $0.size ?? .init(rows: 24, columns: 80) }
        Timing.mark("enforce: profile, user, environment")
        // From here to the end, Ctrl-C and kill -TERM cannot cut setup or teardown short: caught and noted
        // outside the relay loop (during setup they abort the start, below), forwarded to the agent inside it.
        Launcher.holdTerminatingSignals()
        // Live lines go through the launcher's relay loop while the agent runs (never mid-line), directly otherwise.
        let notices = NoticeChannel()
        // Session resources, all created before the sandbox and torn down on every path out of here.
        let asker = ask && !offline ? DenialAsker(questions: QuestionChannel(), timeout: askTimeout, profile: profile) : nil
        let recording = SessionRecording(sessionID: request.sessionID, profile: profile, command: command,
                                         db: db ?? stateDir.map { $0 + "/cagent.db" }, paths: paths,
                                         workspace: workspacePath, asker: asker)
        // Rootless: the allowlist, the gate and a user-mode uplink inside the sandbox's own namespace (RootlessNetwork).
        let rootlessNetwork = offline || !rootless || dumpPlan != nil ? nil : try RootlessNetwork(
            profile: loaded.network, upstreamOverride: upstreamDns, allowHint: recording.allowCommand,
            asker: asker?.gateAsker, upstreamProxy: upstreamProxy, output: { notices.write(line: $0) })
        rootlessNetwork?.failAt = failAtStage
        let network = offline || rootless || dumpPlan != nil ? nil : try EnforceNetwork(
            profile: loaded.network, sessionID: request.sessionID, paths: paths, upstreamOverride: upstreamDns,
            allowHint: recording.allowCommand, asker: asker?.gateAsker, upstreamProxy: upstreamProxy,
            sandboxNamespace: namespaceAhead, output: { notices.write(line: $0) })
        network?.failAt = failAtStage
        // The network comes up on a thread meanwhile (the plan, the snapshot, the volume); the clone waits for it.
        network?.prepareAhead()
        // Offline: the namespace made ahead is the sandbox's whole network (loopback only).
        let offlineNamespace = offline ? namespaceAhead : nil
        // Until the launch owns them, a step that fails stops what the network has made meanwhile.
        var networkHandedOver = false
        defer { if !networkHandedOver { network?.stop(); rootlessNetwork?.stop() } }
        // The shadow home's image is opened and mounted meanwhile (the plan, cgroups, workspace snapshot): the
        // Launcher takes it when it is the plan's volume.
        let pendingVolume = dumpPlan == nil
            ? try EnforcePlanner.volume(request).map { PendingVolume($0, uid: invoking.uid, gid: invoking.gid) } : nil
        defer { pendingVolume?.discard() }
        // The session's cgroups, or (none usable here) the rlimit fallback the plan's process policy carries.
        let sessionLimits = dumpPlan == nil ? SessionLimits(id: request.sessionID, limits: ResourceLimits(profile: loaded.limits), paths: paths) : nil
        request.limitsWithoutCgroup = sessionLimits?.withoutCgroup ?? false
        var plan = try EnforcePlanner.plan(request)
        if let notice = sessionLimits?.notice { FileDescriptorStream.standardError.write("cagent: notice: \(notice)\n") }
        if rootless, dumpPlan == nil, let home = plan.shadowHome {
            FileDescriptorStream.standardError.write("cagent: notice: rootless mode: the shadow home is the directory \(TerminalEscape.escape(home)) (limits.disk does not bound it without root)\n")
        }
        Timing.mark("enforce: plan")
        plan.failAtStage = failAtStage
        for notice in plan.policyNotices { FileDescriptorStream.standardError.write("cagent: notice: \(notice)\n") }
        if let line = WorkspaceSecrets.startLine(plan.workspaceSecrets) { FileDescriptorStream.standardError.write(line + "\n") }
        if let line = AgentBootstrap.startLine(plan.agentMapped, home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
        if let dumpPlan {
            var dumped = plan
            if let key = request.sshKey { dumped.replaceFile(at: SshDeployKey.keyPath, contents: key.dumpReference) }
            let bytes = try dumped.serialized()
            // A file the user names: written with the user's rights (docs/security.md, "confused deputy").
            if case .failure(let error) = FileSystem.writeAsUser(dumpPlan, bytes: Array(bytes), mode: 0o600,
                                                                 identity: FileIdentity.invoking(environment: environment)) {
                throw CagentError(stage: "dump-plan", error.message(path: dumpPlan))
            }
            return
        }

        // Bound now, before the sandbox exists: a busy port stops the start before anything was made.
        let published = try publish.map { try PublishedPort(port: $0) }
        defer { published?.stop() }
        if let published { FileDescriptorStream.standardError.write(published.line + "\n") }
        guard let cgroup = sessionLimits else { throw CagentError(stage: "limits", "no session limits were set up") }
        Timing.mark("enforce: session resources, cgroups")
        let before = RiskyChanges.snapshot(workspace: plan.workspace, user: invoking)
        Timing.mark("enforce: risky-change snapshot")
        var status: Int32 = 125
        var failure: CagentError?
        let launcher = Launcher()
        launcher.notices = notices
        launcher.pendingVolume = pendingVolume
        launcher.questions = asker?.questions
        func setupError(_ error: any Error, stage: SetupStage) -> CagentError {
            let error = error as? CagentError ?? CagentError(stage: .step(stage), "\(error)")
            return error.duringSetup(hint: "the agent did not start")
        }
        // The session's cgroups are joined on a thread from the clone on: the first cgroup.procs write waits
        // for an RCU grace period (cgroup_threadgroup_rwsem, 6-14 ms here), so it starts before the network's
        // attach and the plan instead of after them; `beforeAgent` waits for it (docs/benchmarks.md).
        let joining = CgroupJoin()
        defer { joining.wait() }
        // Better still: the init cloned straight into the session's cgroups (no cgroup.procs write at all).
        launcher.cloneIntoCgroups = cgroup.cgroup?.cloneTargets
        // The init is cloned into the network namespace the uplink wired ahead (veth, addresses, gate), or
        // offline into the one made meanwhile; the launcher holds it until the clone.
        if let network {
            launcher.networkNamespace = {
                do { return try network.sandboxNamespace() } catch { throw setupError(error, stage: .network) }
            }
        } else if let offlineNamespace {
            // Not made (it failed): the clone makes a namespace of its own, as before, and cagent-init brings lo up.
            var made: NetworkNamespace?
            launcher.networkNamespace = {
                made = (try? offlineNamespace.join()?.get()) ?? made
                return made?.fd
            }
        }
        launcher.beforeRelease = { [unowned launcher] pid in
            // The init is frozen waiting for its plan: nothing inside runs before the network is in place.
            Timing.mark("enforce: cloned")
            if launcher.cgroupsPlacedAtClone { joining.placed() } else { joining.start(cgroup, pid: pid) }
            do {
                try network?.start()
                try rootlessNetwork?.start(pid: pid)
            } catch { throw setupError(error, stage: .network) }
            Timing.mark("enforce: network up")
            do { try published?.start(pid: pid, rootless: rootless) } catch { throw setupError(error, stage: .publish) }
        }
        launcher.beforeAgent = { pid in
            // cagent-init builds the view meanwhile; it forks the agent only after this returned.
            Timing.mark("enforce: plan sent")
            do {
                try joining.finish(cgroup, pid: pid)
                Timing.mark("enforce: cgroups joined")
                try SetupStage.inject(at: .cgroup, asked: failAtStage)
            } catch { throw setupError(error, stage: .cgroup) }
            // The last moment before the agent exists: a Ctrl-C during setup still aborts the start.
            if let signal = Launcher.takeHeldSignal() {
                throw CagentError(stage: .sandboxSetup(.step(.interrupted)), "signal \(signal) arrived during setup",
                                  hint: "the agent did not start")
            }
        }
        launcher.finalizePlan = { plan in
            if let signal = Launcher.takeHeldSignal() {
                throw CagentError(stage: .sandboxSetup(.step(.interrupted)), "signal \(signal) arrived during setup",
                                  hint: "the agent did not start")
            }
            // Addresses are allocated in beforeRelease: resolv.conf names the session's gateways (the gate).
            var plan = plan
            if let network { plan = network.uplink.resolving(plan) }
            if let rootlessNetwork { plan.setNameservers(rootlessNetwork.nameservers) }
            if upstreamProxy != nil {
                guard let url = network?.proxyURL ?? rootlessNetwork?.proxyURL else { throw CagentError(stage: "proxy", "the filtering proxy has no address") }
                plan.environment = AgentEnvironment.withFilteringProxy(plan.environment, url: url)
            }
            return plan
        }
        networkHandedOver = true
        do {
            status = try launcher.run(plan)
        } catch {
            failure = error as? CagentError ?? CagentError(stage: .sandboxSetup(nil), "\(error)")
        }
        Timing.mark("enforce: agent exited")
        joining.wait()   // a start that failed before `beforeAgent`: the join is over before the cgroup goes
        // Teardown on every path: the relay, the reader and gate first (their last lines), then the uplink and
        // chains (on a thread, waited for below) while the cgroup goes and the session is recorded.
        published?.stop()
        let networkDown = network?.stopOverlapped()
        rootlessNetwork?.stop()
        asker?.join()
        for line in cgroup.exhaustionReport() { FileDescriptorStream.standardError.write("cagent: \(TerminalEscape.escape(line))\n") }
        cgroup.remove()
        Timing.mark("enforce: cgroups removed")
        // The session record (the full list, with what the store needs): written for every session the agent ran in.
        var spooled: String?
        if failure == nil {
            // Rootless sessions too: their denials are what `profile propose --update` proposes from.
            let written = recording.write(reporter: network?.reporter ?? rootlessNetwork?.reporter,
                                          gate: network?.gateAddress ?? rootlessNetwork.map { $0.nameservers[0] },
                                          status: status, owner: invoking)
            spooled = written.spooled
            if let network {
                FileDescriptorStream.standardError.write((json ? network.reporter.json() : network.reporter.summaryLine(listPath: written.list)) + "\n")
                if upstreamProxy != nil, let line = network.proxyLines.summaryLine { FileDescriptorStream.standardError.write(line + "\n") }
            }
            if let rootlessNetwork {
                FileDescriptorStream.standardError.write((json ? rootlessNetwork.reporter.json() : rootlessNetwork.reporter.summaryLine(listPath: written.list)) + "\n")
                if upstreamProxy != nil, let line = rootlessNetwork.proxyLines.summaryLine { FileDescriptorStream.standardError.write(line + "\n") }
            }
        }
        let teardownError = networkDown?()
        Timing.mark("enforce: network down")
        if let teardownError { FileDescriptorStream.standardError.write("cagent: warning: \(teardownError)\n") }
        if let failure {
            // 125: the sandbox could not be set up and the agent never ran (its own statuses stay distinct).
            // The launcher throws only before the agent runs (clone, beforeRelease, beforeAgent, cagent-init's stages).
            FileDescriptorStream.standardError.write("cagent: \(failure)\n")
            throw CagentExit(status: Launcher.agentExecStatus(failure) ?? ExitStatus.failure)
        }
        Timing.mark("enforce: recorded")
        if let report = RiskyChanges.check(workspace: plan.workspace, before: before, user: invoking, revert: revertRisky) {
            FileDescriptorStream.standardError.write(report)
        }
        Timing.mark("enforce: risky-change check")
        // The session waits in the store's spool for the next command that opens the store; only an --ask
        // "add to the profile" hands over to cagent-full now (it edits the profile, then exits with the status).
        if let spooled { recording.addToProfile(file: spooled, status: status) }
        throw CagentExit(status: status)
    }
}

/// The session's cgroups joined by the sandbox's init on a thread of its own (`start`, right after the clone),
/// waited for before the agent is forked (`finish`). Without a thread (resources exhausted) `finish` joins on
/// the caller's thread, as before.
// @unchecked: `thread` and `error` are written before the thread starts / by it, read after pthread_join.
final class CgroupJoin: @unchecked Sendable {
    private var thread: DedicatedThread?
    private var error: (any Error)?
    private var joined = false

    /// The init was cloned into the cgroups (Launcher.cloneIntoCgroups): nothing to join.
    func placed() { joined = true }

    func start(_ cgroup: SessionLimits, pid: Int32) {
        guard thread == nil else { return }
        thread = try? DedicatedThread.start(name: "cagent-cgroup") { [self] in
            do { try cgroup.add(pid: pid) } catch { self.error = error }
        }
    }

    /// Waits for the join started by `start` (or joins now) and throws its failure.
    func finish(_ cgroup: SessionLimits, pid: Int32) throws {
        if thread == nil { if !joined { joined = true; try cgroup.add(pid: pid) }; return }
        wait()
        if let error { self.error = nil; throw error }
    }

    /// Waits for the thread, if one runs; idempotent.
    func wait() {
        guard let thread, !joined else { return }
        thread.join()   // pthread_join: the thread's write of `error` is visible after it
        joined = true
    }
}
