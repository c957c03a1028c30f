import CEbpf
import CagentCore
import CagentEvents
import Foundation
import Synchronization

/// The eBPF backend: follows every task under one cgroup2 directory (the tree started there with
/// CLONE_INTO_CGROUP, see `TraceSpawn`) through raw syscall tracepoints, reading each path at syscall exit
/// with its result. The kernel sends only the first sight of an (operation, path, result) and counts the
/// rest; this class resolves relative paths and turns records into store events on its own thread.
// @unchecked: a libbpf handle (C); the rest is guarded by `lock`, mutated in place on the record path.
package final class EbpfTracer: LearnTracer, @unchecked Sendable {
    package let backend = TracerBackend.ebpf
    private let handle: OpaquePointer
    /// Guarded by `lock` (records are delivered with it held).
    private var sink: TraceSink
    private let resolver = PathResolver()
    private let clockOffset = TraceClock.monotonicOffset()
    private let lock = Mutex(())   // guards the mutable state below
    private var stopping = false
    private var finished = false
    private var summary: TraceSummary?
    private let done = Latch()
    /// Keys the kernel deduplicates, with what they stand for (to read their counts at the end).
    private var keys: [(cg_trace_key, FileOperation, RawText, Int32)] = []

    /// Loads and attaches the programs scoped to `cgroup` and starts delivering to `sink`. The tree may be
    /// started as soon as this returns. `rootWorkingDirectory` seeds relative-path resolution for a root
    /// process that is already gone when its first record is read.
    /// `counts: false` skips `TraceSummary.counts` (the kernel's count of every deduplicated key, read from
    /// the map at stop): learn mode stores one row per key and does not use them.
    package init(cgroup: TraceCgroup, sink: TraceSink, rootPid: Int32? = nil, rootWorkingDirectory: String? = nil,
                counts: Bool = true) throws {
        self.sink = sink
        self.collectCounts = counts
        var message = [CChar](repeating: 0, count: 600)
        // The context is filled after init; the callback reads it from the record's thread only.
        let context = UnsafeMutablePointer<Unmanaged<EbpfTracer>?>.allocate(capacity: 1)
        context.initialize(to: nil)
        guard let handle = cg_ebpf_open(cgroup.fd, { context, record in
            guard let context, let record,
                  let tracer = context.assumingMemoryBound(to: Unmanaged<EbpfTracer>?.self).pointee else { return }
            tracer.takeUnretainedValue().deliver(record)
        }, context, &message, message.count) else {
            let code = errno
            context.deallocate()
            throw CagentError(stage: "ebpf tracer", String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self), errno: code,
                              hint: "`cagent doctor` says which tracer works here; `--tracer seccomp` needs no BPF")
        }
        self.handle = handle
        self.contextBox = context
        if let rootPid, let rootWorkingDirectory { resolver.setWorkingDirectory(pid: rootPid, rootWorkingDirectory) }
        context.pointee = Unmanaged.passUnretained(self)
        let thread = Thread { [self] in run() }
        thread.name = "cagent-ebpf"
        thread.start()
    }

    private let contextBox: UnsafeMutablePointer<Unmanaged<EbpfTracer>?>
    private let collectCounts: Bool

    /// Replaces the sink: a tracer loaded before its consumer exists (learn mode loads the programs while
    /// the sandbox is set up; the cgroup stays empty, so nothing is delivered, until the sink is in place).
    package func setSink(_ sink: TraceSink) {
        lock.withLock { _ in self.sink = sink }
    }

    /// Seeds a process's working directory (the launcher knows the root's).
    package func setWorkingDirectory(pid: Int32, _ path: String) {
        lock.withLock { _ in resolver.setWorkingDirectory(pid: pid, path) }
    }

    private func run() {
        while !lock.withLock({ _ in stopping }) {
            _ = cg_ebpf_poll(handle, 20)
        }
        while cg_ebpf_poll(handle, 0) > 0 {}  // drain
        done.open()
    }

    package func stop() throws -> TraceSummary {
        let finished: TraceSummary? = lock.withLock { _ in
            if let summary { return summary }
            stopping = true
            return nil
        }
        if let finished { return finished }
        cg_ebpf_wake(handle)
        done.wait()
        var result = TraceSummary(backend: .ebpf)
        var stats = [UInt64](repeating: 0, count: CG_STAT_COUNT)
        cg_ebpf_stats(handle, &stats)
        result.syscalls = stats[CG_STAT_SEEN]
        result.delivered = stats[CG_STAT_EMITTED]
        result.duplicates = stats[CG_STAT_DUPLICATE]
        result.lost = stats[CG_STAT_LOST]
        result.unreadable = stats[CG_STAT_UNREADABLE]
        // Every key's count in one batched read of the map.
        if collectCounts { readCounts(into: &result) }
        cg_ebpf_close(handle)
        contextBox.deallocate()
        lock.withLock { _ in summary = result }
        return result
    }

    private func readCounts(into result: inout TraceSummary) {
        let capacity = max(keys.count, 1) * 2 + 1024
        var dumpedKeys = [cg_trace_key](repeating: cg_trace_key(), count: capacity)
        var dumpedCounts = [UInt64](repeating: 0, count: capacity)
        let dumped = cg_ebpf_dump_seen(handle, &dumpedKeys, &dumpedCounts, capacity)
        var countOf: [TraceKey: UInt64] = [:]
        if dumped > 0 {
            countOf.reserveCapacity(dumped)
            for i in 0..<dumped { countOf[TraceKey(dumpedKeys[i])] = dumpedCounts[i] }
        }
        for (key, operation, path, code) in keys {
            result.counts.append(PathCount(operation: operation, path: path, result: code,
                                           count: max(countOf[TraceKey(key)] ?? 1, 1)))
        }
    }

    deinit { _ = try? stop() }

    // MARK: records -> events (on the poll thread)

    private func deliver(_ pointer: UnsafePointer<cg_trace_record>) {
        let record = pointer.pointee
        let time = Nanoseconds(record.time_ns) + clockOffset
        let pid = Int32(bitPattern: record.pid)
        let program = program(pointer)
        let path = Self.bytes(pointer, Self.path, count: Int(record.len1))
        let result: Int32 = record.ret < 0 ? -record.ret : 0
        lock.withLock { _ in
            switch Int(record.kind) {
            case CG_TRACE_FORK:
                resolver.forked(child: pid, parent: Int32(bitPattern: record.ppid))
            case CG_TRACE_EXIT:
                resolver.exited(pid: pid)
                sink.events(.exit(ProcessExit(time: time, pid: pid, exitCode: Self.exitCode(record.ret))))
            case CG_TRACE_EXEC:
                let executable = resolver.resolveOrKeep(pid: pid, dirfd: PathResolver.atFdcwd, path: path)
                let block = Self.bytes(pointer, Self.data2, count: Int(record.len2))
                var argv = block.split(separator: 0, omittingEmptySubsequences: false).map { RawText(bytes: Array($0)) }
                if block.last == 0 { argv.removeLast() }
                sink.events(.exec(ProcessExec(time: time, pid: pid, ppid: Int32(bitPattern: record.ppid),
                                              executable: executable, argv: argv, program: program)))
                sink.events(.file(FileAccess(time: time, pid: pid, program: program, path: executable, operation: .exec)))
            case CG_TRACE_NET:
                guard let (address, port) = Self.socketAddress(pointer) else { return }
                let proto = record.sock_type == 2 ? "udp" : "tcp"
                var code = result
                if code == EINPROGRESS { code = 0 }
                if record.op == UInt32(CG_OP_BIND) {
                    sink.events(.bind(BindObservation(time: time, pid: pid, program: program, proto: proto, address: address,
                                                      port: port, result: code)))
                } else {
                    sink.events(.flow(FlowObservation(time: time, pid: pid, program: program, proto: proto,
                                                      address: address, port: port, result: code)))
                }
            case CG_TRACE_FILE:
                if record.op == UInt32(CG_OP_CHDIR) {
                    if record.ret == 0 { resolver.changedDirectory(pid: pid, to: path, dirfd: record.dirfd) }
                    return
                }
                let resolved = resolver.resolveOrKeep(pid: pid, dirfd: record.dirfd, path: path)
                let flags = Int32(bitPattern: record.flags)
                let directoryOpen = record.op == UInt32(CG_OP_OPEN) && record.ret >= 0 && flags & (O_DIRECTORY | Self.oPath) != 0
                if directoryOpen { resolver.openedDirectory(pid: pid, fd: record.ret, path: resolved.bytes) }
                let operation: FileOperation
                switch record.op {
                case UInt32(CG_OP_OPEN): operation = OpenFlags.operation(flags)
                case UInt32(CG_OP_EXEC): operation = .exec
                case UInt32(CG_OP_UNLINK): operation = .delete
                case UInt32(CG_OP_RENAME): operation = .rename
                case UInt32(CG_OP_MKDIR): operation = .mkdir
                default: operation = .read
                }
                if !directoryOpen && collectCounts { keys.append((record.key, operation, resolved, result)) }  // always sent, not counted
                let openFlags: Int32? = record.op == UInt32(CG_OP_OPEN) ? flags : nil
                sink.events(.file(FileAccess(time: time, pid: pid, program: program, path: resolved,
                                             operation: operation, result: result, flags: openFlags)))
                if operation == .rename {
                    let target = Self.bytes(pointer, Self.data2, count: Int(record.len2))
                    let resolvedTarget = resolver.resolveOrKeep(pid: pid, dirfd: record.dirfd2, path: target)
                    sink.events(.file(FileAccess(time: time, pid: pid, program: program, path: resolvedTarget,
                                                 operation: .rename, result: result)))
                }
            default:
                break
            }
        }
    }

    /// A fixed-size field of the record: its offset and size (computed once, not per record).
    private struct Field {
        let offset: Int, size: Int
        init<T>(_ path: KeyPath<cg_trace_record, T>) {
            offset = MemoryLayout<cg_trace_record>.offset(of: path)!; size = MemoryLayout<T>.size
        }
    }
    private static let comm = Field(\cg_trace_record.comm)
    private static let path = Field(\cg_trace_record.path)
    private static let data2 = Field(\cg_trace_record.data2)
    private static let addr = Field(\cg_trace_record.addr)

    /// Bytes of a fixed-size char array field of the record.
    private static func bytes(_ record: UnsafePointer<cg_trace_record>, _ field: Field,
                              count: Int = Int.max, stopAtNul: Bool = false) -> [UInt8] {
        let raw = UnsafeRawPointer(record).advanced(by: field.offset).assumingMemoryBound(to: UInt8.self)
        var n = min(count, field.size)
        if stopAtNul { n = (0..<n).first(where: { raw[$0] == 0 }) ?? n }
        return Array(UnsafeBufferPointer(start: raw, count: n))
    }

    /// The record's program name; the previous record's RawText when it is the same (the common case).
    private func program(_ record: UnsafePointer<cg_trace_record>) -> RawText {
        let raw = UnsafeRawPointer(record).advanced(by: Self.comm.offset).assumingMemoryBound(to: UInt8.self)
        var n = 0
        while n < Self.comm.size && raw[n] != 0 { n += 1 }
        if lastProgram.bytes.count == n && (n == 0 || lastProgram.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, raw, n) == 0 })) {
            return lastProgram
        }
        lastProgram = RawText(bytes: Array(UnsafeBufferPointer(start: raw, count: n)))
        return lastProgram
    }
    private var lastProgram = RawText(bytes: [])

    private static func socketAddress(_ record: UnsafePointer<cg_trace_record>) -> (String, UInt16)? {
        let raw = bytes(record, Self.addr)
        guard raw.count >= 24 else { return nil }
        let family = UInt16(raw[0]) | UInt16(raw[1]) << 8
        let port = UInt16(raw[2]) << 8 | UInt16(raw[3])
        var text = [CChar](repeating: 0, count: 64)
        switch Int32(family) {
        case AF_INET:
            var address = Array(raw[4..<8])
            guard inet_ntop(AF_INET, &address, &text, 64) != nil else { return nil }
        case AF_INET6:
            var address = Array(raw[8..<24])
            guard inet_ntop(AF_INET6, &address, &text, 64) != nil else { return nil }
        default:
            return nil
        }
        return (String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self), port)
    }

    private static let oPath: Int32 = 0o10000000

    /// cg_trace_key as a dictionary key.
    private struct TraceKey: Hashable {
        var hash: UInt64, ret: Int32, op: UInt32, tgid: UInt32, dirfd: Int32
        init(_ k: cg_trace_key) { hash = k.path_hash; ret = k.ret; op = k.op; tgid = k.tgid; dirfd = k.dirfd }
    }

    /// A wait status as an exit code: the code for a normal exit, 128 + signal for a signal.
    static func exitCode(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
