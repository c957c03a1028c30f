import ArgumentParser
import CagentCore
import CagentLaunch
import CagentEvents
import CagentStore
#if canImport(Glibc)
import Glibc
#endif

/// `cagent synthetic` (hidden): synthetic sessions for benchmarks and tests. Records N events with K
/// distinct keys into the store, or writes the same events as CSV (for a sqlite3 bulk-insert reference) or
/// as Tracee JSON lines (for import benchmarks). `--progress` prints "committed N" after each committed
/// batch, which the crash test reads before it kills the process.
struct SyntheticCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synthetic", abstract: "Generate a synthetic session (benchmarks, tests).", shouldDisplay: false)
    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "Number of events.") var events = 1_000_000
    @Option(name: .long, help: "Number of distinct keys.") var keys = 10_000
    @Option(name: .long, help: "Random seed.") var seed: UInt64 = 42
    @Option(name: .long, help: "Events per batch.") var batch = 50_000
    @Option(name: .long, help: "Session id (default: a new one).") var session: String?
    @Option(name: .long, help: "db (record into the store), csv or tracee (write to --output).") var format = "db"
    @Option(name: .long, help: "Output file for csv/tracee.") var output: String?
    @Flag(name: .long, help: "Print \"committed N\" after each committed batch.") var progress = false
    @Option(name: .long, help: "Pause this many milliseconds after each batch (crash tests).") var pauseMs = 0

    func run() async throws {
        let generator = SyntheticSession(events: events, distinctKeys: keys, seed: seed)
        switch format {
        case "db":
            let opened = try store.openForRecording()
            let info = SessionInfo(id: session ?? SessionID.new(), kind: "synthetic", source: "synthetic:\(events)x\(keys)")
            var onCommit: (@Sendable (Int) -> Void)?
            if progress {
                onCommit = { total in FileDescriptorStream.standardOutput.write("committed \(total)\n") }
            }
            let recorder = try Recorder(store: opened, session: info, rules: StoreOptions.findingRules,
                                        batchEvents: batch, onCommit: onCommit)
            var count = 0
            for event in generator {
                recorder.record(event)
                count += 1
                if pauseMs > 0 && count % batch == 0 {
                    try recorder.flush()
                    usleep(UInt32(pauseMs) * 1000)
                }
            }
            try recorder.close()
            if !progress { FileDescriptorStream.standardOutput.write("\(info.id)\n") }
        case "csv", "tracee":
            guard let output else { throw CagentError(stage: "synthetic", "--format \(format) needs --output FILE") }
            let fd: Int32
            switch FileSystem.openAsUser(output, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644,
                                         identity: FileIdentity.invoking(environment: ProcessEnvironment.current)) {
            case .failure(let error): throw CagentError(stage: "synthetic", error.message(path: output))
            case .success(let opened): fd = opened
            }
            defer { close(fd) }
            let stream = FileDescriptorStream(fd: fd)
            var text = ""
            for event in generator {
                text += format == "csv" ? SyntheticText.csv(event) : SyntheticText.tracee(event)
                if text.utf8.count > 1 << 20 { stream.write(text); text = "" }
            }
            stream.write(text)
        default:
            throw CagentError(stage: "synthetic", "unknown --format \(format)", hint: "db, csv or tracee")
        }
    }
}

/// The synthetic events as raw rows: the shape a user would bulk-load without cagent.
enum SyntheticText {
    static func csv(_ event: ObservedEvent) -> String {
        switch event {
        case .file(let f): return "file,\(f.time),\(f.pid),\(f.program),\(f.path),\(f.operation.rawValue),\(f.result)\n"
        case .dns(let d): return "dns,\(d.time),\(d.pid),\(d.program),\(d.question),\(d.type),\(d.answers.first?.data.lossyString ?? "")\n"
        case .flow(let f): return "flow,\(f.time),\(f.pid),\(f.program),\(f.address),\(f.port),\(f.bytesOut)\n"
        case .exec(let e): return "exec,\(e.time),\(e.pid),\(e.program),\(e.executable),\(e.argv.map(\.lossyString).joined(separator: " ")),\(e.ppid)\n"
        case .exit(let e): return "exit,\(e.time),\(e.pid),,,,\(e.exitCode ?? 0)\n"
        case .bind(let b): return "bind,\(b.time),\(b.pid),\(b.program),\(b.address),\(b.port),\(b.result)\n"
        }
    }

    /// Released Tracee shape (trace.Event), the fields cagent reads plus the usual context fields.
    static func tracee(_ event: ObservedEvent) -> String {
        func head(_ time: Int64, _ pid: Int32, _ program: RawText, _ name: String) -> String {
            "{\"timestamp\":\(time),\"processorId\":1,\"processId\":\(pid),\"threadId\":\(pid),\"parentProcessId\":1,"
                + "\"hostProcessId\":\(pid),\"hostThreadId\":\(pid),\"hostParentProcessId\":1,\"userId\":1000,"
                + "\"processName\":\(JSON.string(program.lossyString).text),\"hostName\":\"bench\",\"eventName\":\"\(name)\","
        }
        switch event {
        case .file(let f):
            let flags = f.flags.map(OpenFlags.names) ?? "O_RDONLY"
            return head(f.time, f.pid, f.program, "security_file_open")
                + "\"returnValue\":\(-Int64(f.result)),\"args\":[{\"name\":\"pathname\",\"type\":\"const char*\",\"value\":"
                + JSON.raw(f.path).text + "},{\"name\":\"flags\",\"type\":\"string\",\"value\":\"\(flags)\"}]}\n"
        case .dns(let d):
            if d.isResponse {
                let answers = d.answers.map {
                    "{\"answer_type\":\"\($0.type)\",\"ttl\":\($0.ttl),\"answer\":\(JSON.raw($0.data).text)}"
                }.joined(separator: ",")
                return head(d.time, d.pid, d.program, "net_packet_dns_response")
                    + "\"returnValue\":0,\"args\":[{\"name\":\"metadata\",\"type\":\"trace.PktMeta\",\"value\":{\"src_ip\":\"\(d.resolver)\","
                    + "\"dst_ip\":\"10.0.0.2\",\"src_port\":53,\"dst_port\":40000,\"protocol\":17}},{\"name\":\"dns_response\","
                    + "\"type\":\"[]trace.DnsResponseData\",\"value\":[{\"query_data\":{\"query\":\(JSON.raw(d.question).text),"
                    + "\"query_type\":\"\(d.type)\",\"query_class\":\"IN\"},\"dns_answer\":[\(answers)]}]}]}\n"
            }
            return head(d.time, d.pid, d.program, "net_packet_dns_request")
                + "\"returnValue\":0,\"args\":[{\"name\":\"metadata\",\"type\":\"trace.PktMeta\",\"value\":{\"src_ip\":\"10.0.0.2\","
                + "\"dst_ip\":\"\(d.resolver)\",\"src_port\":40000,\"dst_port\":53,\"protocol\":17}},{\"name\":\"dns_questions\","
                + "\"type\":\"[]trace.DnsQueryData\",\"value\":[{\"query\":\(JSON.raw(d.question).text),\"query_type\":\"\(d.type)\",\"query_class\":\"IN\"}]}]}\n"
        case .flow(let f):
            return head(f.time, f.pid, f.program, "security_socket_connect")
                + "\"returnValue\":0,\"args\":[{\"name\":\"sockfd\",\"type\":\"int\",\"value\":3},{\"name\":\"type\",\"type\":\"string\",\"value\":\"SOCK_STREAM\"},"
                + "{\"name\":\"remote_addr\",\"type\":\"struct sockaddr*\",\"value\":{\"sa_family\":\"AF_INET\",\"sin_addr\":\"\(f.address)\",\"sin_port\":\"\(f.port)\"}}]}\n"
        case .exec(let e):
            return head(e.time, e.pid, e.program, "sched_process_exec")
                + "\"returnValue\":0,\"args\":[{\"name\":\"cmdpath\",\"type\":\"const char*\",\"value\":\(JSON.raw(e.executable).text)},"
                + "{\"name\":\"pathname\",\"type\":\"const char*\",\"value\":\(JSON.raw(e.executable).text)},"
                + "{\"name\":\"argv\",\"type\":\"const char**\",\"value\":\(JSON.array(e.argv.map { .raw($0) }).text)}]}\n"
        case .exit(let e):
            return head(e.time, e.pid, RawText(""), "sched_process_exit")
                + "\"returnValue\":0,\"args\":[{\"name\":\"exit_code\",\"type\":\"long\",\"value\":\(e.exitCode ?? 0)}]}\n"
        case .bind(let b):
            let family = b.family == "ipv6" ? "\"sa_family\":\"AF_INET6\",\"sin6_addr\":\"\(b.address)\",\"sin6_port\":\"\(b.port)\""
                : "\"sa_family\":\"AF_INET\",\"sin_addr\":\"\(b.address)\",\"sin_port\":\"\(b.port)\""
            return head(b.time, b.pid, b.program, "security_socket_bind")
                + "\"returnValue\":\(-Int64(b.result)),\"args\":[{\"name\":\"sockfd\",\"type\":\"int\",\"value\":3},"
                + "{\"name\":\"local_addr\",\"type\":\"struct sockaddr*\",\"value\":{\(family)}}]}\n"
        }
    }
}
