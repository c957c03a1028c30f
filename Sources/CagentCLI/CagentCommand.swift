import ArgumentParser
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The `cagent` command tree. Commands are grouped by what they act on; the top-level `main` is the one
/// error boundary that turns failures into "stage failed: reason / hint" lines.
public struct CagentCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cagent",
        abstract: "A Linux sandbox for AI coding agents that learns what the agent needs, then enforces exactly that.",
        discussion: """
        Typical use:
          cagent learn -- claude            # observe: egress logged, secrets hidden, everything recorded
          cagent profile propose            # a minimal profile from what was observed, for review
          cagent enforce --profile claude-code -- claude
        """,
        version: CagentVersion.string,
        subcommands: [
            LearnCommand.self, EnforceCommand.self, ProfileCommand.self,
            SessionsCommand.self, ReportCommand.self, ImportCommand.self, ExportCommand.self,
            DoctorCommand.self, PolicyCommand.self, NetworkSessionCommand.self, SyntheticCommand.self, TraceCommand.self,
        ]
    )

    public init() {}

    /// Parses, runs, and reports errors in one place.
    public static func entry() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CagentError {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            Glibc.exit(1)
        } catch let exit as CagentExit {
            Glibc.exit(exit.status)
        } catch {
            CagentCommand.exit(withError: error)
        }
    }
}

/// Thrown by a command to end the process with a chosen status (e.g. the agent's own exit status).
public struct CagentExit: Error {
    public var status: Int32
    public init(status: Int32) { self.status = status }
}

public enum CagentVersion {
    public static let string = "0.1.0"
}

/// `--verbose` / `--debug`, shared by every command.
public struct LoggingOptions: ParsableArguments {
    @Flag(name: .long, help: "Log what cagent does (info level).")
    public var verbose = false
    @Flag(name: .long, help: "Log everything, including netlink and setup details.")
    public var debug = false

    public init() {}

    public func bootstrap() { CagentLog.bootstrap(verbose: verbose, debug: debug) }
}

/// Unbuffered writes to a file descriptor (stdout/stderr), without Foundation's shared streams.
public struct FileDescriptorStream: Sendable {
    public let fd: Int32
    public static let standardOutput = FileDescriptorStream(fd: 1)
    public static let standardError = FileDescriptorStream(fd: 2)

    public func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR { continue } else { return } }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// A command that a later piece of work builds; it says so instead of pretending.
func notBuiltYet(_ what: String) -> CagentError {
    CagentError(stage: what, "not built yet in this version",
                hint: "see `cagent --help` and docs/cli.md for what works today")
}
