#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the package: which stage or operation failed, the errno if there was one, and what
/// the user can do about it. Every module throws this, so the top-level boundary prints one shape.
package struct CagentError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Where it failed: typed where code decides on it (a sandbox setup failure, a launch step), otherwise the
    /// operation named in words ("mount /usr", "nft: add table", "profile").
    package var stage: Stage
    /// What went wrong, in words.
    package var message: String
    /// errno when a system call failed.
    package var errno: Int32?
    /// The next step for the user, when there is one.
    package var hint: String?

    package init(stage: Stage, _ message: String, errno: Int32? = nil, hint: String? = nil) {
        self.stage = stage
        self.message = message
        self.errno = errno
        self.hint = hint
    }

    /// An operation named in words: `CagentError(stage: "mount \(path)", ...)`.
    package init(stage: String, _ message: String, errno: Int32? = nil, hint: String? = nil) {
        self.init(stage: .named(stage), message, errno: errno, hint: hint)
    }

    /// An error for a failed system call, reading the calling thread's errno.
    package static func system(_ stage: String, _ message: String, hint: String? = nil) -> CagentError {
        let code = Glibc.errno
        return CagentError(stage: stage, message, errno: code, hint: hint)
    }

    /// This error as a failure to set up the sandbox (the agent never ran: exit status 125, docs/cli.md),
    /// printed "sandbox setup: STAGE failed: ..."; an error that already is one stays as it is.
    package func duringSetup(hint fallback: String? = nil) -> CagentError {
        if stage.isSandboxSetup { return self }
        return CagentError(stage: .sandboxSetup(stage), message, errno: errno, hint: hint ?? fallback)
    }

    package var description: String {
        var text = "\(stage) failed: \(message)"
        if let errno {
            text += ": \(String(cString: strerror(errno))) (errno \(errno))"
        }
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }

    /// Where an error happened. Its text is what the user reads before "failed".
    package indirect enum Stage: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral {
        /// An operation named in words: a label for the reader, never matched on.
        case named(String)
        /// A step of a sandbox's start (SetupStage): the one `--fail-at-stage` names.
        case step(SetupStage)
        /// The sandbox could not be set up, at the inner stage (nil: no step known); the agent never ran.
        case sandboxSetup(Stage?)

        package init(stringLiteral value: String) { self = .named(value) }

        /// Whether the agent never ran because its sandbox could not be set up.
        package var isSandboxSetup: Bool {
            if case .sandboxSetup = self { return true }
            return false
        }

        package var description: String {
            switch self {
            case .named(let text): return text
            case .step(let step): return step.description
            case .sandboxSetup(nil): return "sandbox setup"
            case .sandboxSetup(let inner?): return "sandbox setup: \(inner)"
            }
        }
    }
}
