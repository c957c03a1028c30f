#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the package: which stage or operation failed, the errno if there was one, and what
/// the user can do about it. Every module throws this, so the top-level boundary prints one shape.
public struct CagentError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The setup stage or operation, e.g. "mount /usr", "nft: add table", "profile".
    public var stage: String
    /// What went wrong, in words.
    public var message: String
    /// errno when a system call failed.
    public var errno: Int32?
    /// The next step for the user, when there is one.
    public var hint: String?

    public init(stage: String, _ message: String, errno: Int32? = nil, hint: String? = nil) {
        self.stage = stage
        self.message = message
        self.errno = errno
        self.hint = hint
    }

    /// An error for a failed system call, reading the calling thread's errno.
    public static func system(_ stage: String, _ message: String, hint: String? = nil) -> CagentError {
        let code = Glibc.errno
        return CagentError(stage: stage, message, errno: code, hint: hint)
    }

    public var description: String {
        var text = "\(stage) failed: \(message)"
        if let errno {
            text += ": \(String(cString: strerror(errno))) (errno \(errno))"
        }
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }
}
