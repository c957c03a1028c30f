import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The revert of RiskyChanges and the file access it shares with the snapshot: everything beneath the
/// workspace, resolved with openat2 RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH and O_NOFOLLOW (the agent may have
/// planted links anywhere), written through a temporary name and renameat, owned by the user.
extension RiskyChanges {
    // MARK: revert

    /// The paths a revert puts back: each finding's path with its changed ancestors and descendants, and
    /// every changed git configuration file when git's view found anything.
    static func revertPaths(_ changes: [Change], before: Snapshot, after: Snapshot) -> [String] {
        let all = Set(before.nodes.keys).union(after.nodes.keys).filter { before.nodes[$0] != after.nodes[$0] }
        var targets = Set<String>()
        var gitFinding = false
        for change in changes {
            switch change {
            case let .path(path, _, _):
                targets.insert(path)
                if configPaths(before, after).contains(path) { gitFinding = true }
            case .gitKey, .gitUnreadable: gitFinding = true
            case .truncated: break
            }
        }
        if gitFinding { for path in configPaths(before, after) where all.contains(path) { targets.insert(path) } }
        var result = Set<String>()
        for path in all {
            for target in targets where path == target || path.hasPrefix(target + "/") || target.hasPrefix(path + "/") {
                result.insert(path)
            }
        }
        return result.sorted()
    }

    /// Puts the start state back for every finding: new items removed, changed ones rewritten from the kept
    /// bytes (owned by `owner`), never through a link. Returns what could not be put back.
    package static func revert(_ changes: [Change], workspace: String, before: Snapshot, after: Snapshot,
                              owner: InvokingUser) -> [String] {
        let root = open(workspace, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { return ["cannot open the workspace"] }
        defer { close(root) }
        var errors: [String] = []
        for path in revertPaths(changes, before: before, after: after) {
            do { try restore(root: root, path: path, to: before.nodes[path], bytes: before.contents[path], owner: owner) } catch {
                errors.append("\(path): \(error)")
            }
        }
        return errors
    }

    static func restore(root: Int32, path: String, to node: Node?, bytes: [UInt8]?, owner: InvokingUser) throws {
        let (parentPath, name) = split(path)
        guard let parent = openBeneath(root, parentPath, directory: true) else {
            if node == nil && errno == ENOENT { return }   // removed with its new parent
            throw CagentError(stage: "revert", "cannot open \(parentPath) without following links")
        }
        defer { close(parent) }
        switch node {
        case nil:
            removeTree(parent, name)
        case let .directory(mode)?:
            var info = stat()
            if fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { return }
            removeTree(parent, name)
            guard mkdirat(parent, name, mode_t(mode)) == 0 else { throw CagentError.system("revert", "cannot recreate the directory") }
            _ = fchownat(parent, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
        case let .file(mode, _, _)?:
            guard let bytes else { throw CagentError(stage: "revert", "too large to have been kept: put it back by hand") }
            try replace(parent, name, with: .file(mode, bytes), owner: owner)
        case let .symlink(target)?:
            try replace(parent, name, with: .symlink(target), owner: owner)
        case .state?:
            return
        case .other?, .behindLink?, .tooLarge?:
            throw CagentError(stage: "revert", "its start state was not a file cagent can recreate")
        }
    }

    // MARK: no-follow file access beneath the workspace

    static func openBeneath(_ root: Int32, _ path: String, directory: Bool) -> Int32? {
        let flags = (directory ? O_RDONLY | CG_O_DIRECTORY : CG_O_PATH) | CG_O_CLOEXEC | CG_O_NOFOLLOW
        let fd = cg_openat2(root, path, flags, 0, CG_RESOLVE_NO_SYMLINKS | CG_RESOLVE_BENEATH | CG_RESOLVE_NO_MAGICLINKS)
        return fd >= 0 ? fd : nil
    }

    static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    static func readLink(_ parent: Int32, _ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlinkat(parent, name, &buffer, 4096)
        return count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// A regular file's bytes (opened without following a link, non-blocking: a FIFO never hangs us).
    static func readFile(_ parent: Int32, _ name: String, limit: Int) -> [UInt8]? {
        let fd = openat(parent, name, O_RDONLY | CG_O_NOFOLLOW | CG_O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes.count <= limit ? bytes : nil
    }

    static func listDirectory(_ fd: Int32) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    enum Content { case file(UInt32, [UInt8]), symlink(String) }

    /// Writes a file (or link) through a temporary name and rename: whatever the agent put at the final
    /// name (a link, a directory) is replaced, never followed.
    static func replace(_ parent: Int32, _ name: String, with content: Content, owner: InvokingUser) throws {
        let temporary = ".\(name).cagent-revert"
        removeTree(parent, temporary)
        switch content {
        case let .file(mode, bytes):
            let fd = openat(parent, temporary, O_WRONLY | O_CREAT | O_EXCL | CG_O_NOFOLLOW | CG_O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CagentError.system("revert", "cannot write") }
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { close(fd); throw CagentError.system("revert", "write failed") }
                offset += n
            }
            _ = fchown(fd, owner.uid, owner.gid)
            _ = fchmod(fd, mode_t(mode))
            close(fd)
        case let .symlink(target):
            guard symlinkat(target, parent, temporary) == 0 else { throw CagentError.system("revert", "symlinkat") }
            _ = fchownat(parent, temporary, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
        }
        var info = stat()
        if fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(parent, name) }
        guard renameat(parent, temporary, parent, name) == 0 else {
            let error = CagentError.system("revert", "cannot put it back")
            _ = unlinkat(parent, temporary, 0)
            throw error
        }
    }

    /// Removes a name and, for a directory, everything below it, without following any link.
    static func removeTree(_ parent: Int32, _ name: String) {
        if unlinkat(parent, name, 0) == 0 || errno == ENOENT { return }
        let fd = openat(parent, name, O_RDONLY | CG_O_DIRECTORY | CG_O_NOFOLLOW | CG_O_CLOEXEC)
        guard fd >= 0 else { return }
        for child in listDirectory(fd) { removeTree(fd, child) }
        close(fd)
        _ = unlinkat(parent, name, AT_REMOVEDIR)
    }
}
