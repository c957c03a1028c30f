import CagentCore
#if canImport(Glibc)
import Glibc
#endif

// What every command shares (the full command set in CagentCLI and the lean enforce path here). No
// ArgumentParser: the front does not link it (docs/benchmarks.md "Sandbox start").

/// Thrown by a command to end the process with a chosen status (e.g. the agent's own exit status).
package struct CagentExit: Error {
    package var status: Int32
    package init(status: Int32) { self.status = status }
}

/// Unbuffered writes to a file descriptor (stdout/stderr), without Foundation's shared streams.
package struct FileDescriptorStream: Sendable {
    package let fd: Int32
    package init(fd: Int32) { self.fd = fd }
    package static let standardOutput = FileDescriptorStream(fd: 1)
    package static let standardError = FileDescriptorStream(fd: 2)

    package func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR { continue } else { return } }
            bytes = bytes.dropFirst(written)
        }
    }
}


/// cagent's exit statuses (docs/cli.md "Exit status"). When the agent ran, cagent exits with the agent's
/// status; otherwise with one of these, like env(1) and the shells, so that a wrapper can tell cagent's own
/// failure from anything the agent says.
package enum ExitStatus {
    /// cagent failed and the agent never ran: setup, a profile or user error, a usage error.
    package static let failure: Int32 = 125
    /// The agent command exists but could not be executed.
    package static let cannotExecute: Int32 = 126
    /// The agent command was not found.
    package static let notFound: Int32 = 127
}

/// How a command's error ends the process, for both entry points: a CagentError becomes
/// "cagent: STAGE failed: ... / hint:" and status 125, a CagentExit its status.
package enum ErrorBoundary {
    /// For an error that names no way forward: where to look next.
    static let defaultHint = "docs/cli.md says what each command needs; `cagent doctor` checks this machine"

    /// Exits for a CagentError or a CagentExit; returns for any other error (the caller's to report).
    package static func exitIfOurs(_ error: any Error) {
        if var error = error as? CagentError {
            if error.hint == nil { error.hint = defaultHint }
            FileDescriptorStream.standardError.write("cagent: \(error)\n")
            Glibc.exit(ExitStatus.failure)
        }
        if let exit = error as? CagentExit { Glibc.exit(exit.status) }
    }
}

