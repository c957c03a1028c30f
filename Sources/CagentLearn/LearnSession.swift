import CagentCore
import CagentDNS
import CagentLaunch
import CagentProfile
import CagentSandbox
import CagentStore
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// What `cagent learn` was asked, as the command validated it.
package struct LearnOptions: Sendable {
    package var agent: String?
    package var workspace: String
    package var tracer: TracerChoice
    package var database: String?
    package var passedEnvironment: [String]
    package var keepScratch: Bool
    package var revertRisky: Bool
    package var quiet: Bool
    package var user: UInt32?
    /// Tests: cagent's state (scratch layers) here instead of the user's data directory.
    package var stateDir: String?
    /// Tests: the agent's home (default: the user's from the password database).
    package var home: String?
    package var command: [String]
    /// `--rootless`: rootless mode although cagent is root (chosen by itself when it is not).
    package var rootless = false

    package init(agent: String?, workspace: String, tracer: TracerChoice, database: String?, passedEnvironment: [String],
                 keepScratch: Bool, revertRisky: Bool, quiet: Bool, user: UInt32?, stateDir: String?, home: String?,
                 command: [String]) {
        self.agent = agent; self.workspace = workspace; self.tracer = tracer; self.database = database
        self.passedEnvironment = passedEnvironment; self.keepScratch = keepScratch; self.revertRisky = revertRisky
        self.quiet = quiet; self.user = user; self.stateDir = stateDir; self.home = home; self.command = command
    }
}

/// How a learn session ended, for the command's summary.
package struct LearnOutcome {
    /// The agent's exit status.
    package var status: Int32
    package var sessionID: String
    package var summary: LearnObservation.Summary
    /// The live view, which prints the summary (it knows what it already showed).
    package var live: LearnLiveView
    /// The user the agent ran as (its database is this user's by default).
    package var user: InvokingUser
    /// The scratch layer, kept only with `keepScratch`.
    package var scratch: String?
}

/// `cagent learn`'s session: the profile, the plan, the tracer's choice, the store opened and the observation
/// started around the sandbox, the agent run, everything stopped and recorded. The filesystem is the host's,
/// read-only, with secrets hidden and writes outside the workspace going to a scratch layer (LearnPlanner); the
/// network is the session's uplink with the gate forwarding every name and every new flow logged (metadata,
/// the host and the LAN stay dropped); the process tree is traced (eBPF or seccomp). Synchronous, like enforce:
/// the launcher owns the main thread.
package enum LearnSession {
    /// Runs the agent observed. Throws `CagentExit` with the agent's status when the agent ran and cagent failed
    /// after it (or with 126/127 when it could not be executed), other errors when cagent failed before it ran.
    package static func run(_ options: LearnOptions, environment: [String: String]) throws -> LearnOutcome {
        var invoking = try InvokingUser.agent(uid: options.user, environment: environment)
        if let home = options.home { invoking = InvokingUser(uid: invoking.uid, gid: invoking.gid, name: invoking.name, home: home) }
        // Not root (or --rootless): cagent becomes the user for good, the tracer is seccomp-notify (RootlessMode).
        let rootless = RootlessMode.isOn(requested: options.rootless)
        if rootless {
            try RootlessMode.enter(as: invoking)
            guard options.tracer == .auto || options.tracer == .seccomp else {
                throw CagentError(stage: "tracer", "--tracer \(options.tracer.rawValue) needs root; rootless learn traces with seccomp-notify",
                                  hint: "leave out --tracer (or run cagent learn as root)")
            }
        }
        // The eBPF programs load on their own thread while the rest is set up (auto: that load is the probe).
        let preload = !rootless && (options.tracer == .ebpf || options.tracer == .auto) ? LearnEbpfPreload() : nil
        defer { preload?.discard() }  // unless the observation took it
        let (places, sessionPaths) = invoking.sessionPlaces(environment: environment, actingFor: options.user != nil, stateDir: options.stateDir)
        let profile = try loadProfileForLearn(agent: options.agent, workspace: options.workspace, environment: places)
        var paths = sessionPaths
        if rootless { paths.runtime = RootlessMode.runtimeDirectory(data: paths.data, environment: places) }
        let upstream: UpstreamConfig
        do { upstream = try UpstreamConfig.system(read: FileSystem.readText) } catch {
            throw CagentError(stage: "dns upstream", "\(error)", hint: "the host's /etc/resolv.conf must name a resolver")
        }

        let sessionID = SessionID.new()
        // Keys from files the user's config names join the host environment (never printed or stored).
        let credentials = try Credentials.load(into: environment, configDirectory: paths.config, user: invoking,
                                               workspace: try EnforcePlanner.realPath(options.workspace, what: "workspace"))
        var request = LearnRequest(profile: profile, workspace: options.workspace, user: invoking, paths: paths,
                                   command: options.command, environment: credentials.environment, sessionID: sessionID)
        request.requestedEnvironment = options.passedEnvironment
        if rootless {
            // The scratch layer is a directory of the user's (a loop-mounted image needs root).
            request.rootless = true
            request.scratch = paths.data + "/scratch/" + sessionID
        }
        let agentEnvironment = AgentEnvironment(host: credentials.environment, profilePass: profile.env.pass,
                                                requested: options.passedEnvironment, home: invoking.home)
        if let line = agentEnvironment.droppedLine { FileDescriptorStream.standardError.write(line + "\n") }
        let passedNames = agentEnvironment.entries.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) }
        if let line = Credentials.startLine(credentials, passed: passedNames, home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
        request.terminal = Terminal(fd: 0).map { $0.size ?? .init(rows: 24, columns: 80) }
        var plan = try LearnPlanner.plan(request)
        if let line = WorkspaceSecrets.startLine(plan.workspaceSecrets) { FileDescriptorStream.standardError.write(line + "\n") }
        if let line = AgentBootstrap.startLine(plan.agentMapped, home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
        let selection: TracerSelection
        if rootless {
            // The eBPF tracer needs privileges a plain user lacks (bpf(), the tracepoints): seccomp-notify.
            selection = .select(.seccomp, path: environment["PATH"])
            if selection.backend != nil {
                FileDescriptorStream.standardError.write("cagent: rootless: tracing with seccomp-notify (the eBPF tracer needs root; results are inferred)\n")
            }
        } else if options.tracer == .auto, let preload { selection = .auto(ebpfFailure: preload.failure()) } else {
            selection = .select(options.tracer, path: environment["PATH"])
        }
        guard let backend = selection.backend else {
            throw CagentError(stage: "tracer", "no usable tracer: \(selection.reason)", hint: "`cagent doctor` explains")
        }
        plan.traceNotify = backend == .seccomp
        defer { if !options.keepScratch { removeTree(request.scratch) } }
        // The scratch image (mkfs, tens of ms) is made while the store opens and the tracer loads; finished
        // (and closed if unused) before the removal above runs.
        let pendingVolume = plan.volume.map { PendingVolume($0, uid: plan.uid, gid: plan.gid) }
        defer { pendingVolume?.discard() }

        learnTiming("planned")
        // Opened (and migrated) on another thread while the sandbox starts; the recorder waits for it.
        let storePath = options.database ?? Store.defaultPath(paths: CagentPaths.standard(user: invoking, environment: places))
        // `--db` is opened with the rights of the user who named it; the default database with its owner's.
        let storeIdentity = options.database != nil ? FileIdentity.invoking(environment: environment) : FileIdentity(invokingUnderRoot: invoking)
        let store = LearnPending { [invoking] in
            try Store(path: storePath, create: true, owner: invoking, identity: storeIdentity)
        }
        learnTiming("store")
        let live = LearnLiveView(quiet: options.quiet, home: invoking.home)
        live.say("DNS is open while learning: every name resolves and connections go out (metadata, the host and the LAN excepted)")
        let observation = LearnObservation(sessionID: sessionID, paths: paths, upstream: upstream, store: store,
                                           command: options.command, rules: LearnPlanner.hiddenEntries(profile) + FindingRules.systemSecrets
                                               + WorkspaceSecrets.absolutePaths(plan.workspaceSecrets, workspace: plan.workspace),
                                           backend: backend, workspace: plan.workspace, live: live)
        observation.rootless = rootless
        observation.traceePath = selection.traceePath
        // The secrets cagent was handed are cut out of recorded command lines wherever the agent uses them.
        observation.redaction = ArgvRedaction(secretValues: ArgvRedaction.secretValues(environment: credentials.environment,
                                                                                        secretNames: credentials.fromFiles,
                                                                                        hidden: agentEnvironment.dropped))
        if backend == .ebpf { observation.ebpfPreload = preload }
        defer { observation.stop() }

        let launcher = Launcher()
        launcher.pendingVolume = pendingVolume
        observation.attach(to: launcher)
        launcher.onStarted = { _ in learnTiming("agent started") }
        // The workspace is read-write here too: the same H13 check as enforce.
        let risky = RiskyChanges.snapshot(workspace: plan.workspace, user: invoking)
        let status: Int32
        do {
            learnTiming("launch")
            status = try launcher.run(plan)
        } catch let error as CagentError where error.stage.isSandboxSetup {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            throw CagentExit(status: Launcher.agentExecStatus(error) ?? ExitStatus.failure)
        }
        learnTiming("agent done")
        if let report = RiskyChanges.check(workspace: plan.workspace, before: risky, user: invoking, revert: options.revertRisky) {
            FileDescriptorStream.standardError.write(report)
        }
        // The agent ran: from here on cagent's own failure is reported, and the status stays the agent's.
        let summary: LearnObservation.Summary
        do { summary = try observation.finish() } catch {
            // The store's own errors (a full disk: SQLite 13) get the stage and what to do; the status stays the agent's.
            let failure = error as? CagentError ?? CagentError(
                stage: "store", TerminalEscape.escape("recording the session in \(storePath): \(error)"),
                hint: "free space where the database lives (or name another with --db); what was committed before the failure stays in it")
            FileDescriptorStream.standardError.write("cagent: \(failure)\n")
            throw CagentExit(status: status)
        }
        return LearnOutcome(status: status, sessionID: sessionID, summary: summary, live: live, user: invoking,
                            scratch: options.keepScratch ? request.scratch : nil)
    }

    /// The profile learn runs under: the agent's (`--agent`), else `default` as enforce resolves it, with the
    /// hide list of `base` (as enforce resolves that name) always added. Learn shows the real home, where
    /// enforce shows a shadow home: every secret base hides (shell histories, cloud credentials) must be
    /// hidden here too, and so recorded as a secret attempt when the agent tries it, whatever profile it names.
    private static func loadProfileForLearn(agent: String?, workspace: String, environment: [String: String]) throws -> Profile {
        var profile = try loadProfileForEnforce(nameOrPath: agent ?? "default", workspace: workspace, environment: environment)
        if agent == nil { profile.agent = "learn" }
        let base: Profile
        do {
            base = try ProfileResolver.standard(workspace: workspace, environment: environment).resolve("base").profile
        } catch {
            throw CagentError(stage: "profile", "learn needs the base profile's hide list and cannot load it: \(error)",
                              hint: "reinstall cagent's bundled profiles (share/cagent/profiles) or set CAGENT_PROFILES_DIR")
        }
        for entry in base.filesystem.hide where !profile.filesystem.hide.contains(entry) {
            profile.filesystem.hide.append(entry)
        }
        return profile
    }

    /// Removes the scratch layer (root-side; the paths are cagent's own under the state directory). The
    /// overlay's work dir holds a root-owned `work` directory with mode 000, hence chmod before descent.
    private static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            for name in FileSystem.list(path) { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
