import ArgumentParser
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

// What every command shares (the full command set in CagentCLI and the lean enforce path here).

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
    public init(fd: Int32) { self.fd = fd }
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


/// The one error boundary of both entry points: a CagentError becomes "cagent: STAGE failed: ... / hint:"
/// and status 1, a CagentExit its status, anything else (usage errors, --help) ArgumentParser's own output.
public enum CommandBoundary {
    public static func exit(after error: any Error, root: any ParsableCommand.Type) -> Never {
        if let error = error as? CagentError {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            Glibc.exit(1)
        }
        if let exit = error as? CagentExit { Glibc.exit(exit.status) }
        root.exit(withError: error)
    }
}
