import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// A workspace whose `.git` is a `gitdir:` file naming a git directory outside it: a linked worktree
/// (`git worktree add`: `<main>/.git/worktrees/<name>`, whose `commondir` leads to `<main>/.git`) or a
/// submodule checkout (`<super>/.git/modules/<name>`). Enforce maps the smallest tree git needs — the
/// common git dir (objects, refs and their lock files live there) or the module's git dir — read-write,
/// with the H13 protections on top: `hooks` and `config` read-only (both run or name code when the user
/// next runs git on the host), and for a worktree the other worktrees' dirs read-only.
///
/// Only a directory that names this workspace back is mapped: a worktree's `gitdir` file must lead to the
/// workspace's `.git`, a module's `core.worktree` to the workspace. An agent that wrote a `.git` file in an
/// earlier session (when there was none) pointing at another repository's git dir, or at any directory,
/// gets nothing. Everything is read with the user's rights (FileSystem.asUser), `.git` beneath the
/// workspace without following a link, the rest through realpath as the user; a hidden path is never mapped.
enum LinkedGitDirectory {
    struct Mapping: Equatable {
        /// The directory bound read-write: the common git dir (worktree) or the module's git dir.
        var root: String
        /// For a worktree: this worktree's own dir (under `root/worktrees`).
        var worktreeDir: String?
    }

    /// nil and a notice when nothing is mapped for a reason the user should know; nil and nil when the
    /// gitdir lies inside the workspace (already in the view).
    static func resolve(workspaceFD: Int32, workspace: String, user: InvokingUser, hidden: [String]) -> (Mapping?, String?) {
        let identity = FileIdentity(invokingUnderRoot: user)
        let result: (Mapping?, String?)? = try? FileSystem.asUser(identity) { () -> (Mapping?, String?) in
            guard let text = readBeneath(workspaceFD, ".git"), let named = gitdirLine(text) else {
                return (nil, "the workspace's .git file has no 'gitdir:' line: nothing of its repository is mapped")
            }
            let target = named.hasPrefix("/") ? named : workspace + "/" + named
            let shown = TerminalEscape.escape(named)
            func refuse(_ why: String) -> (Mapping?, String?) {
                (nil, "the workspace's .git names \(shown), not mapped: it \(why); git will not find its repository in the sandbox")
            }
            guard let gitDir = FileSystem.realPath(target) else { return refuse("cannot be resolved") }
            if gitDir == workspace || gitDir.hasPrefix(workspace + "/") { return (nil, nil) }
            guard isRegularFile(gitDir + "/HEAD") else { return refuse("is not a git directory (no HEAD)") }
            var mapping: Mapping
            if let common = readFile(gitDir + "/commondir").map(trimmed) {
                // A linked worktree: its dir must name this workspace's .git back (git writes that file).
                guard let back = readFile(gitDir + "/gitdir").map(trimmed), FileSystem.realPath(back) == workspace + "/.git" else {
                    return refuse("names another worktree")
                }
                guard let commonDir = FileSystem.realPath(common.hasPrefix("/") ? common : gitDir + "/" + common),
                      isRegularFile(commonDir + "/HEAD"), gitDir.hasPrefix(commonDir + "/worktrees/") else {
                    return refuse("has no common git dir above it")
                }
                mapping = Mapping(root: commonDir, worktreeDir: gitDir)
            } else {
                // A submodule's git dir: its core.worktree must lead to the workspace.
                guard let config = readFile(gitDir + "/config"), let worktree = coreWorktree(config),
                      FileSystem.realPath(worktree.hasPrefix("/") ? worktree : gitDir + "/" + worktree) == workspace else {
                    return refuse("does not name this workspace as its work tree")
                }
                guard isDirectory(gitDir + "/objects") else { return refuse("is not a git directory (no objects)") }
                mapping = Mapping(root: gitDir, worktreeDir: nil)
            }
            for path in hidden where mapping.root == path || mapping.root.hasPrefix(path + "/") || path.hasPrefix(mapping.root + "/") {
                return refuse("meets the hidden path \(TerminalEscape.escape(path))")
            }
            if mapping.root == "/" || mapping.root == user.home { return refuse("is too wide") }
            // Absent hooks: made (the user's, with the user's rights) so that the agent cannot add them either.
            _ = mkdir(mapping.root + "/hooks", 0o755)
            return (mapping, nil)
        }
        return result ?? (nil, "the workspace's .git file could not be read as the user: nothing of its repository is mapped")
    }

    /// The binds: the git dir read-write, then read-only what must not change under it.
    static func steps(_ mapping: Mapping) -> [SandboxPlan.Step] {
        let root = mapping.root
        var steps: [SandboxPlan.Step] = [
            .init(.bind(source: root, target: root, mode: .readWrite), "the workspace's git dir outside it (worktree/submodule): git writes objects and refs there"),
            .init(.bind(source: root + "/hooks", target: root + "/hooks", mode: .readOnly, optional: true), "its hooks read-only (H13)"),
            .init(.bind(source: root + "/config", target: root + "/config", mode: .readOnly, optional: true), "its config read-only (H13: core.fsmonitor, hooksPath ... run on the host)"),
        ]
        if let worktree = mapping.worktreeDir {
            steps.append(.init(.bind(source: root + "/worktrees", target: root + "/worktrees", mode: .readOnly), "the other worktrees' dirs read-only"))
            steps.append(.init(.bind(source: worktree, target: worktree, mode: .readWrite), "this worktree's own dir (HEAD, index)"))
        }
        return steps
    }

    // MARK: - Reading (inside FileSystem.asUser)

    static func gitdirLine(_ text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("gitdir:") {
            let value = trimmed(String(line.dropFirst(7)))
            return value.isEmpty ? nil : value
        }
        return nil
    }

    /// `worktree = PATH` in the `[core]` section (the form git writes for a submodule).
    static func coreWorktree(_ config: String) -> String? {
        var inCore = false
        for raw in config.split(separator: "\n") {
            let line = trimmed(String(raw))
            if line.hasPrefix("[") { inCore = line.lowercased() == "[core]"; continue }
            guard inCore, let equals = line.firstIndex(of: "=") else { continue }
            if trimmed(String(line[..<equals])).lowercased() == "worktree" { return trimmed(String(line[line.index(after: equals)...])) }
        }
        return nil
    }

    static func trimmed(_ text: String) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }.reversed())
    }

    private static func readBeneath(_ root: Int32, _ name: String) -> String? {
        let fd = cg_openat2(root, name, O_RDONLY | O_NONBLOCK | CG_O_CLOEXEC | CG_O_NOFOLLOW, 0,
                            CG_RESOLVE_NO_SYMLINKS | CG_RESOLVE_BENEATH | CG_RESOLVE_NO_MAGICLINKS)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readAll(fd)
    }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readAll(fd)
    }

    /// A regular file of at most 64 KiB (a FIFO or a device would block or never end).
    private static func readAll(_ fd: Int32) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= 65536 else { return nil }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            out += buffer[0..<count]
            if out.count > 65536 { return nil }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
