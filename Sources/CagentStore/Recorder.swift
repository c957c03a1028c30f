import CagentCore
import CagentEvents
import Foundation
import Synchronization

/// The one way events enter the store, whatever saw them. `record` only merges the event into an
/// in-memory batch keyed like the tables (so a repeated event costs a hash lookup); a writer thread commits
/// full batches in one transaction each, off the caller's path. `close()` flushes and ends the session.
///
/// Thread-safe: several sources may record into the same session.
package final class Recorder: EventSink, Sendable {
    package let store: Store
    package let session: SessionInfo
    package let rules: FindingRules
    /// Events per batch before it is handed to the writer.
    package let batchEvents: Int

    /// The merge state and the write outcome (the merge code mutates them in place, under the lock).
    private let state: Mutex<RecorderState>

    private let writer = DispatchQueue(label: "cagent.recorder.writer")
    /// Batches handed to the writer and not yet written: at most two, the producer slows down instead of
    /// growing memory without bound.
    private let inFlight = Monitor(0)
    private let onCommit: (@Sendable (Int) -> Void)?

    /// Creates the session row (unless it exists: importing into a session appends) and a recorder for it.
    /// `onCommit` receives the total number of events committed so far, after each commit.
    /// `redaction` cuts secrets out of every argv (the session's command too) before anything is stored.
    package init(store: Store, session: SessionInfo, rules: FindingRules, redaction: ArgvRedaction = ArgvRedaction(),
                batchEvents: Int = 50_000, onCommit: (@Sendable (Int) -> Void)? = nil) throws {
        var session = session
        session.command = redaction.redact(session.command)
        self.store = store
        self.session = session
        self.rules = rules
        self.batchEvents = max(1, batchEvents)
        self.onCommit = onCommit
        state = Mutex(RecorderState(rules: rules, redaction: redaction))
        try store.createSession(session)
    }

    package func record(_ event: ObservedEvent) {
        let batchEvents = batchEvents
        let batch: Batch? = state.withLock { state in
            state.merge(event)
            return state.pending.events >= batchEvents ? state.takePending(batchEvents: batchEvents) : nil
        }
        if let batch { submit(batch) }
    }

    package func record<S: Sequence>(contentsOf events: S) where S.Element == ObservedEvent {
        for event in events { record(event) }
    }

    /// Commits everything recorded so far and waits for it. Throws the first write error, if any.
    package func flush() throws {
        let batchEvents = batchEvents
        let batch = state.withLock { state in
            state.pending.events > 0 || !state.pending.isEmpty ? state.takePending(batchEvents: batchEvents) : nil
        }
        if let batch { submit(batch) }
        writer.sync {}
        if let error = state.withLock({ $0.writeError }) { throw error }
    }

    /// Flushes and records the session's end.
    package func close(endedAt: Nanoseconds = Clock.now()) throws {
        try flush()
        try store.endSession(session.id, at: endedAt)
    }

    package var committed: Int { state.withLock { $0.committedEvents } }

    private func submit(_ batch: Batch) {
        inFlight.wait { (count: inout Int) -> Void? in
            guard count < 2 else { return nil }
            count += 1
            return ()
        }
        writer.async { [self] in
            defer { inFlight.update { $0 -= 1 } }
            if state.withLock({ $0.writeError }) != nil { return }
            do {
                try store.write(batch, session: session.id)
                let total = state.withLock { state in
                    state.committedEvents += batch.events
                    return state.committedEvents
                }
                onCommit?(total)
            } catch {
                state.withLock { $0.writeError = error }
            }
        }
    }
}

/// What the recorder merges events into, and how its writes went: behind the recorder's lock.
struct RecorderState {
    let rules: FindingRules
    /// What is cut from every exec's argv before it is merged (ArgvRedaction).
    let redaction: ArgvRedaction
    var pending = Batch()
    /// pid -> what it runs, for parents of later execs and for exits.
    var processes: [Int32: ProcessKey] = [:]
    /// Address -> the question names whose answers gave it, in time order (the name a profile would allow). A flow
    /// is named by the latest answer at or before it, never by a later lookup of the same address.
    var addressNames: [String: [(time: Nanoseconds, name: RawText)]] = [:]
    var addressAnswers = 0
    /// Each flow row's first connect: its name is the answer before that one, whichever connect comes to name it
    /// (one recorded before its answer reached the recorder is named by a later connect of the same row).
    var flowFirstSeen: [FlowKey: Nanoseconds] = [:]
    var writeError: (any Error)?
    var committedEvents = 0

    init(rules: FindingRules, redaction: ArgvRedaction = ArgvRedaction()) { self.rules = rules; self.redaction = redaction }

    mutating func takePending(batchEvents: Int) -> Batch {
        let batch = pending
        pending = Batch()
        pending.files.reserveCapacity(min(batchEvents, 1 << 16))  // file events dominate a traced session
        return batch
    }

    // MARK: merging

    mutating func merge(_ event: ObservedEvent) {
        switch event {
        case .exec(let exec): mergeExec(exec)
        case .exit(let exit): mergeExit(exit)
        case .dns(let dns): mergeDNS(dns)
        case .flow(let flow): mergeFlow(flow)
        case .file(let file): mergeFile(file)
        case .bind(let bind): mergeBind(bind)
        }
        // Evidence about a flow already counted (a name learned at the end) is not another event.
        if case .flow(let flow) = event, flow.connections == 0 { return }
        pending.events += 1
    }

    private mutating func mergeExec(_ exec: ProcessExec) {
        pending.see(exec.time)
        let parent = processes[exec.ppid]?.executable ?? RawText("")
        let key = ProcessKey(executable: exec.executable, argv: redaction.redact(exec.argv), parentExecutable: parent)
        if processes.count > 200_000 { processes.removeAll(keepingCapacity: true) }
        processes[exec.pid] = key
        pending.processes[key, default: ProcessAggregate(time: exec.time)].add(exec)
        secretCheck(exec.executable, time: exec.time, operation: .exec, program: exec.program, result: 0)
    }

    private mutating func mergeExit(_ exit: ProcessExit) {
        pending.see(exit.time)
        guard let key = processes.removeValue(forKey: exit.pid) else { return }
        var aggregate = pending.processes[key] ?? ProcessAggregate(time: exit.time, count: 0)
        aggregate.lastEnd = max(aggregate.lastEnd ?? exit.time, exit.time)
        if let code = exit.exitCode { aggregate.lastExit = code }
        pending.processes[key] = aggregate
    }

    private mutating func mergeDNS(_ dns: DNSObservation) {
        pending.see(dns.time)
        let key = DNSKey(name: dns.question, type: dns.type, resolver: dns.resolver, source: dns.source, program: dns.program)
        pending.dns[key, default: DNSAggregate(time: dns.time)].add(dns)
        for answer in dns.answers where answer.type == "A" || answer.type == "AAAA" {
            if addressAnswers > 500_000 { addressNames.removeAll(keepingCapacity: true); addressAnswers = 0 }
            let address = answer.data.lossyString
            var history = addressNames[address] ?? []
            var at = history.count
            while at > 0 && history[at - 1].time > dns.time { at -= 1 }
            if at > 0 && history[at - 1].name == dns.question { continue }  // the same name again names the same
            history.insert((dns.time, dns.question), at: at)
            if history.count > 1024 { history.removeFirst(history.count - 1024) }
            addressNames[address] = history
            addressAnswers += 1
        }
        let name = FindingRules.normalizedName(dns.question)
        if let gate = rules.gateAddress, dns.source != .gate, !rules.isGate(dns.resolver) {
            addFinding(.dnsBypass, subject: dns.resolver, time: dns.time,
                       detail: "DNS to resolver \(dns.resolver) instead of the gate \(gate)", example: dns.question)
        }
        if rules.isDoHName(dns.question) {
            addFinding(.dohEndpoint, subject: name, time: dns.time, detail: "DNS-over-HTTPS provider looked up",
                       example: dns.question)
        }
        if let parent = FindingRules.exfiltrationParent(dns.question) {
            addFinding(.dnsExfiltration, subject: parent, time: dns.time,
                       detail: "long or high-entropy labels under \(parent)", example: dns.question)
        }
    }

    private mutating func mergeFlow(_ flow: FlowObservation) {
        pending.see(flow.time)
        var name = flow.name
        var nameSource = flow.name == nil ? nil : flow.nameSource?.rawValue
        let key = FlowKey(proto: flow.proto, address: flow.address, port: flow.port, verdict: flow.verdict,
                          program: flow.program, result: flow.result)
        if flowFirstSeen.count > 500_000 { flowFirstSeen.removeAll(keepingCapacity: true) }
        let first = min(flowFirstSeen[key] ?? flow.time, flow.time)
        flowFirstSeen[key] = first
        if name == nil, let known = addressNames[flow.address]?.last(where: { $0.time <= first }) {
            name = known.name; nameSource = FlowNameSource.dns.rawValue
        }
        pending.flows[key, default: FlowAggregate(time: flow.time)].add(flow, name: name, nameSource: nameSource)
        let endpoint = flow.address.contains(":") ? "[\(flow.address)]:\(flow.port)" : "\(flow.address):\(flow.port)"
        if rules.isDoHFlow(address: flow.address, port: flow.port) || name.map(rules.isDoHName) == true {
            addFinding(.dohEndpoint, subject: endpoint, time: flow.time,
                       detail: "connection to a DNS-over-HTTPS/TLS endpoint", example: name ?? RawText(endpoint))
        }
        // Direct-IP findings are derived when the report is read: an answer recorded later may still name it.
    }

    private mutating func mergeBind(_ bind: BindObservation) {
        pending.see(bind.time)
        let key = BindKey(family: bind.family, proto: bind.proto, address: bind.address, port: bind.port,
                          program: bind.program, result: bind.result)
        pending.binds[key, default: BindAggregate(time: bind.time)].add(bind)
    }

    private mutating func mergeFile(_ file: FileAccess) {
        pending.see(file.time)
        let key = FileKey(path: file.path, operation: file.operation, result: file.result, program: file.program)
        pending.files[key, default: FileAggregate(time: file.time)].add(file)
        secretCheck(file.path, time: file.time, operation: file.operation, program: file.program, result: file.result)
    }

    private mutating func secretCheck(_ path: RawText, time: Nanoseconds, operation: FileOperation, program: RawText, result: Int32) {
        guard let pattern = rules.secret(path) else { return }
        let outcome = result == 0 ? "succeeded" : "failed (\(Errno.name(result)))"
        addFinding(.secretAccess, subject: pattern, time: time,
                   detail: "\(operation.rawValue) of a hidden path \(outcome)", example: path)
    }

    private mutating func addFinding(_ kind: FindingKind, subject: String, time: Nanoseconds, detail: String, example: RawText) {
        let key = FindingKey(kind: kind, subject: RawText(subject))
        pending.findings[key, default: FindingAggregate(time: time, detail: detail, example: example)].add(time)
    }
}

// MARK: batch shapes (one dictionary per table, keyed like its UNIQUE constraint)

struct Batch {
    var events = 0
    var firstTime: Nanoseconds = .max
    var lastTime: Nanoseconds = .min
    var processes: [ProcessKey: ProcessAggregate] = [:]
    var dns: [DNSKey: DNSAggregate] = [:]
    var flows: [FlowKey: FlowAggregate] = [:]
    var files: [FileKey: FileAggregate] = [:]
    var binds: [BindKey: BindAggregate] = [:]
    var findings: [FindingKey: FindingAggregate] = [:]

    var isEmpty: Bool {
        processes.isEmpty && dns.isEmpty && flows.isEmpty && files.isEmpty && binds.isEmpty && findings.isEmpty
    }

    mutating func see(_ time: Nanoseconds) {
        if time < firstTime { firstTime = time }
        if time > lastTime { lastTime = time }
    }
}

struct ProcessKey: Hashable {
    var executable: RawText
    var argv: [RawText]
    var parentExecutable: RawText
}

struct ProcessAggregate {
    var count: Int64
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds
    var program = RawText("")
    var lastPID: Int32 = 0
    var lastPPID: Int32 = 0
    var lastExit: Int32?
    var lastEnd: Nanoseconds?

    init(time: Nanoseconds, count: Int64 = 0) { self.count = count; firstSeen = time; lastSeen = time }

    mutating func add(_ exec: ProcessExec) {
        count += 1
        firstSeen = min(firstSeen, exec.time); lastSeen = max(lastSeen, exec.time)
        program = exec.program; lastPID = exec.pid; lastPPID = exec.ppid
    }
}

struct DNSKey: Hashable {
    var name: RawText
    var type: String
    var resolver: String
    var source: DNSSource
    var program: RawText
}

struct AnswerKey: Hashable {
    var name: RawText
    var type: String
    var data: RawText
}

struct AnswerAggregate {
    var ttl: Int64
    var count: Int64
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds
}

struct DNSAggregate {
    var queries: Int64 = 0
    var responses: Int64 = 0
    var rcode = ""
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds
    var answers: [AnswerKey: AnswerAggregate] = [:]
    /// Answers in the order first seen (a CNAME chain reads top to bottom).
    var answerOrder: [AnswerKey] = []

    init(time: Nanoseconds) { firstSeen = time; lastSeen = time }

    mutating func add(_ dns: DNSObservation) {
        if dns.isResponse { responses += 1 } else { queries += 1 }
        if !dns.rcode.isEmpty { rcode = dns.rcode }
        firstSeen = min(firstSeen, dns.time); lastSeen = max(lastSeen, dns.time)
        for answer in dns.answers {
            let key = AnswerKey(name: answer.name, type: answer.type, data: answer.data)
            if var existing = answers[key] {
                existing.ttl = Int64(answer.ttl); existing.count += 1
                existing.firstSeen = min(existing.firstSeen, dns.time); existing.lastSeen = max(existing.lastSeen, dns.time)
                answers[key] = existing
            } else {
                answers[key] = AnswerAggregate(ttl: Int64(answer.ttl), count: 1, firstSeen: dns.time, lastSeen: dns.time)
                answerOrder.append(key)
            }
        }
    }
}

struct FlowKey: Hashable {
    var proto: String
    var address: String
    var port: UInt16
    var verdict: FlowVerdict
    var program: RawText
    var result: Int32
}

struct FlowAggregate {
    var count: Int64 = 0
    var bytesOut: Int64 = 0
    var bytesIn: Int64 = 0
    var packets: Int64 = 0
    var name: RawText?
    var nameSource: String?
    /// The time of the observation that named it: a flow is named as its first named connect was.
    var nameTime: Nanoseconds = .max
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds

    init(time: Nanoseconds) { firstSeen = time; lastSeen = time }

    mutating func add(_ flow: FlowObservation, name: RawText?, nameSource: String?) {
        count &+= max(0, flow.connections)
        bytesOut &+= flow.bytesOut; bytesIn &+= flow.bytesIn; packets &+= flow.packets
        if let name, self.name == nil || flow.time < nameTime { self.name = name; self.nameSource = nameSource; nameTime = flow.time }
        firstSeen = min(firstSeen, flow.time); lastSeen = max(lastSeen, flow.time)
    }
}

struct FileKey: Hashable {
    var path: RawText
    var operation: FileOperation
    var result: Int32
    var program: RawText
}

struct FileAggregate {
    var count: Int64 = 0
    var flags: Int32?
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds

    init(time: Nanoseconds) { firstSeen = time; lastSeen = time }

    mutating func add(_ file: FileAccess) {
        count += 1
        if let new = file.flags { flags = (flags ?? 0) | new }
        firstSeen = min(firstSeen, file.time); lastSeen = max(lastSeen, file.time)
    }
}

struct BindKey: Hashable {
    var family: String
    var proto: String
    var address: String
    var port: UInt16
    var program: RawText
    var result: Int32
}

struct BindAggregate {
    var count: Int64 = 0
    var lastPID: Int32 = 0
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds

    init(time: Nanoseconds) { firstSeen = time; lastSeen = time }

    mutating func add(_ bind: BindObservation) {
        count += 1
        if bind.pid != 0 { lastPID = bind.pid }
        firstSeen = min(firstSeen, bind.time); lastSeen = max(lastSeen, bind.time)
    }
}

struct FindingKey: Hashable {
    var kind: FindingKind
    var subject: RawText
}

struct FindingAggregate {
    var count: Int64 = 0
    var detail: String
    var example: RawText
    var firstSeen: Nanoseconds
    var lastSeen: Nanoseconds

    init(time: Nanoseconds, detail: String, example: RawText) {
        self.detail = detail; self.example = example; firstSeen = time; lastSeen = time
    }

    mutating func add(_ time: Nanoseconds) {
        count += 1
        firstSeen = min(firstSeen, time); lastSeen = max(lastSeen, time)
    }
}

/// errno values and names for the results shown in reports.
package enum Errno {
    static let names: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF",
        11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV",
        19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 26: "ETXTBSY",
        27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 31: "EMLINK", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY",
        40: "ELOOP", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL",
        101: "ENETUNREACH", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 115: "EINPROGRESS",
    ]

    package static func name(_ value: Int32) -> String {
        if value == 0 { return "ok" }
        return names[value] ?? "errno \(value)"
    }
}
