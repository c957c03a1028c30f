import CShim
import CagentCore
import CagentEvents
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The Tracee backend: runs `tracee` (when on PATH) scoped to the session and feeds its JSON lines to
/// TraceeParser, as the importer does for a saved trace. Tracee needs kprobes/fentry, which some kernels
/// (this project's CI machine) lack; the plumbing is tested with a stand-in that replays real samples.
// @unchecked: a child process and its output fd; the rest is guarded by `lock`, mutated in place per line.
package final class TraceeRunner: LearnTracer, @unchecked Sendable {
    package let backend = TracerBackend.tracee

    /// Which tasks Tracee follows.
    package enum Scope: Sendable, Hashable {
        /// The descendants of a process (start the root held, then release it once Tracee runs).
        case tree(Int32)
        /// Every task in a pid namespace (the sandbox's), by its inode number.
        case pidNamespace(UInt64)

        var arguments: [String] {
            switch self {
            case .tree(let pid): return ["--scope", "tree=\(pid)"]
            case .pidNamespace(let inode): return ["--scope", "pidns=\(inode)"]
            }
        }
    }

    /// The events learn mode asks for; each is one TraceeParser maps.
    package static let events = [
        "sched_process_exec", "sched_process_exit", "security_file_open", "security_inode_unlink",
        "security_inode_mkdir", "security_inode_rename", "security_socket_connect", "security_socket_bind",
        "net_packet_dns",
    ]

    package static func arguments(scope: Scope) -> [String] {
        ["--output", "json", "--output", "option:parse-arguments"] + scope.arguments
            + ["--events", events.joined(separator: ",")]
    }

    private let pid: pid_t
    private let output: Int32
    private let sink: TraceSink
    private let lock = Mutex(())   // guards the mutable state below
    private var summary = TraceSummary(backend: .tracee)
    private var final: TraceSummary?
    private var exitStatus: Int32?
    private let done = Latch()
    private var malformedLines: [(line: Int, reason: String)] = []
    /// Lines that were not a Tracee event (malformed), with their number; at most 100 kept.
    package var malformed: [(line: Int, reason: String)] { lock.withLock { _ in malformedLines } }

    /// Starts `executable` (the `tracee` found on PATH) with the scope's arguments. Plain posix_spawn and a
    /// close-on-exec pipe: no descriptor of it leaks into a process started meanwhile by another thread.
    package init(executable: String, scope: Scope, sink: TraceSink) throws {
        self.sink = sink
        var fds: [Int32] = [-1, -1]
        guard cg_pipe_cloexec(&fds) == 0 else { throw CagentError.system("tracee", "cannot create a pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)  // dup2 clears close-on-exec on stdout
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = [executable] + Self.arguments(scope: scope)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var child: pid_t = 0
        var rc = posix_spawn(&child, executable, &actions, nil, &cArgs, environ)
        // ETXTBSY: the file is still open for writing somewhere (just installed, or its descriptor inherited
        // by a child another thread is starting): it clears within moments.
        for _ in 0..<50 where rc == ETXTBSY {
            usleep(10_000)
            rc = posix_spawn(&child, executable, &actions, nil, &cArgs, environ)
        }
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw CagentError(stage: "tracee", "cannot start \(executable)", errno: rc,
                              hint: "`cagent doctor` shows whether tracee is usable; `--tracer ebpf` or `seccomp` instead")
        }
        pid = child
        output = fds[0]
        let thread = Thread { [self] in read() }
        thread.name = "cagent-tracee"
        thread.start()
    }

    private func read() {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var number = 0
        func line(_ bytes: ArraySlice<UInt8>) {
            number += 1
            let parsed = TraceeParser.parse(line: bytes)
            lock.withLock { _ in
                switch parsed {
                case .blank: break
                case .unknown: summary.unreadable += 1
                case .malformed(let reason):
                    summary.unreadable += 1
                    if malformedLines.count < 100 { malformedLines.append((number, reason)) }
                case .events(_, let events):
                    summary.syscalls += 1
                    summary.delivered += UInt64(events.count)
                    for event in events { sink.events(event) }
                }
            }
        }
        while true {
            let n = Glibc.read(output, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer += chunk[0..<n]
            var start = 0
            while let newline = buffer[start...].firstIndex(of: 10) {
                line(buffer[start..<newline])
                start = newline + 1
            }
            buffer.removeFirst(start)
            if buffer.count > TraceeImporter.maxLineBytes { buffer.removeAll() }  // hostile: drop an endless line
        }
        if !buffer.isEmpty { line(buffer[...]) }
        close(output)
        done.open()
    }

    private func reap() {
        if lock.withLock({ _ in exitStatus != nil }) { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        lock.withLock { _ in exitStatus = status }
    }

    /// Asks Tracee to finish (SIGINT), waits for it and for its last line.
    package func stop() throws -> TraceSummary {
        let (finished, running) = lock.withLock { _ in (final, exitStatus == nil) }
        if let finished { return finished }
        if running { kill(pid, SIGINT) }
        reap()
        done.wait()
        return lock.withLock { _ in
            final = summary
            return summary
        }
    }

    /// Waits for Tracee to end by itself (a stand-in that replays a file).
    package func waitForEnd() { reap() }

    deinit { _ = try? stop() }
}
