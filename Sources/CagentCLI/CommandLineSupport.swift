import ArgumentParser
import CagentCore
import CagentLaunch
#if canImport(Glibc)
import Glibc
#endif

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

/// The command tree's error boundary: cagent's own errors as everywhere (ErrorBoundary), anything else
/// (usage errors, --help) ArgumentParser's own output.
public enum CommandBoundary {
    public static func exit(after error: any Error, root: any ParsableCommand.Type) -> Never {
        ErrorBoundary.exitIfOurs(error)
        root.exit(withError: error)
    }
}
