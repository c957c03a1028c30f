import ArgumentParser
import CagentCore
import CagentLaunch
#if canImport(Glibc)
import Glibc
#endif

package enum CagentVersion {
    package static let string = "0.1.0"
}

/// `--verbose` / `--debug`, shared by every command.
package struct LoggingOptions: ParsableArguments {
    @Flag(name: .long, help: "Log what cagent does (info level).")
    package var verbose = false
    @Flag(name: .long, help: "Log everything, including netlink and setup details.")
    package var debug = false

    package init() {}

    package func bootstrap() { CagentLog.bootstrap(verbose: verbose, debug: debug) }
}

/// The command tree's error boundary: cagent's own errors as everywhere (ErrorBoundary), anything else
/// (usage errors, --help) in ArgumentParser's words, usage errors with status 125.
package enum CommandBoundary {
    package static func exit(after error: any Error, root: any ParsableCommand.Type) -> Never {
        ErrorBoundary.exitIfOurs(error)
        // Help and --version (status 0), and a status a command chose (ExitCode): ArgumentParser's own way.
        if error is ExitCode || root.exitCode(for: error) == .success { root.exit(withError: error) }
        // A usage error is a cagent failure before any agent ran: 125, not ArgumentParser's 64, which an
        // agent may return itself. Its message ends with the usage line and `--help`: the hint.
        FileDescriptorStream.standardError.write(root.fullMessage(for: error) + "\n")
        Glibc.exit(ExitStatus.failure)
    }
}
