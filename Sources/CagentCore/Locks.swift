#if canImport(Glibc)
import Glibc
#endif

/// Creates a directory and its parents (mode 0755 unless given). Existing directories are fine.
package func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    var current = ""
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        current += "/" + part
        if mkdir(current, mode) != 0 && errno != EEXIST {
            throw CagentError.system("mkdir \(current)", "cannot create directory")
        }
    }
}

/// The machine-wide setup lock: two cagents starting at once never pick the same names, addresses or nflog
/// groups, because picking and claiming happen under this lock. flock(2) is released by the kernel when the
/// holder dies, so a crash never leaves it held.
package final class SetupLock {
    private var fd: Int32

    package init(paths: CagentPaths) throws {
        try makeDirectories(paths.runtime, mode: 0o700)
        fd = open(paths.lockFile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { throw CagentError.system("setup lock", "cannot open \(paths.lockFile)") }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR {
                let failure = CagentError.system("setup lock", "cannot lock \(paths.lockFile)")
                release()   // deinit runs for a class whose init throws once every property is set
                throw failure
            }
        }
    }

    /// Releases the lock (also released when the process dies). Once only: closing the number again in deinit
    /// would close whatever another thread opened under it meanwhile (a lease, another SetupLock), dropping
    /// that lock — ten concurrent setups then shared slots or failed to lock a fresh lease.
    package func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }
    deinit { release() }
}

/// A session's lease: a file under the runtime directory, flock-ed for the session's whole life. A lease whose
/// lock can be taken belongs to a dead session, and `cagent doctor --clean` may remove what it names.
// @unchecked: an flock-ed fd, closed once by end() on the owner's thread.
package final class SessionLease: @unchecked Sendable {
    package let sessionID: String
    package let path: String
    private var fd: Int32

    /// Takes a lease for a new session; `contents` records the kernel objects the session will create, so a
    /// later clean-up knows what to remove even if this process dies.
    package init(paths: CagentPaths, sessionID: String, contents: String) throws {
        try makeDirectories(paths.leases, mode: 0o700)
        self.sessionID = sessionID
        self.path = paths.leases + "/" + sessionID + ".lease"
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { throw CagentError.system("session lease", "cannot create \(path)") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let failure = CagentError.system("session lease", "cannot lock \(path)")
            end()   // once: deinit runs after a throw here too, and end() is idempotent
            throw failure
        }
        try update(contents: contents)
    }

    /// The flock-ed descriptor (-1 once ended), for a child that takes the lease over (NetworkSession.tearDownDetached).
    package var descriptor: Int32 { fd }

    /// Rewrites the record of what this session holds.
    package func update(contents: String) throws {
        let bytes = Array(contents.utf8)
        if ftruncate(fd, 0) != 0 || pwrite(fd, bytes, bytes.count, 0) != bytes.count {
            throw CagentError.system("session lease", "cannot write \(path)")
        }
    }

    /// Ends the lease after the session's objects are gone.
    package func end() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
    }

    /// Lets go of the lease without removing it: the session's objects could not all be removed, so the file
    /// stays to name them, unheld (a dead session's), for the next start or `cagent doctor --clean`.
    package func abandon() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { end() }

    /// A lease found on disk.
    package struct Record: Sendable {
        package var sessionID: String
        package var path: String
        package var contents: String
        /// True when a live process holds the lease.
        package var live: Bool
    }

    /// Every lease on disk, each with whether its session is still alive.
    package static func all(paths: CagentPaths) -> [Record] {
        guard let dir = opendir(paths.leases) else { return [] }
        defer { closedir(dir) }
        var records: [Record] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasSuffix(".lease") else { continue }
            let path = paths.leases + "/" + name
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            let live = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
            var contents: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                contents += buffer[0..<count]
            }
            records.append(Record(sessionID: String(name.dropLast(6)), path: path,
                                  contents: String(decoding: contents, as: UTF8.self), live: live))
        }
        return records
    }
}
