import CagentCore
import CagentEvents
import CagentStore
import CagentTrace
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Tracee runner and tracer selection")
struct TraceeAndSelectionTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// A stand-in `tracee` that records its arguments and replays Tracee's real samples (plus one broken line).
    func standIn() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cagent-tracee-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
        #!/bin/sh
        echo "$@" > "$(dirname "$0")/args"
        cat \(Self.fixtures)/*.jsonl
        echo '{"eventName": not json'
        """
        // Close-on-exec, so a child another test starts meanwhile does not keep it open for writing (ETXTBSY).
        let fd = open(directory + "/tracee", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw CagentError.system("test", "cannot write the stand-in") }
        _ = Array(script.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return directory
    }

    @Test("Tracee's JSON stream, scoped to the tree, reaches the sink as the importer would map it")
    func traceeReplay() throws {
        let directory = try standIn()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let selection = TracerSelection.select(.tracee, path: directory + ":/usr/bin:/bin")
        #expect(selection.backend == .tracee)
        let c = Collected()
        let runner = try TraceeRunner(executable: try #require(selection.traceePath), scope: .tree(4242), sink: c.sink)
        runner.waitForEnd()
        let summary = try runner.stop()

        // Reference: the same lines through the parser directly.
        var expected: [ObservedEvent] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.fixtures).sorted() where file.hasSuffix(".jsonl") {
            let text = try String(contentsOfFile: Self.fixtures + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                if case .events(_, let events) = TraceeParser.parse(line: Array(line.utf8)) { expected += events }
            }
        }
        #expect(!expected.isEmpty)
        #expect(c.events.count == expected.count, "\(c.events.count) events, the parser gives \(expected.count)")
        #expect(c.files.contains { $0.path == RawText("/proc/meminfo") && $0.operation == .read })
        #expect(!c.execs.isEmpty)
        #expect(runner.malformed.count == 1, "the broken line is reported, not fatal")
        #expect(summary.delivered == UInt64(expected.count))
        let args = try String(contentsOfFile: directory + "/args", encoding: .utf8)
        #expect(args.contains("--scope tree=4242") && args.contains("--output json") && args.contains("security_file_open"), "\(args)")
    }

    @Test("tracee is chosen only when on PATH")
    func traceeMissing() {
        let selection = TracerSelection.select(.tracee, path: "/nonexistent")
        #expect(selection.backend == nil)
    }

    @Test("auto picks eBPF where its programs load; seccomp is available as the fallback",
          .enabled(if: Requirements.mayRun(root: true), "loading BPF programs needs root"))
    func auto() throws {
        try Requirements.root()
        let auto = TracerSelection.select(.auto, path: nil)
        #expect(auto.backend == .ebpf, "\(auto.reason)")
        let seccomp = TracerSelection.select(.seccomp, path: nil)
        #expect(seccomp.backend == .seccomp, "\(seccomp.reason)")
    }
}
