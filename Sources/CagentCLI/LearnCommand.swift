import ArgumentParser
import CagentCapture
import CagentCore
import CagentLaunch
import CagentLearn
import CagentDNS
import CagentNetwork
import CagentProfile
import CagentSandbox
import CagentStore
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// `cagent learn`: runs an agent observed. The filesystem is the host's, read-only, with secrets hidden and
/// writes outside the workspace going to a scratch layer (LearnPlanner); the network is the session's
/// uplink with the gate forwarding every name and every new flow logged (metadata, the host and the LAN
/// stay dropped); the process tree is traced (eBPF or seccomp). Everything goes into the store as one
/// session of kind "learn" for `cagent report`. Synchronous, like enforce: the launcher owns the main thread.
struct LearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn",
        abstract: "Run an agent observed: egress logged but permitted, secrets hidden, everything recorded.",
        // Written out: ArgumentParser's generated line does not wrap (200 columns).
        usage: """
        cagent learn [--agent PROFILE] [--workspace DIR] [--user UID] [--db PATH]
          [--tracer auto|ebpf|seccomp|tracee] [--env NAME]... [--quiet]
          [--keep-scratch] [--revert-risky] -- CMD [ARGS...]
        """,
        discussion: """
        DNS is open while learning: every name resolves and every connection (except metadata, the host and \
        the LAN) goes out. The session is recorded for `cagent report`.

        With --user, that user's places are used: its profiles, state and database. Exit status: the \
        agent's; 125 when cagent failed before the agent ran; 126/127 as in enforce. Needs root for now \
        (run it with sudo). See docs/cli.md.
        """)

    @OptionGroup var logging: LoggingOptions
    @Option(help: "The agent's profile (its hide and write lists apply; bundled name or file).") var agent: String?
    @Option(help: "The workspace, read-write at its real path (default: the current directory).") var workspace: String?
    @Option(help: "auto, ebpf, seccomp or tracee.") var tracer: String = "auto"
    @Option(help: "The database (default: cagent.db in the invoking user's data directory).") var db: String?
    @Option(name: .customLong("env"), help: "Pass this variable of cagent's environment to the agent (repeatable); the others are not passed, as in enforce.")
    var passedEnvironment: [String] = []
    @Flag(help: "Keep the scratch layer (writes outside the workspace) after the session.") var keepScratch = false
    @Flag(help: "After the session, put back changes that would run code on the host later (H13).") var revertRisky = false
    @Flag(help: "No live lines, only the summary.") var quiet = false
    @Option(help: "The agent's user id (default: SUDO_UID under sudo, else the invoking user; never 0).") var user: UInt32?
    /// Tests: cagent's state (scratch layers) here instead of the user's data directory.
    @Option(help: .hidden) var stateDir: String?
    /// Tests: the agent's home (default: the user's from the password database).
    @Option(help: .hidden) var home: String?
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []

    func run() throws {
        logging.bootstrap()
        try RootRequirement.check(command: "learn")
        learnTiming("run")
        guard let choice = TracerChoice(rawValue: tracer) else {
            throw ValidationError("--tracer must be one of \(TracerChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let environment = ProcessEnvironment.current
        var invoking = try InvokingUser.agent(uid: user, environment: environment)
        if let home { invoking = InvokingUser(uid: invoking.uid, gid: invoking.gid, name: invoking.name, home: home) }
        // The eBPF programs load on their own thread while the rest is set up (auto: that load is the probe).
        let preload = choice == .ebpf || choice == .auto ? LearnEbpfPreload() : nil
        defer { preload?.discard() }  // unless the observation took it
        let workspacePath = workspace ?? currentDirectory()
        // With --user, every place is that user's (profiles, trust store, state, the database), whatever
        // cagent's own HOME and XDG variables say.
        let places = user != nil ? invoking.placesEnvironment(environment) : environment
        let profile = try loadProfileForLearn(agent: agent, workspace: workspacePath, environment: places)
        var paths = CagentPaths.standard(user: invoking, environment: places)
        if let stateDir { paths.data = stateDir }
        let upstream: UpstreamConfig
        do { upstream = try UpstreamConfig.system(read: FileSystem.readText) } catch {
            throw CagentError(stage: "dns upstream", "\(error)", hint: "the host's /etc/resolv.conf must name a resolver")
        }

        let sessionID = EnforcePlanner.newSessionID()
        var request = LearnRequest(profile: profile, workspace: workspacePath, user: invoking, paths: paths,
                                   command: command, environment: environment, sessionID: sessionID)
        request.requestedEnvironment = passedEnvironment
        let agentEnvironment = AgentEnvironment(host: environment, profilePass: profile.env.pass,
                                                requested: passedEnvironment, home: invoking.home)
        if let line = agentEnvironment.droppedLine { FileDescriptorStream.standardError.write(line + "\n") }
        request.terminal = Terminal(fd: 0).map { $0.size ?? .init(rows: 24, columns: 80) }
        var plan = try LearnPlanner.plan(request)
        if let line = WorkspaceSecrets.startLine(plan.workspaceSecrets) { FileDescriptorStream.standardError.write(line + "\n") }
        if let line = AgentBootstrap.startLine(plan.agentMapped, home: invoking.home) { FileDescriptorStream.standardError.write(line + "\n") }
        let selection: TracerSelection
        if choice == .auto, let preload { selection = .auto(ebpfFailure: preload.failure()) } else {
            selection = .select(choice, path: environment["PATH"])
        }
        guard let backend = selection.backend else {
            throw CagentError(stage: "tracer", "no usable tracer: \(selection.reason)", hint: "`cagent doctor` explains")
        }
        plan.traceNotify = backend == .seccomp
        defer { if !keepScratch { removeTree(request.scratch) } }
        // The scratch image (mkfs, tens of ms) is made while the store opens and the tracer loads; finished
        // (and closed if unused) before the removal above runs.
        let pendingVolume = plan.volume.map { PendingVolume($0, uid: plan.uid, gid: plan.gid) }
        defer { pendingVolume?.discard() }

        learnTiming("planned")
        // Opened (and migrated) on another thread while the sandbox starts; the recorder waits for it.
        let storePath = db ?? Store.defaultPath(paths: CagentPaths.standard(user: invoking, environment: places))
        // `--db` is opened with the rights of the user who named it; the default database with its owner's.
        let storeIdentity = db != nil ? FileIdentity.invoking(environment: environment) : FileIdentity(invokingUnderRoot: invoking)
        let store = LearnPending { [invoking] in
            try Store(path: storePath, create: true, owner: invoking, identity: storeIdentity)
        }
        learnTiming("store")
        let live = LearnLiveView(quiet: quiet, home: invoking.home)
        live.say("DNS is open while learning: every name resolves and connections go out (metadata, the host and the LAN excepted)")
        let observation = LearnObservation(sessionID: sessionID, paths: paths, upstream: upstream, store: store,
                                           command: command, rules: LearnPlanner.hiddenEntries(profile) + FindingRules.systemSecrets
                                               + WorkspaceSecrets.absolutePaths(plan.workspaceSecrets, workspace: plan.workspace),
                                           backend: backend, workspace: plan.workspace, live: live)
        observation.traceePath = selection.traceePath
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
        } catch let error as CagentError where error.stage.hasPrefix("sandbox setup") {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            throw CagentExit(status: Launcher.agentExecStatus(error) ?? ExitStatus.failure)
        }
        learnTiming("agent done")
        if let report = RiskyChanges.check(workspace: plan.workspace, before: risky, user: invoking, revert: revertRisky) {
            FileDescriptorStream.standardError.write(report)
        }
        // The agent ran: from here on cagent's own failure is reported, and the status stays the agent's.
        let summary: LearnObservation.Summary
        do { summary = try observation.finish() } catch {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            throw CagentExit(status: status)
        }
        // The commands the summary prints must find this database as typed: `--user` when its default would be
        // another user's (and `sudo` when that takes rights the caller lacks), `--db` when one was named.
        let plain = InvokingUser.current(environment: environment)
        let forUser = db == nil && invoking.uid != plain.uid ? invoking.uid : nil
        let follow = LearnFollowUp(database: db, user: forUser, sudo: forUser != nil && environment["SUDO_UID"] != nil)
        live.summary(summary, sessionID: sessionID, status: status, scratch: keepScratch ? request.scratch : nil, followUp: follow)
        throw CagentExit(status: status)
    }

    /// The profile learn runs under: the agent's (`--agent`), else `default` as enforce resolves it, with the
    /// hide list of `base` (as enforce resolves that name) always added. Learn shows the real home, where
    /// enforce shows a shadow home: every secret base hides (shell histories, cloud credentials) must be
    /// hidden here too, and so recorded as a secret attempt when the agent tries it, whatever profile it names.
    private func loadProfileForLearn(agent: String?, workspace: String, environment: [String: String]) throws -> Profile {
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

    private func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        guard getcwd(&buffer, 4096) != nil else { return "." }
        return String(cString: buffer)
    }

    /// Removes the scratch layer (root-side; the paths are cagent's own under the state directory). The
    /// overlay's work dir holds a root-owned `work` directory with mode 000, hence chmod before descent.
    private func removeTree(_ path: String) {
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
