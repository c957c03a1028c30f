import ArgumentParser
import CagentCore
import CagentLaunch
import CagentLearn
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// `cagent learn`: runs an agent observed. The filesystem is the host's, read-only, with secrets hidden and
/// writes outside the workspace going to a scratch layer (LearnPlanner); the network is the session's
/// uplink with the gate forwarding every name and every new flow logged (metadata, the host and the LAN
/// stay dropped); the process tree is traced (eBPF or seccomp). Everything goes into the store as one
/// session of kind "learn" for `cagent report`. The session itself is CagentLearn's `LearnSession`; the command
/// reads and checks the options and prints the summary.
struct LearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn",
        abstract: "Run an agent observed: egress logged but permitted, secrets hidden, everything recorded.",
        // Written out: ArgumentParser's generated line does not wrap (200 columns).
        usage: """
        cagent learn [--agent PROFILE] [--workspace DIR] [--user UID] [--db PATH]
          [--tracer auto|ebpf|seccomp|tracee] [--env NAME]... [--quiet]
          [--keep-scratch] [--revert-risky] [--rootless] -- CMD [ARGS...]
        """,
        discussion: """
        DNS is open while learning: every name resolves and every connection (except metadata, the host and \
        the LAN) goes out. The session is recorded for `cagent report`.

        With --user, that user's places are used: its profiles, state and database. Exit status: the \
        agent's; 125 when cagent failed before the agent ran; 126/127 as in enforce. As a plain user it \
        runs in rootless mode, traced with seccomp-notify (docs/security.md "Rootless learn"). See docs/cli.md.
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
    @Flag(help: "Rootless mode even as root (chosen by itself when cagent is not root): cagent first becomes the agent's user; the tracer is seccomp-notify.")
    var rootless = false
    @Flag(help: "cagent is a container's entrypoint (root in it, CAP_NET_ADMIN and CAP_SYS_PTRACE): the container is the sandbox, recorded into --db on a volume. See docs/docker.md.")
    var inContainer = false
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []

    func run() throws {
        if inContainer { return try runInContainer() }
        logging.bootstrap()
        learnTiming("run")
        guard let choice = TracerChoice(rawValue: tracer) else {
            throw ValidationError("--tracer must be one of \(TracerChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let environment = ProcessEnvironment.current
        var options = LearnOptions(agent: agent, workspace: workspace ?? FileSystem.currentDirectory(), tracer: choice, database: db,
                                   passedEnvironment: passedEnvironment, keepScratch: keepScratch, revertRisky: revertRisky,
                                   quiet: quiet, user: user, stateDir: stateDir, home: home, command: command)
        options.rootless = rootless
        let outcome = try LearnSession.run(options, environment: environment)
        // The commands the summary prints must find this database as typed: `--user` when its default would be
        // another user's (and `sudo` when that takes rights the caller lacks), `--db` when one was named.
        let plain = InvokingUser.current(environment: environment)
        let forUser = db == nil && outcome.user.uid != plain.uid ? outcome.user.uid : nil
        let follow = LearnFollowUp(database: db, user: forUser, sudo: forUser != nil && InvokingUser.underSudo(environment))
        outcome.live.summary(outcome.summary, sessionID: outcome.sessionID, status: outcome.status, scratch: outcome.scratch,
                             followUp: follow)
        throw CagentExit(status: outcome.status)
    }

    /// Container mode (ContainerMode) with learn's observation; the store is `--db`, a file on a volume.
    private func runInContainer() throws {
        guard let db else {
            throw CagentError(stage: "arguments", "learn --in-container needs --db",
                              hint: "name a file on a volume (docker run -v DIR:/state ... learn --in-container --db /state/cagent.db): the host reads it")
        }
        if tracer != "auto" && tracer != "seccomp" {
            throw CagentError(stage: "arguments", "learn --in-container traces with seccomp only", hint: "drop --tracer")
        }
        let command = command, quiet = quiet
        let options = EnforceOptions(verbose: logging.verbose, debug: logging.debug, profile: agent ?? "default", workspace: workspace,
                                     user: user, passEnvironment: passedEnvironment, inContainer: true, command: command)
        try ContainerMode.run(options) { profile in
            try ContainerLearnObserver(profile: profile, database: db, command: command, quiet: quiet, home: "", upstreamOverride: [])
        }
    }

}
