import CagentCore
import CagentEvents
import CagentStore
import CagentTrace
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Each backend traces a real process tree running the same workload; the same events must come out.
@Suite("Tracing backends: real process trees", .serialized)
struct BackendTests {
    /// What every backend must report for `Workload.script`.
    func expectWorkload(_ c: Collected, _ w: Workload, backend: TracerBackend, rootPid: Int32,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        let d = w.directory
        func has(_ path: String, _ op: FileOperation, _ result: Int32, _ why: String) {
            #expect(c.files(path).contains { $0.operation == op && $0.result == result },
                    "\(backend): \(why): \(path) \(op) \(result); got \(c.files(path).map { "\($0.operation) \($0.result)" })",
                    sourceLocation: sourceLocation)
        }
        has("\(d)/data.txt", .read, 0, "relative read resolved through the cwd")
        has("\(d)/missing.txt", .read, ENOENT, "a path it looked for")
        has("\(d)/out.txt", .create, 0, "shell redirection creates")
        has("\(d)/sub", .mkdir, 0, "mkdir")
        has("\(d)/out.txt", .rename, 0, "rename source")
        has("\(d)/sub/moved.txt", .rename, 0, "rename target")
        has("\(d)/sub/moved.txt", .delete, 0, "unlink")
        has("/bin/echo", .exec, 0, "exec")
        has("\(d)/dirfd.txt", .read, 0, "a dirfd-relative stat resolved through the directory fd")
        let echo = c.execs.first { $0.executable == RawText("/bin/echo") }
        #expect(echo?.argv == [RawText("/bin/echo"), RawText("first"), RawText("second arg")],
                "\(backend): argv \(echo.map { $0.argv.map(\.lossyString) } ?? [])", sourceLocation: sourceLocation)
        #expect(echo?.ppid == rootPid, "\(backend): the shell is echo's parent", sourceLocation: sourceLocation)
        #expect(c.flows.contains { $0.address == "127.0.0.1" && $0.port == w.port && $0.proto == "tcp" && $0.result == 0 },
                "\(backend): connect 127.0.0.1:\(w.port); got \(c.flows.map { "\($0.proto) \($0.address):\($0.port) \($0.result)" })",
                sourceLocation: sourceLocation)
        #expect(c.binds.contains { $0.proto == "udp" && $0.address == "127.0.0.1" && $0.port == 0 && $0.result == 0 },
                "\(backend): UDP bind; got \(c.binds)", sourceLocation: sourceLocation)
        let dedup = c.files("\(d)/dedup.txt").filter { $0.operation == .read && $0.result == 0 }
        #expect(dedup.count == 1, "\(backend): five reads of one path cross once, got \(dedup.count)",
                sourceLocation: sourceLocation)
        #expect(!c.files.contains { $0.path.lossyString.contains("cagent-outside-marker") },
                "\(backend): a process outside the traced tree was seen", sourceLocation: sourceLocation)
    }

    /// A process outside the traced tree touching a marker path while the tracer runs (scope control).
    func touchOutside() {
        let path = "/tmp/cagent-outside-marker-\(getpid())"
        let fd = open(path, O_RDONLY)
        if fd >= 0 { close(fd) }
    }

    @Test("eBPF: the workload's files, exec with argv and parent, connect, in-kernel dedup counts, exit",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "loads BPF programs and creates a cgroup"))
    func ebpf() throws {
        try Requirements.root()
        let w = try Workload()
        let c = Collected()
        let cgroup = try TraceCgroup()
        defer { try? cgroup.remove() }
        let tracer = try EbpfTracer(cgroup: cgroup, sink: c.sink)
        let process = try TracedProcess(argv: w.argv, environment: w.environment, workingDirectory: w.directory,
                                        cgroup: cgroup)
        tracer.setWorkingDirectory(pid: process.pid, w.directory)
        touchOutside()
        #expect(process.execResult() == nil)
        #expect(process.wait() == 3)
        let summary = try tracer.stop()
        expectWorkload(c, w, backend: .ebpf, rootPid: process.pid)
        let counted = summary.counts.first { $0.path == RawText("\(w.directory)/dedup.txt") && $0.operation == .read && $0.result == 0 }
        #expect(counted?.count == 5, "the kernel counted every read: \(String(describing: counted))")
        #expect(summary.duplicates > 0 && summary.lost == 0, "\(summary)")
        #expect(c.exits.contains { $0.pid == process.pid && $0.exitCode == 3 }, "exit of the root: \(c.exits)")
    }

    @Test("seccomp notify: the same workload with inferred results; every syscall continued",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "installs a seccomp listener in a child"))
    func seccomp() throws {
        try Requirements.root()
        let w = try Workload()
        let c = Collected()
        let process = try TracedProcess(argv: w.argv, environment: w.environment, workingDirectory: w.directory,
                                        notify: true)
        let tracer = SeccompNotifyTracer(listener: process.takeListener(), sink: c.sink)
        touchOutside()
        #expect(process.execResult() == nil)
        #expect(process.wait() == 3, "every syscall was continued, so the workload ran to its end")
        let summary = try tracer.stop()
        expectWorkload(c, w, backend: .seccomp, rootPid: process.pid)
        let counted = summary.counts.first { $0.path == RawText("\(w.directory)/dedup.txt") && $0.operation == .read && $0.result == 0 }
        #expect(counted?.count == 5, "\(String(describing: counted))")
        #expect(tracer.syncWakeUp, "this kernel (6.18) has SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP")
    }

    @Test("eBPF into a Recorder: the session's report shows the files, the ENOENT and the process tree",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "loads BPF programs and creates a cgroup"))
    func ebpfIntoStore() throws {
        try Requirements.root()
        let w = try Workload()
        let store = try Store(path: w.directory + "/store.sqlite")
        let session = SessionInfo(id: SessionID.new(), kind: "learn", source: "ebpf")
        let rules = FindingRules(secretPaths: [])
        let recorder = try Recorder(store: store, session: session, rules: rules)
        let cgroup = try TraceCgroup()
        defer { try? cgroup.remove() }
        let tracer = try EbpfTracer(cgroup: cgroup, sink: .recording(into: recorder))
        let process = try TracedProcess(argv: w.argv, environment: w.environment, workingDirectory: w.directory,
                                        cgroup: cgroup)
        #expect(process.wait() == 3)
        _ = try tracer.stop()
        try recorder.close()
        let report = try #require(try store.report(session: session.id, rules: rules))
        let files = report.fileGroups.flatMap(\.files)
        #expect(files.contains { $0.path == RawText("\(w.directory)/missing.txt") && $0.result == Int64(ENOENT) })
        #expect(files.contains { $0.path == RawText("\(w.directory)/sub") && $0.operation == "mkdir" })
        func all(_ nodes: [SessionReport.Process]) -> [SessionReport.Process] { nodes + nodes.flatMap { all($0.children) } }
        #expect(all(report.processTree).contains { $0.executable == RawText("/bin/echo") && $0.parentExecutable == RawText("/bin/sh") },
                "\(all(report.processTree).map { ($0.executable.lossyString, $0.parentExecutable.lossyString) })")
        #expect(report.flows.contains { $0.address == "127.0.0.1" && $0.port == Int64(w.port) })
    }

    @Test("seccomp notify: the stream ends when the tree exits (no ENOENT busy loop)",
          .enabled(if: Requirements.mayRun(root: true), "installs a seccomp listener in a child"))
    func seccompEnds() throws {
        try Requirements.root()
        let c = Collected()
        let process = try TracedProcess(argv: ["/bin/true"], notify: true)
        let tracer = SeccompNotifyTracer(listener: process.takeListener(), sink: c.sink)
        #expect(process.execResult() == nil)
        process.wait()
        var waited = 0
        while !tracer.finished && waited < 3000 { usleep(10_000); waited += 1 }   // up to 30 s on a loaded machine
        #expect(tracer.finished, "the listener reported end of stream after the last task exited")
        _ = try tracer.stop()
    }

    @Test("eBPF: a failed exec is recorded with its errno, and the tree's cgroup is removed afterwards",
          .enabled(if: Requirements.mayRun(root: true), "loads BPF programs and creates a cgroup"))
    func ebpfFailedExec() throws {
        try Requirements.root()
        let c = Collected()
        let cgroup = try TraceCgroup()
        let tracer = try EbpfTracer(cgroup: cgroup, sink: c.sink)
        let process = try TracedProcess(argv: ["/bin/sh", "-c", "/nonexistent/tool; exit 0"], cgroup: cgroup)
        #expect(process.wait() == 0)
        _ = try tracer.stop()
        #expect(c.files("/nonexistent/tool").contains { $0.operation == .exec && $0.result == ENOENT }, "\(c.files.map(\.path))")
        try cgroup.remove()
        #expect(!FileSystem.exists(cgroup.path))
    }
}
