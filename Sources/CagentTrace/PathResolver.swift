import CagentEvents
#if canImport(Glibc)
import Glibc
#endif

/// Turns the paths a process passed to the kernel into absolute ones: relative paths against the process's
/// working directory, dirfd-based ones against the directory the fd names. Working directories are followed
/// from fork and chdir records where the backend has them (eBPF), else read from `/proc/PID/cwd` and
/// `/proc/PID/fd/N`, which is exact while the process is stopped in the syscall (seccomp) and best effort
/// after it (eBPF: a process that has exited leaves its relative path relative, documented).
/// Normalisation is lexical ("." and empty components go, ".." pops), as a profile wants.
/// Not thread-safe: one per tracer thread.
final class PathResolver {
    static let atFdcwd: Int32 = -100
    private var cwds: [Int32: [UInt8]] = [:]
    /// Directory fds seen opened (eBPF), per process: the fallback when /proc/PID/fd is gone.
    private var directories: [Int32: [Int32: [UInt8]]] = [:]

    /// Where `procRoot` is mounted (tests and a sandbox launcher may pass another proc).
    let procRoot: String

    init(procRoot: String = "/proc") { self.procRoot = procRoot }

    func forked(child: Int32, parent: Int32) {
        if let cwd = cwd(of: parent) { cwds[child] = cwd }
        if let fds = directories[parent] { directories[child] = fds }
    }

    /// A directory `path` (absolute) was opened as `fd`: remembered for later dirfd-relative paths.
    func openedDirectory(pid: Int32, fd: Int32, path: [UInt8]) {
        guard path.first == UInt8(ascii: "/") else { return }
        directories[pid, default: [:]][fd] = path
    }

    func changedDirectory(pid: Int32, to path: [UInt8], dirfd: Int32 = atFdcwd) {
        if let absolute = resolve(pid: pid, dirfd: dirfd, path: path) { cwds[pid] = absolute }
    }

    func exited(pid: Int32) { cwds[pid] = nil; directories[pid] = nil }

    /// Seeds a process's working directory (the tracer's root process, known to whoever spawned it).
    func setWorkingDirectory(pid: Int32, _ path: String) { cwds[pid] = Self.normalise(Array(path.utf8)) }

    /// The absolute path, or nil when the base directory cannot be known any more.
    func resolve(pid: Int32, dirfd: Int32, path: [UInt8]) -> [UInt8]? {
        if path.first == UInt8(ascii: "/") { return Self.normalise(path) }
        let base: [UInt8]?
        if dirfd == Self.atFdcwd { base = cwd(of: pid) }
        else { base = link("\(procRoot)/\(pid)/fd/\(dirfd)") ?? directories[pid]?[dirfd] }
        guard let base, base.first == UInt8(ascii: "/") else { return nil }
        return Self.normalise(base + [UInt8(ascii: "/")] + path)
    }

    /// The absolute path, or the path as given when it cannot be resolved.
    func resolveOrKeep(pid: Int32, dirfd: Int32, path: [UInt8]) -> RawText {
        RawText(bytes: resolve(pid: pid, dirfd: dirfd, path: path) ?? path)
    }

    private func cwd(of pid: Int32) -> [UInt8]? {
        if let known = cwds[pid] { return known }
        guard let read = link("\(procRoot)/\(pid)/cwd") else { return nil }
        cwds[pid] = read
        return read
    }

    private func link(_ path: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBufferPointer { readlink(path, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 4096) }
        guard n > 0 else { return nil }
        return Array(buffer[0..<n])
    }

    static func normalise(_ path: [UInt8]) -> [UInt8] {
        if isNormal(path) { return path }
        var parts: [ArraySlice<UInt8>] = []
        for part in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.count == 1 && part.first == UInt8(ascii: ".") { continue }
            if part.count == 2 && part.allSatisfy({ $0 == UInt8(ascii: ".") }) { _ = parts.popLast(); continue }
            parts.append(part)
        }
        var out: [UInt8] = []
        for part in parts { out.append(UInt8(ascii: "/")); out += part }
        return out.isEmpty ? [UInt8(ascii: "/")] : out
    }

    /// Already normal: absolute, no empty, "." or ".." component, no trailing slash (the common case, cheap).
    static func isNormal(_ path: [UInt8]) -> Bool {
        guard path.first == UInt8(ascii: "/") else { return false }
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var previousSlash = true, dots = 0
        for byte in path.dropFirst() {
            if byte == slash {
                if previousSlash || (dots > 0 && dots <= 2) { return false }
                previousSlash = true; dots = 0
            } else if byte == dot {
                if previousSlash || dots > 0 { dots += 1 }
                previousSlash = false
            } else {
                dots = 0; previousSlash = false
                dots = -100  // a component with other bytes: its dots do not matter
            }
        }
        return !(path.count > 1 && previousSlash) && !(dots > 0 && dots <= 2)
    }
}
