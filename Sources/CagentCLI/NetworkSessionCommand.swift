import ArgumentParser
import CagentCore
import CagentLaunch
import CagentNetwork
#if canImport(Glibc)
import Glibc
#endif

/// `cagent _network-session`: sets up one session's uplink and firewall for a network namespace that already
/// exists, prints `ready <interface> <sandbox-address> nflog <group> setup_us <setup time>`, and tears it down on SIGTERM/SIGINT/SIGHUP. Hidden: it
/// is the network part alone, for the crash tests (SIGKILL at each setup step) and for diagnosing a host.
struct NetworkSessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_network-session", abstract: "Set up only a session's network for an existing namespace (diagnostics).",
        shouldDisplay: false)

    @Option(help: "The sandbox's network namespace file (/run/netns/NAME or /proc/PID/ns/net).") var sandboxNetns: String
    @Option(help: "Where cagent's side lives (default: this process's namespace).") var hostNetns: String?
    @Option(help: "Session id: 1-12 characters of [a-z0-9].") var id: String
    @Option(help: "A literal entry to allow: CIDR, address, or ADDRESS:PORT/PROTO (repeatable).") var allow: [String] = []
    @Option(help: "Runtime directory (lock and leases).") var runtime: String?
    @Option(help: "Test hook: SIGKILL this process right after the named setup step.") var crashAfter: String?

    func run() throws {
        // The host's side of a root session (a veth in the host's namespace, the host's chains, /run/cagent):
        // one clear line for a plain user instead of the setup lock's EACCES.
        guard geteuid() == 0 else {
            throw CagentError(stage: "arguments", "_network-session needs root: it makes a root session's veth and the host's nftables chains",
                              hint: "run it with sudo; a plain user's `cagent enforce` sets up its own network (rootless mode)")
        }
        let entries = try allow.map(AllowEntry.parse)
        let environment = ProcessEnvironment.current
        var paths = CagentPaths.standard(user: InvokingUser.current(environment: environment), environment: environment)
        if let runtime { paths.runtime = runtime }
        var crash: NetworkSession.Step?
        if let crashAfter {
            guard let step = NetworkSession.Step(rawValue: crashAfter) else {
                throw CagentError(stage: "arguments", "unknown step \(crashAfter)",
                                  hint: NetworkSession.Step.allCases.map(\.rawValue).joined(separator: ", "))
            }
            crash = step
        }
        // Signals are taken synchronously below, so teardown runs on this thread (the one that may setns).
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let session = try NetworkSession.setUp(
            sessionID: id, sandbox: NetworkNamespace(path: sandboxNetns), entries: entries, paths: paths,
            host: try hostNetns.map { try NetworkNamespace(path: $0) }, crashAfter: crash)
        clock_gettime(CLOCK_MONOTONIC, &end)
        let microseconds = (Int(end.tv_sec) - Int(start.tv_sec)) * 1_000_000 + (Int(end.tv_nsec) - Int(start.tv_nsec)) / 1000
        for warning in session.warnings { FileDescriptorStream.standardError.write("cagent: warning: \(TerminalEscape.escape(warning))\n") }
        let address = session.addresses.sandbox4?.description ?? session.addresses.sandbox6?.description ?? "-"
        FileDescriptorStream.standardOutput.write("ready \(session.interface) \(address) nflog \(session.nflogGroup) setup_us \(microseconds)\n")
        var received: Int32 = 0
        sigwait(&signals, &received)
        try session.tearDown()
    }
}
