import ArgumentParser
import CagentCore
import CagentLaunch
import CagentStore
import CagentTrace
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `cagent trace`: runs a command under one of learn mode's tracers, outside any sandbox, and prints what
/// the tracer counted (and with --events, every event). For checking a backend and for the benchmark;
/// `cagent learn` is the command that records into the store.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace", abstract: "Run a command under a learn-mode tracer and print what it saw (diagnostics, benchmarks).",
        shouldDisplay: false)
    @OptionGroup var logging: LoggingOptions
    @Option(help: "auto, ebpf, seccomp or tracee.") var tracer: String = "auto"
    @Flag(help: "Print every event (escaped).") var events = false
    @Argument(parsing: .postTerminator, help: "The command (an absolute path, or found on PATH).") var command: [String] = []

    func run() async throws {
        logging.bootstrap()
        guard let choice = TracerChoice(rawValue: tracer) else {
            throw ValidationError("--tracer must be one of \(TracerChoice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let name = command.first else { throw ValidationError("give the command after --") }
        let environment = ProcessEnvironment.current
        guard let executable = name.contains("/") ? name : FileSystem.which(name, path: environment["PATH"]) else {
            throw CagentError(stage: "trace", "\(name) not found on PATH")
        }
        let selection = TracerSelection.select(choice, path: environment["PATH"])
        guard let backend = selection.backend else {
            throw CagentError(stage: "trace", "no usable tracer: \(selection.reason)", hint: "`cagent doctor` explains")
        }
        let printEvents = events
        let counter = EventCounter()
        let sink = TraceSink(events: { event in
            counter.add()
            if printEvents { FileDescriptorStream.standardError.write(Safe.text(String(describing: event)) + "\n") }
        })
        let argv = [executable] + command.dropFirst()
        let env = environment.map { "\($0.key)=\($0.value)" }
        let here = FileSystem.currentDirectory(orElse: "")
        let cwd: String? = here.isEmpty ? nil : here
        let exitCode: Int32
        let summary: TraceSummary
        switch backend {
        case .ebpf:
            let cgroup = try TraceCgroup()
            defer { try? cgroup.remove() }
            let tracer = try EbpfTracer(cgroup: cgroup, sink: sink)
            let process = try TracedProcess(argv: argv, environment: env, workingDirectory: cwd, cgroup: cgroup)
            if let cwd { tracer.setWorkingDirectory(pid: process.pid, cwd) }
            if let code = process.execResult() { throw CagentError(stage: "trace", "cannot run \(executable)", errno: code) }
            exitCode = process.wait()
            summary = try tracer.stop()
        case .seccomp:
            let process = try TracedProcess(argv: argv, environment: env, workingDirectory: cwd, notify: true)
            let tracer = SeccompNotifyTracer(listener: process.takeListener(), sink: sink)
            if let code = process.execResult() { throw CagentError(stage: "trace", "cannot run \(executable)", errno: code) }
            exitCode = process.wait()
            summary = try tracer.stop()
        case .tracee:
            // Tracee follows the tree from the root's pid: the root is started first (a moment is traced late).
            let process = try TracedProcess(argv: argv, environment: env, workingDirectory: cwd)
            let tracer = try TraceeRunner(executable: selection.traceePath!, scope: .tree(process.pid), sink: sink)
            exitCode = process.wait()
            summary = try tracer.stop()
        }
        FileDescriptorStream.standardError.write(
            "cagent trace: \(backend.rawValue) (\(selection.reason)): exit \(exitCode), \(summary.syscalls) syscalls traced, \(summary.delivered) delivered, \(summary.duplicates) duplicates counted in place, \(summary.lost) lost, \(summary.unreadable) unreadable, \(counter.value) events\n")
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

final class EventCounter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
