import CagentCore
import CagentStore
import Foundation

/// The Tracee backend: runs `tracee` (when on PATH) scoped to the session and feeds its JSON lines to
/// TraceeParser, as the importer does for a saved trace. Tracee needs kprobes/fentry, which some kernels
/// (this project's CI machine) lack; the plumbing is tested with a stand-in that replays real samples.
public final class TraceeRunner: LearnTracer, @unchecked Sendable {
    public let backend = TracerBackend.tracee

    /// Which tasks Tracee follows.
    public enum Scope: Sendable, Hashable {
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
    public static let events = [
        "sched_process_exec", "sched_process_exit", "security_file_open", "security_inode_unlink",
        "security_inode_mkdir", "security_inode_rename", "security_socket_connect", "net_packet_dns",
    ]

    public static func arguments(scope: Scope) -> [String] {
        ["--output", "json", "--output", "option:parse-arguments"] + scope.arguments
            + ["--events", events.joined(separator: ",")]
    }

    private let process = Process()
    private let sink: TraceSink
    private let lock = NSLock()
    private var summary = TraceSummary(backend: .tracee)
    private var final: TraceSummary?
    private let done = DispatchSemaphore(value: 0)
    /// Lines that were not a Tracee event (malformed), with their number; at most 100 kept.
    public private(set) var malformed: [(line: Int, reason: String)] = []

    /// Starts `executable` (the `tracee` found on PATH) with the scope's arguments.
    public init(executable: String, scope: Scope, sink: TraceSink) throws {
        self.sink = sink
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Self.arguments(scope: scope)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch {
            throw CagentError(stage: "tracee", "cannot start \(executable): \(error)",
                              hint: "`cagent doctor` shows whether tracee is usable; `--tracer ebpf` or `seccomp` instead")
        }
        let handle = output.fileHandleForReading
        let thread = Thread { [self] in read(handle) }
        thread.name = "cagent-tracee"
        thread.start()
    }

    private func read(_ handle: FileHandle) {
        var buffer: [UInt8] = []
        var number = 0
        func line(_ bytes: ArraySlice<UInt8>) {
            number += 1
            let parsed = TraceeParser.parse(line: bytes)
            lock.lock()
            defer { lock.unlock() }
            switch parsed {
            case .blank: break
            case .unknown: summary.unreadable += 1
            case .malformed(let reason):
                summary.unreadable += 1
                if malformed.count < 100 { malformed.append((number, reason)) }
            case .events(_, let events):
                summary.syscalls += 1
                summary.delivered += UInt64(events.count)
                for event in events { sink.events(event) }
            }
        }
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer += chunk
            while let newline = buffer.firstIndex(of: 10) {
                line(buffer[..<newline])
                buffer.removeSubrange(...newline)
            }
            if buffer.count > TraceeImporter.maxLineBytes { buffer.removeAll() }  // hostile: drop an endless line
        }
        if !buffer.isEmpty { line(buffer[...]) }
        done.signal()
    }

    /// Asks Tracee to finish (SIGINT), waits for it and for the last line.
    public func stop() throws -> TraceSummary {
        lock.lock()
        if let final { lock.unlock(); return final }
        lock.unlock()
        if process.isRunning { process.interrupt() }
        process.waitUntilExit()
        done.wait()
        return lock.withLock {
            final = summary
            return summary
        }
    }

    /// Waits for Tracee to end by itself (a stand-in that replays a file).
    public func waitForEnd() { process.waitUntilExit() }

    deinit { _ = try? stop() }
}
