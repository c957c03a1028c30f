import CagentCore
#if canImport(Glibc)
import Glibc
#endif

// What every command shares (the full command set in CagentCLI and the lean enforce path here). No
// ArgumentParser: the front does not link it (docs/benchmarks.md "Sandbox start").

/// Thrown by a command to end the process with a chosen status (e.g. the agent's own exit status).
public struct CagentExit: Error {
    public var status: Int32
    public init(status: Int32) { self.status = status }
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


/// How a command's error ends the process, for both entry points: a CagentError becomes
/// "cagent: STAGE failed: ... / hint:" and status 1, a CagentExit its status.
public enum ErrorBoundary {
    /// Exits for a CagentError or a CagentExit; returns for any other error (the caller's to report).
    public static func exitIfOurs(_ error: any Error) {
        if let error = error as? CagentError {
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            Glibc.exit(1)
        }
        if let exit = error as? CagentExit { Glibc.exit(exit.status) }
    }
}
