import CShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// cagent's own lines (live denials, from any thread) while the agent's output is relayed to the same
/// terminal. Written straight to stderr they could land in the middle of a line the agent is writing
/// (`ccagent: blocked ...` / `url: (7) ...` was seen), and in raw terminal mode a bare "\n" does not return
/// the cursor. So during a session the launcher's relay loop prints them, between the agent's lines, with
/// "\r\n" when the terminal is raw; before and after a session they go straight to `fd`.
package final class NoticeChannel: Sendable {
    struct State {
        var relaying = false
        var pipe: [Int32] = [-1, -1]
    }
    private let state = Mutex(State())
    let fd: Int32

    package init(fd: Int32 = 2) { self.fd = fd }

    /// One line (no newline), from any thread.
    package func write(line: String) {
        // A pipe write up to PIPE_BUF is atomic: lines from several threads never interleave.
        var bytes = Array(line.utf8.prefix(4000)) + [0x0a]
        state.withLock { state in
            let target = state.relaying ? state.pipe[1] : fd
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(target, $0.baseAddress, $0.count) }
                if written < 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
            bytes = []
        }
    }

    /// The relay loop takes over: returns the read end it polls (nil when no pipe could be made).
    func beginRelay() -> Int32? {
        state.withLock { state in
            var fds: [Int32] = [-1, -1]
            guard cg_pipe(&fds, 1) == 0 else { return nil }
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) & ~O_NONBLOCK)   // writers block rather than drop
            state.pipe = fds
            state.relaying = true
            return fds[0]
        }
    }

    /// Back to direct writes; returns what was still queued for the caller to print.
    func endRelay() -> [UInt8] {
        state.withLock { state in
            guard state.relaying else { return [] }
            state.relaying = false
            var rest: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(state.pipe[0], &chunk, chunk.count)
                if count <= 0 { break }
                rest += chunk[0..<count]
            }
            close(state.pipe[0]); close(state.pipe[1])
            state.pipe = [-1, -1]
            return rest
        }
    }
}
