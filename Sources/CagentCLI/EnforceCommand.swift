import ArgumentParser
import CagentCore
import CagentLaunch

/// `cagent enforce`: run an agent in the sandbox the profile describes. Synchronous on purpose: the
/// launcher runs on the main thread, which lives as long as the sandbox (the parent-death signal follows
/// the thread that cloned cagent-init).
package struct EnforceCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "enforce",
        abstract: "Run an agent under a profile: the profile's filesystem view, no privileges, its own terminal.",
        // Written out: ArgumentParser's generated line does not wrap (200 columns).
        usage: """
        cagent enforce --profile PROFILE [--workspace DIR] [--user UID]
          [--offline] [--env NAME]... [--allow-proxy | --proxy URL]
          [--ssh-key FILE] [--publish PORT] [--revert-risky] [--json]
          [--in-container | --rootless] -- CMD [ARGS...]
        """,
        discussion: """
        The agent's exit status becomes cagent's (128+N when it died of signal N). 125: cagent failed and \
        the agent never ran (setup, profile, user, usage); 126/127: the agent command cannot be executed / \
        was not found.

        Ctrl-C interrupts the agent; Ctrl-Z suspends agent and cagent together (`fg` resumes both). \
        As a plain user it runs in rootless mode (docs/security.md "Rootless mode"). See docs/cli.md.
        """)

    @OptionGroup var logging: LoggingOptions
    @Option(help: "Profile file or bundled name.") var profile: String
    @Option(help: "The workspace, bound read-write at its real path (default: the current directory).")
    var workspace: String?
    @Option(help: "The agent's user id (default: SUDO_UID under sudo, else the invoking user; never 0).")
    var user: UInt32?
    @Flag(help: "After the session, put back risky changes the agent made (git config keys, hooks, .envrc, ...).")
    var revertRisky = false
    @Flag(help: "No network at all: the sandbox's namespace has only loopback (no uplink, no DNS gate).")
    var offline = false
    @Flag(help: "At exit, print the network summary as JSON (counts and every distinct entry) instead of the line.")
    var json = false
    @Option(name: .customLong("env"), help: "Pass this variable of cagent's environment to the agent (repeatable); besides the profile's env.pass and TERM, LANG, LC_*, TZ, PATH, none is.")
    var passEnvironment: [String] = []
    @Flag(help: "Let a proxy variable (HTTPS_PROXY, ...) reach the agent although everything fetched through the proxy bypasses the network allowlist.")
    var allowProxy = false
    @Option(help: ArgumentHelp("The host reaches the web only through this HTTP proxy: the agent's HTTP(S)_PROXY name cagent's filtering proxy, which passes the profile's hosts on to URL and refuses the rest.", valueName: "URL"))
    var proxy: String?
    @Option(help: ArgumentHelp("git over ssh: this deploy key (not one in ~/.ssh, which stays hidden), with known_hosts for the profile's ssh hosts (network.endpoints HOST:22/tcp) only.", valueName: "FILE"))
    var sshKey: String?
    @Option(help: ArgumentHelp("An OAuth login's callback: the host's 127.0.0.1:PORT reaches the sandbox's localhost:PORT (that port only).", valueName: "PORT"))
    var publish: UInt16?
    /// The gate's upstream resolvers instead of the host's /etc/resolv.conf (ADDRESS or ADDRESS:PORT).
    @Option(help: .hidden) var upstreamDns: [String] = []
    @Option(help: .hidden) var failAtStage: String?
    /// Benchmarks: write the serialized plan to a file and exit (scripts/sandbox-start-probe.c replays it).
    @Option(help: .hidden) var dumpPlan: String?
    /// Tests and benchmarks: keep cagent's state (the shadow home) here instead of in the user's home.
    @Option(help: .hidden) var stateDir: String?
    @Flag(help: "Ask on the terminal about a name not in the profile: allow once, for the session, add to the profile, or deny.")
    var ask = false
    /// Seconds an --ask question waits before it denies.
    @Option(help: .hidden) var askTimeout: Double = 30
    @Option(help: "The database the session is recorded in (default: cagent.db in the invoking user's data directory).")
    var db: String?
    @Flag(help: "cagent is a container's entrypoint (root in it, CAP_NET_ADMIN): the container is the sandbox; firewall, drop every capability, switch to the agent user, exec. See docs/docker.md.")
    var inContainer = false
    @Flag(help: "Rootless mode even as root (chosen by itself when cagent is not root): cagent first becomes the agent's user, then sets up the sandbox without any privilege of the host's.")
    var rootless = false
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []

    package init() {}

    package func validate() throws {
        guard askTimeout.isFinite, askTimeout > 0 else { throw ValidationError("--ask-timeout must be a positive number of seconds") }
        guard publish != 0 else { throw ValidationError("--publish needs a port from 1 to 65535") }
    }

    /// What was asked, as plain values (the fast path builds the same from argv: EnforceOptions.parseCommon).
    package var options: EnforceOptions {
        var options = EnforceOptions(verbose: logging.verbose, debug: logging.debug, profile: profile, workspace: workspace, user: user,
                       revertRisky: revertRisky, offline: offline, json: json, upstreamDns: upstreamDns,
                       passEnvironment: passEnvironment, allowProxy: allowProxy, proxy: proxy, failAtStage: failAtStage.map { SetupStage($0) }, dumpPlan: dumpPlan, stateDir: stateDir, db: db,
                       ask: ask, askTimeout: askTimeout, sshKey: sshKey, publish: publish, inContainer: inContainer,
                       command: command)
        options.rootless = rootless
        return options
    }

    package func run() throws { try options.run() }
}

