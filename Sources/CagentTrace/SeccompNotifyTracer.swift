import CShim
import CagentCore
import CagentEvents
import Foundation
import Synchronization

/// The seccomp user-notification backend, for where BPF is not allowed: the traced process installed the
/// tracing filter (cg_notify_install) and this class services its listener. It only records: every
/// notification is answered CONTINUE, never decided (the memory it read can change before the kernel reads
/// it: TOCTOU). The syscall has not run yet when it is seen, so its result is *inferred* by looking the
/// path up in the process's own view (`/proc/PID/root`, symlinks resolved inside it): open of a missing
/// file without O_CREAT -> ENOENT, O_CREAT of a missing file -> create, mkdir of an existing path -> EEXIST,
/// and so on. Permission failures are not inferred (the supervisor is root). Connect results are unknown
/// (recorded as 0). Exits are not seen.
// @unchecked: a seccomp listener fd; the rest is guarded by `lock`, mutated in place per notification.
package final class SeccompNotifyTracer: LearnTracer, @unchecked Sendable {
    package let backend = TracerBackend.seccomp
    private let listener: Int32
    private let sink: TraceSink
    private let resolver = PathResolver()
    private let lock = Mutex(())   // guards the mutable state below
    private var stopping = false
    private var ended = false
    private var summary = TraceSummary(backend: .seccomp)
    private var final: TraceSummary?
    private var seen: [SeenKey: Int] = [:]
    private var keys: [(SeenKey, FileOperation, RawText, Int32)] = []
    private let done = Latch()
    /// Whether the kernel took SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.
    package let syncWakeUp: Bool

    private struct SeenKey: Hashable {
        var operation: FileOperation
        var path: [UInt8]
        var result: Int32
    }

    /// Services `listener` (ownership passes to the tracer) on its own thread until every task using the
    /// filter is gone, or `stop()`.
    package init(listener: Int32, sink: TraceSink) {
        self.listener = listener
        self.sink = sink
        syncWakeUp = cg_notify_sync_wakeup(listener) == 0
        let thread = Thread { [self] in run() }
        thread.name = "cagent-seccomp"
        thread.start()
    }

    /// True once no task uses the filter any more.
    package var finished: Bool { lock.withLock { _ in ended } }

    private func run() {
        var note = cg_notification()
        while !lock.withLock({ _ in stopping }) {
            let rc = cg_notify_receive(listener, 100, &note)
            if rc == 0 { continue }
            if rc < 0 { break }  // -ENOENT/-EPIPE: no task left; others: the listener is unusable
            handle(note)
            _ = cg_notify_continue(listener, note.id)
        }
        lock.withLock { _ in ended = true }
        done.open()
    }

    package func stop() throws -> TraceSummary {
        let finished: TraceSummary? = lock.withLock { _ in
            if let final { return final }
            stopping = true
            return nil
        }
        if let finished { return finished }
        done.wait()
        close(listener)
        return lock.withLock { _ in
            var result = summary
            result.counts = keys.map { PathCount(operation: $1, path: $2, result: $3, count: UInt64(seen[$0] ?? 1)) }
            final = result
            return result
        }
    }

    deinit { _ = try? stop() }

    // MARK: one notification (the process is stopped in the syscall)

    private func handle(_ note: cg_notification) {
        let pid = Int32(bitPattern: note.pid)
        let time = TraceClock.realtime()
        lock.withLock { _ in
            summary.syscalls += 1
            summary.delivered += 1
            let a = note.args
            let at = PathResolver.atFdcwd
            func fd(_ value: UInt64) -> Int32 { Int32(truncatingIfNeeded: value) }
            switch Int(note.nr) {
            case NR.open: file(pid, time, at, a.0, open: Int32(truncatingIfNeeded: a.1))
            case NR.creat: file(pid, time, at, a.0, open: 0o1101)
            case NR.openat: file(pid, time, fd(a.0), a.1, open: Int32(truncatingIfNeeded: a.2))
            case NR.openat2:
                var flags: UInt64 = 0
                _ = cg_notify_read(pid, a.2, &flags, 8)
                file(pid, time, fd(a.0), a.1, open: Int32(truncatingIfNeeded: flags))
            case NR.stat, NR.lstat, NR.access, NR.readlink: file(pid, time, at, a.0, .read)
            case NR.newfstatat, NR.statx, NR.faccessat, NR.faccessat2, NR.readlinkat:
                file(pid, time, fd(a.0), a.1, .read)
            case NR.chdir:
                if let path = read(pid, a.0), let absolute = resolver.resolve(pid: pid, dirfd: at, path: path) {
                    resolver.setWorkingDirectory(pid: pid, String(decoding: absolute, as: UTF8.self))
                }
            case NR.execve: exec(pid, time, at, a.0, argv: a.1)
            case NR.execveat: exec(pid, time, fd(a.0), a.1, argv: a.2)
            case NR.unlink, NR.rmdir: file(pid, time, at, a.0, .delete)
            case NR.unlinkat: file(pid, time, fd(a.0), a.1, .delete)
            case NR.mkdir: file(pid, time, at, a.0, .mkdir)
            case NR.mkdirat: file(pid, time, fd(a.0), a.1, .mkdir)
            case NR.rename: rename(pid, time, at, a.0, at, a.1)
            case NR.renameat, NR.renameat2: rename(pid, time, fd(a.0), a.1, fd(a.2), a.3)
            case NR.connect, NR.bind: socket(pid, time, note)
            default: break
            }
            resolver.exited(pid: pid)  // cwd re-read from /proc next time: exact while the task is stopped
        }
    }

    private func read(_ pid: Int32, _ address: UInt64) -> [UInt8]? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = cg_notify_read_string(pid, address, &buffer, buffer.count)
        guard n >= 0 else { summary.unreadable += 1; return nil }
        return buffer[0..<n].map { UInt8(bitPattern: $0) }
    }

    /// Whether `path` (absolute) exists in the process's own view of the file system.
    private func exists(_ pid: Int32, _ path: [UInt8]) -> Bool {
        let root = open("/proc/\(pid)/root", CG_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return false }
        defer { close(root) }
        let relative = String(decoding: path.drop(while: { $0 == UInt8(ascii: "/") }), as: UTF8.self)
        let fd = cg_openat2(root, relative.isEmpty ? "." : relative, CG_O_PATH | O_CLOEXEC, 0,
                            CG_NOTIFY_RESOLVE_IN_ROOT | CG_RESOLVE_NO_MAGICLINKS)
        if fd >= 0 { close(fd); return true }
        return false
    }

    private func parentExists(_ pid: Int32, _ path: [UInt8]) -> Bool {
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return true }
        return exists(pid, slash == 0 ? [UInt8(ascii: "/")] : Array(path[..<slash]))
    }

    /// The process (thread-group id) of a thread, from /proc/TID/status.
    static func threadGroup(of tid: Int32) -> Int32? {
        guard let status = FileSystem.readText("/proc/\(tid)/status") else { return nil }
        return status.split(separator: "\n").first(where: { $0.hasPrefix("Tgid:") })
            .flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) }
    }

    private func program(_ pid: Int32) -> RawText {
        RawText(bytes: Array((FileSystem.read("/proc/\(pid)/comm") ?? []).prefix(while: { $0 != 10 })))
    }

    private func file(_ pid: Int32, _ time: Nanoseconds, _ dirfd: Int32, _ address: UInt64, open flags: Int32) {
        guard let path = read(pid, address), !path.isEmpty else { return }
        let absolute = resolver.resolve(pid: pid, dirfd: dirfd, path: path) ?? path
        let present = exists(pid, absolute)
        var operation = OpenFlags.operation(flags)
        var result: Int32 = 0
        if flags & O_CREAT != 0 {
            if present { result = flags & O_EXCL != 0 ? EEXIST : 0; if result == 0 { operation = .write } }
            else if !parentExists(pid, absolute) { result = ENOENT }
        } else if !present {
            result = ENOENT
        }
        emit(pid, time, operation, absolute, result, flags: flags)
    }

    private func file(_ pid: Int32, _ time: Nanoseconds, _ dirfd: Int32, _ address: UInt64, _ operation: FileOperation) {
        guard let path = read(pid, address), !path.isEmpty else { return }
        let absolute = resolver.resolve(pid: pid, dirfd: dirfd, path: path) ?? path
        let present = exists(pid, absolute)
        let result: Int32
        switch operation {
        case .mkdir: result = present ? EEXIST : (parentExists(pid, absolute) ? 0 : ENOENT)
        default: result = present ? 0 : ENOENT
        }
        emit(pid, time, operation, absolute, result)
    }

    private func rename(_ pid: Int32, _ time: Nanoseconds, _ dirfd: Int32, _ from: UInt64, _ dirfd2: Int32, _ to: UInt64) {
        guard let old = read(pid, from), let new = read(pid, to) else { return }
        let oldPath = resolver.resolve(pid: pid, dirfd: dirfd, path: old) ?? old
        let newPath = resolver.resolve(pid: pid, dirfd: dirfd2, path: new) ?? new
        let result: Int32 = exists(pid, oldPath) ? 0 : ENOENT
        emit(pid, time, .rename, oldPath, result)
        emit(pid, time, .rename, newPath, result, dedup: false)
    }

    private func exec(_ pid: Int32, _ time: Nanoseconds, _ dirfd: Int32, _ address: UInt64, argv: UInt64) {
        guard let path = read(pid, address) else { return }
        let absolute = resolver.resolve(pid: pid, dirfd: dirfd, path: path) ?? path
        guard exists(pid, absolute) else {
            emit(pid, time, .exec, absolute, ENOENT)
            return
        }
        var args: [RawText] = []
        var pointer = argv
        for _ in 0..<256 where pointer != 0 {
            var element: UInt64 = 0
            guard cg_notify_read(pid, pointer, &element, 8) == 8, element != 0, let text = read(pid, element) else { break }
            args.append(RawText(bytes: text))
            pointer &+= 8
        }
        let status = FileSystem.readText("/proc/\(pid)/status") ?? ""
        let ppid = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") })
            .flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) } ?? 0
        let name = RawText(bytes: Array((absolute.split(separator: UInt8(ascii: "/")).last ?? []).prefix(15)))
        sink.events(.exec(ProcessExec(time: time, pid: pid, ppid: ppid, executable: RawText(bytes: absolute),
                                      argv: args, program: name)))
        sink.events(.file(FileAccess(time: time, pid: pid, program: name, path: RawText(bytes: absolute), operation: .exec)))
    }

    private func emit(_ pid: Int32, _ time: Nanoseconds, _ operation: FileOperation, _ path: [UInt8], _ result: Int32,
                      flags: Int32? = nil, dedup: Bool = true) {
        if dedup {
            let key = SeenKey(operation: operation, path: path, result: result)
            if let n = seen[key] { seen[key] = n + 1; summary.duplicates += 1; return }
            seen[key] = 1
            keys.append((key, operation, RawText(bytes: path), result))
        }
        sink.events(.file(FileAccess(time: time, pid: pid, program: program(pid), path: RawText(bytes: path),
                                     operation: operation, result: result, flags: flags)))
    }

    private func socket(_ pid: Int32, _ time: Nanoseconds, _ note: cg_notification) {
        var raw = [UInt8](repeating: 0, count: 28)
        let length = Int(min(note.args.2 & 0xffff_ffff, 28))  // socklen_t from a hostile register
        guard length >= 8, cg_notify_read(pid, note.args.1, &raw, length) == length else { return }
        let family = Int32(UInt16(raw[0]) | UInt16(raw[1]) << 8)
        let port = UInt16(raw[2]) << 8 | UInt16(raw[3])
        var text = [CChar](repeating: 0, count: 64)
        switch family {
        case AF_INET: var a = Array(raw[4..<8]); guard inet_ntop(AF_INET, &a, &text, 64) != nil else { return }
        case AF_INET6: guard length >= 24 else { return }
            var a = Array(raw[8..<24]); guard inet_ntop(AF_INET6, &a, &text, 64) != nil else { return }
        default: return
        }
        let address = String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // pidfd_open wants a thread-group leader; the notification names the calling thread (curl's and dig's
        // resolvers connect and bind from threads of their own): fall back to its process.
        var pidfd = cg_notify_pidfd(pid)
        if pidfd < 0, let tgid = Self.threadGroup(of: pid), tgid != pid { pidfd = cg_notify_pidfd(tgid) }
        var proto = "tcp"
        if pidfd >= 0 {
            if cg_notify_socket_type(pidfd, Int32(truncatingIfNeeded: note.args.0)) == SOCK_DGRAM.rawValue { proto = "udp" }
            close(pidfd)
        }
        if Int(note.nr) == NR.bind {
            sink.events(.bind(BindObservation(time: time, pid: pid, program: program(pid), proto: proto, address: address,
                                              port: port, result: 0)))
        } else {
            sink.events(.flow(FlowObservation(time: time, pid: pid, program: program(pid), proto: proto,
                                              address: address, port: port)))
        }
    }
}

/// x86_64 syscall numbers (the filter in cg_seccomp_notify.c notifies exactly these).
private enum NR {
    static let open = 2, stat = 4, lstat = 6, access = 21, connect = 42, bind = 49, execve = 59, chdir = 80
    static let rename = 82, mkdir = 83, rmdir = 84, creat = 85, unlink = 87, readlink = 89, openat = 257
    static let mkdirat = 258, newfstatat = 262, unlinkat = 263, renameat = 264, readlinkat = 267
    static let faccessat = 269, renameat2 = 316, execveat = 322, statx = 332, openat2 = 437, faccessat2 = 439
}
