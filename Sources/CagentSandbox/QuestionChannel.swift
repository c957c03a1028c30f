import CShim
import CagentCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A question to the user while the agent runs (`cagent enforce --ask`). cagent owns the outer terminal: the
/// launcher's relay loop shows the question, pauses relaying the agent's output (and cagent's own lines)
/// while it is open, and reads the answer from the user's keys instead of passing them to the agent.
/// `ask` is called from any thread and blocks until a listed key, or the timeout (nil: no answer).
/// Without a terminal (or outside a session) there is nobody to ask: nil at once.
package final class QuestionChannel: Sendable {
    struct State {
        var relaying = false
        var prompt: [UInt8] = []
        var keys: [UInt8] = []
        /// Open: shown (or to be shown) and unanswered.
        var open = false
        var answer: UInt8?
        var serial = 0
    }
    private let state = Mutex(State())
    /// The relay loop polls `wake[0]`; an asker waits on `answered[0]`; `turn` holds one byte: one question at a time.
    let wake: [Int32]
    let answered: [Int32]
    private let turn: [Int32]

    package init() {
        func makePipe() -> [Int32] {
            var fds: [Int32] = [-1, -1]
            guard cg_pipe(&fds, 1) == 0 else { return [-1, -1] }
            return fds
        }
        wake = makePipe(); answered = makePipe(); turn = makePipe()
        var byte: UInt8 = 1
        _ = write(turn[1], &byte, 1)
    }

    deinit { for fd in wake + answered + turn where fd >= 0 { close(fd) } }

    /// Shows `prompt` (one or more lines, no trailing newline) and waits for one of `keys` (compared in lower
    /// case) for at most `timeout` seconds.
    package func ask(_ prompt: String, keys: [Character], timeout: Double) -> Character? {
        let deadline = Self.now() + timeout
        guard state.withLock({ $0.relaying }), wait(turn[0], until: deadline) else { return nil }
        var token: UInt8 = 0
        guard read(turn[0], &token, 1) == 1 else { return nil }
        defer { var byte: UInt8 = 1; _ = write(turn[1], &byte, 1) }
        var stale = [UInt8](repeating: 0, count: 16)
        while read(answered[0], &stale, stale.count) > 0 {}
        state.withLock { state in
            state.prompt = Array(prompt.utf8); state.keys = keys.flatMap { Array(String($0).lowercased().utf8) }
            state.open = true; state.answer = nil; state.serial += 1
        }
        poke(wake[1])
        let gotAnswer = wait(answered[0], until: deadline)
        if gotAnswer { while read(answered[0], &stale, stale.count) > 0 {} }
        let answer: UInt8? = state.withLock { state in
            defer { state.open = false }
            return state.answer
        }
        if answer == nil { poke(wake[1]) }   // the relay loop takes the question down
        return answer.map { Character(Unicode.Scalar($0)) }
    }

    // MARK: the relay loop's side

    func beginRelay() -> Int32 { state.withLock { $0.relaying = true }; return wake[0] }
    func endRelay() {
        state.withLock { $0.relaying = false; $0.open = false }
        poke(answered[1])   // a question still waiting ends now (unanswered)
    }

    /// What the relay loop should show now: the open question's prompt and serial, or nil.
    func current() -> (prompt: [UInt8], serial: Int)? {
        var drain = [UInt8](repeating: 0, count: 64)
        while read(wake[0], &drain, drain.count) > 0 {}
        return state.withLock { $0.open && $0.answer == nil ? ($0.prompt, $0.serial) : nil }
    }

    /// A key the user typed while question `serial` was shown; true when it answered it.
    func offer(_ byte: UInt8, serial: Int) -> Bool {
        let lower = byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
        let taken = state.withLock { state -> Bool in
            guard state.open, state.serial == serial, state.answer == nil, state.keys.contains(lower) else { return false }
            state.answer = lower
            return true
        }
        if taken { poke(answered[1]) }
        return taken
    }

    private func poke(_ fd: Int32) { var byte: UInt8 = 1; _ = write(fd, &byte, 1) }

    private func wait(_ fd: Int32, until deadline: Double) -> Bool {
        while true {
            let left = deadline - Self.now()
            if left <= 0 { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&entry, 1, Int32(min(left * 1000, 60_000).rounded(.up)))
            if rc > 0 { return true }
            if rc < 0 && errno != EINTR { return false }
        }
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
