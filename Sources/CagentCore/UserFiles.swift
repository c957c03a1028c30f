import CShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The rights a file a user named is opened with. cagent runs as root; under sudo, a profile, an `extends`
/// target, a workspace file, `--db` or an import file must not be read with root's rights (a confused
/// deputy would print `/etc/shadow` in an error). Not under sudo (the user is root), nothing changes.
package struct FileIdentity: Sendable, Equatable {
    package var uid: UInt32
    package var gid: UInt32
    /// Supplementary groups, as `initgroups` would set them.
    package var groups: [UInt32]
    package var name: String

    package init(uid: UInt32, gid: UInt32, groups: [UInt32], name: String) {
        self.uid = uid; self.gid = gid; self.groups = groups; self.name = name
    }

    /// The invoking user's identity when cagent runs with more rights than that user (root under sudo);
    /// nil when files are opened with the process's own rights already.
    package static func invoking(environment: [String: String]) -> FileIdentity? {
        let user = InvokingUser.current(environment: environment)
        return FileIdentity(invokingUnderRoot: user)
    }

    /// `user`'s identity when cagent runs as root and `user` is not root; nil otherwise.
    package init?(invokingUnderRoot user: InvokingUser) {
        guard geteuid() == 0, user.uid != 0 else { return nil }
        self.init(user: user)
    }

    /// The groups looked up once per process and user: a start needs them 3-4 times (profile, view, secrets,
    /// record), and each lookup goes through NSS (files, then systemd's userdb here).
    private static let known = Mutex<[String: [UInt32]]>([:])

    package init(user: InvokingUser) {
        let key = "\(user.name):\(user.gid)"
        if let list = Self.known.withLock({ $0[key] }) {
            self.init(uid: user.uid, gid: user.gid, groups: list, name: user.name)
            return
        }
        var groups = [gid_t](repeating: 0, count: 64)
        var count = Int32(groups.count)
        if getgrouplist(user.name, user.gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(max(count, 1)))
            if getgrouplist(user.name, user.gid, &groups, &count) < 0 { count = 0 }
        }
        var list = Array(groups.prefix(Int(max(count, 0))))
        if !list.contains(user.gid) { list.insert(user.gid, at: 0) }
        Self.known.withLock { $0[key] = list }
        self.init(uid: user.uid, gid: user.gid, groups: list, name: user.name)
    }

    /// Makes the whole process this user, for good (every thread: glibc's wrappers broadcast the change).
    /// For commands that need no root at all (`report`, `sessions`, `import`): nothing they open, SQLite's
    /// own files included, can then reach beyond the user's rights. Nothing to do when not root.
    package func dropProcessRights() throws {
        guard geteuid() == 0 else { return }
        var list = groups.map { gid_t($0) }
        guard setgroups(list.count, &list) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw CagentError.system("user", "cannot drop to the rights of \(TerminalEscape.escape(name))")
        }
        guard geteuid() == uid, getuid() == uid, getegid() == gid else {
            throw CagentError(stage: "user", "still running with other rights than \(TerminalEscape.escape(name))'s")
        }
    }

    /// "as user alice" for messages.
    package var phrase: String { "as user \(TerminalEscape.escape(name))" }
}

/// Why a file a user named could not be read.
package struct UserFileError: Error, Sendable, Equatable {
    package enum Reason: Sendable, Equatable {
        case open(errno: Int32)
        case notRegular(String)
        case tooLarge(limit: Int)
        case read(errno: Int32)
        case identity(errno: Int32)
    }
    package var reason: Reason
    package var identity: FileIdentity?
    /// "read", "write" or "open" (read and write), for the message.
    package var access: String

    package init(reason: Reason, identity: FileIdentity?, access: String = "read") {
        self.reason = reason; self.identity = identity; self.access = access
    }

    /// "cannot read '/x' as user alice: Permission denied". Never any of the file's content.
    package func message(path: String) -> String {
        let who = identity.map { " " + $0.phrase } ?? ""
        let shown = "'" + TerminalEscape.escape(path) + "'"
        switch reason {
        case .open(let code), .read(let code):
            return "cannot \(access) \(shown)\(who): \(String(cString: strerror(code)))"
        case .notRegular(let kind):
            return "cannot \(access) \(shown): it is \(kind), not a regular file"
        case .tooLarge(let limit):
            return "cannot \(access) \(shown): larger than \(limit) bytes"
        case .identity(let code):
            return "cannot \(access) \(shown)\(who): switching to the user's rights failed: \(String(cString: strerror(code)))"
        }
    }
}

extension FileSystem {
    /// Runs `body` on the calling thread with `identity`'s file-system rights (fsuid, fsgid, groups), then
    /// restores root's. Other threads keep theirs. `body` must be synchronous (no `await`: a suspension could
    /// resume on another thread) and must not start threads or dispatch work (a thread created now would
    /// inherit the user's identity for good: clone copies the credentials). nil: `body` runs unchanged.
    package static func asUser<T>(_ identity: FileIdentity?, _ body: () throws -> T) throws -> T {
        // Not root: the process's own rights are at most the user's already, and cannot be switched.
        guard let identity, geteuid() == 0 else { return try body() }
        var savedUID: uid_t = 0, savedGID: gid_t = 0
        cg_fs_current(&savedUID, &savedGID)
        let count = getgroups(0, nil)
        var saved = [gid_t](repeating: 0, count: Int(max(count, 0)))
        guard count >= 0, getgroups(count, &saved) == count else {
            throw UserFileError(reason: .identity(errno: errno), identity: identity)
        }
        let switched = identity.groups.withUnsafeBufferPointer {
            cg_fs_become(identity.uid, identity.gid, $0.baseAddress, Int32($0.count))
        }
        defer {
            let restored = saved.withUnsafeBufferPointer { cg_fs_restore(savedUID, savedGID, $0.baseAddress, Int32($0.count)) }
            // A thread left with the user's rights would run later work with the wrong identity: stop.
            if restored != 0 { fatalError("cagent: cannot restore the file-system identity (errno \(-restored))") }
        }
        guard switched == 0 else { throw UserFileError(reason: .identity(errno: -switched), identity: identity) }
        return try body()
    }

    /// Opens a file a user named, with that user's rights: a descriptor, or the reason. `flags` get
    /// O_CLOEXEC | O_NOCTTY.
    package static func openAsUser(_ path: String, flags: Int32, mode: mode_t = 0o600,
                                  identity: FileIdentity?) -> Result<Int32, UserFileError> {
        let access = flags & O_ACCMODE == O_WRONLY ? "write" : flags & O_ACCMODE == O_RDWR ? "open" : "read"
        do {
            let fd = try asUser(identity) { open(path, flags | O_CLOEXEC | O_NOCTTY, mode) }
            if fd < 0 { return .failure(UserFileError(reason: .open(errno: errno), identity: identity, access: access)) }
            return .success(fd)
        } catch var error as UserFileError {
            error.access = access
            return .failure(error)
        } catch {
            return .failure(UserFileError(reason: .identity(errno: EPERM), identity: identity, access: access))
        }
    }

    /// Reads a whole file a user named, with that user's rights: only a regular file (a FIFO or a device
    /// would block or never end: opened O_NONBLOCK, then checked with fstat), at most `limit` bytes.
    /// `followSymlinks: false` refuses a symlink at the last component.
    package static func readAsUser(_ path: String, limit: Int, identity: FileIdentity?,
                                  followSymlinks: Bool = true) -> Result<[UInt8], UserFileError> {
        let flags = O_RDONLY | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW)
        let fd: Int32
        switch openAsUser(path, flags: flags, identity: identity) {
        case .failure(let error): return .failure(error)
        case .success(let opened): fd = opened
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(UserFileError(reason: .read(errno: errno), identity: identity)) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            return .failure(UserFileError(reason: .notRegular(Self.kind(info.st_mode)), identity: identity))
        }
        if info.st_size > limit { return .failure(UserFileError(reason: .tooLarge(limit: limit), identity: identity)) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(UserFileError(reason: .read(errno: errno), identity: identity))
            }
            if count == 0 { break }
            out += buffer[0..<count]
            if out.count > limit { return .failure(UserFileError(reason: .tooLarge(limit: limit), identity: identity)) }
        }
        return .success(out)
    }

    /// Writes (creates or replaces the content of) an output file the user named, with that user's rights:
    /// `--dump-plan /etc/passwd` under sudo must not truncate root's file. A FIFO or device is refused.
    package static func writeAsUser(_ path: String, bytes: [UInt8], mode: mode_t = 0o644,
                                   identity: FileIdentity?) -> Result<Void, UserFileError> {
        let fd: Int32
        // O_NOFOLLOW: an output file is never written through a link someone planted at its name.
        switch openAsUser(path, flags: O_WRONLY | O_CREAT | O_NONBLOCK | O_NOFOLLOW, mode: mode, identity: identity) {
        case .failure(let error): return .failure(error)
        case .success(let opened): fd = opened
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failure(UserFileError(reason: .read(errno: errno), identity: identity, access: "write")) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            return .failure(UserFileError(reason: .notRegular(kind(info.st_mode)), identity: identity, access: "write"))
        }
        guard ftruncate(fd, 0) == 0 else { return .failure(UserFileError(reason: .read(errno: errno), identity: identity, access: "write")) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return .failure(UserFileError(reason: .read(errno: errno), identity: identity, access: "write"))
            }
            offset += written
        }
        return .success(())
    }

    /// "a FIFO", "a directory"... for messages.
    package static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symlink"
        default: return "of an unknown type"
        }
    }
}
