import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The user's terminal while an agent runs on a pty: raw mode so that every key (Ctrl-C, Ctrl-Z included)
/// goes to the sandbox's pty, whose line discipline turns them into signals for the agent. The saved
/// state is restored on every exit path (`restore` is idempotent and called from `defer`).
package final class Terminal {
    package let fd: Int32
    private var saved = termios()
    private var raw = false

    package init?(fd: Int32) {
        guard isatty(fd) == 1 else { return nil }
        self.fd = fd
        guard tcgetattr(fd, &saved) == 0 else { return nil }
    }

    package var size: SandboxPlan.TerminalSize? {
        var rows: UInt16 = 0, columns: UInt16 = 0
        guard cg_get_winsize(fd, &rows, &columns) == 0, rows > 0, columns > 0 else { return nil }
        return .init(rows: rows, columns: columns)
    }

    package func makeRaw() {
        var settings = saved
        cfmakeraw(&settings)
        if tcsetattr(fd, TCSAFLUSH, &settings) == 0 { raw = true }
    }

    package func restore() {
        guard raw else { return }
        var settings = saved
        _ = tcsetattr(fd, TCSAFLUSH, &settings)
        raw = false
    }

    /// Copies the user's window size to the pty (at start and on SIGWINCH).
    package func copySize(to master: Int32) {
        if let size { _ = cg_set_winsize(master, size.rows, size.columns) }
    }

    deinit { restore() }
}
