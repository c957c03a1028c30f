import CShim
import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// Threat H13: changes an agent can make in the workspace that would run code on the host later, when the
/// user runs git, opens the editor, enters the directory or builds. Snapshots before and after the session:
/// - git's own view of the repository's configuration (GitConfigView), so that no syntax trick, include,
///   worktree config or commondir escapes a parser of ours; a key outside a short inert list that is new
///   or changed is a finding;
/// - every file under `.git/` outside objects, refs and logs (hooks, info/attributes, commondir,
///   config.worktree, gitdir files, modules/...), the files tools run without being asked (direnv, VS Code,
///   IDEA, devcontainer, cargo, npm, pre-commit, mise), the files git's view names inside the workspace
///   (include targets, a hooksPath directory), by content, walked without following symlinks: a symlink
///   or a replaced directory is a finding in itself, never "unreadable".
/// Findings are reported; `--revert-risky` puts the start state back (kept bytes, the user's ownership).
/// Every host-side access resolves paths beneath the workspace with openat2
/// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH (the agent may have planted links anywhere).
package enum RiskyChanges {
    /// Files that tools load or run without being asked.
    package static let watchedFiles = [".envrc", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pre-commit-config.yaml",
                                      "mise.toml", ".mise.toml", ".devcontainer.json"]
    /// Directories whose every file is watched (IDE tasks and settings, run configurations, dev containers,
    /// cargo config, hook directories that hook managers point core.hooksPath at).
    package static let watchedDirectories = [".vscode", ".idea", ".devcontainer", ".cargo", ".husky", ".githooks"]
    /// Inside a git directory: data, not control (git never runs or configures from them).
    static let gitDataDirectories: Set<String> = ["objects", "refs", "logs", "lfs", "rr-cache"]
    /// Inside a git directory: state that git rewrites on ordinary commands and never runs.
    static let gitStateFiles: Set<String> = [
        "index", "index.lock", "COMMIT_EDITMSG", "ORIG_HEAD", "FETCH_HEAD", "MERGE_HEAD", "MERGE_MSG", "MERGE_MODE",
        "MERGE_RR", "CHERRY_PICK_HEAD", "REVERT_HEAD", "AUTO_MERGE", "BISECT_LOG", "packed-refs", "description",
        "gc.log", "gc.pid", "shallow", "exclude",
    ]
    static let keepLimit = 1 << 20
    static let readLimit = 16 << 20
    static let keepBudget = 64 << 20
    static let nodeBudget = 20_000

    package enum Node: Sendable, Equatable {
        case directory(mode: UInt32)
        /// Content: the bytes themselves up to 1 MiB, else their SHA-256.
        case file(mode: UInt32, size: Int, fingerprint: [UInt8])
        case symlink(String)
        case other(mode: UInt32)
        /// A symlink on the way to it: never followed.
        case behindLink
        case tooLarge(size: Int)
        /// Git's ordinary state (index, HEAD naming a branch, *.sample): its content does not matter.
        case state
    }

    package struct Snapshot: Sendable {
        package var nodes: [String: Node] = [:]
        /// Start-state bytes of files up to 1 MiB (for the revert).
        var contents: [String: [UInt8]] = [:]
        /// git's view; nil when `.git` is not a directory.
        package var git: GitConfigView.Outcome?
        /// Paths walked (watched roots plus the ones git's view named): the end snapshot walks them too.
        var roots: [String] = []
        /// Workspace-relative files git's view read (its origins), `.git/config` among them.
        var gitFiles: Set<String> = []
        var truncated = false
    }

    package enum Change: Sendable, Equatable {
        case gitKey(key: String, value: String, origin: String)
        case gitUnreadable(String)
        case path(String, before: Node?, after: Node?)
        case truncated

        package var summary: String {
            switch self {
            case let .gitKey(key, value, origin):
                let shown = value.count > 200 ? String(value.prefix(200)) + "..." : value
                return "git config: \(key) = \(shown) (\(origin))"
            case let .gitUnreadable(message):
                return "git cannot read the repository's configuration: \(message)"
            case let .path(path, before, after):
                if after == nil { return "removed \(path)" }
                return (before == nil ? "new " : "changed ") + path + Self.describe(path, after!)
            case .truncated:
                return "more than \(RiskyChanges.nodeBudget) files to check under the watched paths: not all were compared"
            }
        }

        static func describe(_ path: String, _ node: Node) -> String {
            switch node {
            case let .symlink(target): return " (a symlink to \(target): git and editors follow it)"
            case .behindLink: return " (behind a symlinked directory)"
            case let .tooLarge(size): return " (\(size) bytes: too large to check)"
            case .other: return " (not a regular file)"
            case let .file(_, size, _):
                if path == ".git" { return " (a gitdir file: git follows it)" }
                return size > RiskyChanges.keepLimit ? " (\(size) bytes)" : ""
            default: return ""
            }
        }
    }

    // MARK: snapshot

    package static func snapshot(workspace: String, user: InvokingUser, alsoWalk: [String] = []) -> Snapshot {
        var walker = Walker()
        let root = open(workspace, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { return walker.result }
        defer { close(root) }
        walker.root = root
        for path in [".git"] + watchedFiles + watchedDirectories + alsoWalk { walker.walk(path) }
        if case .directory? = walker.result.nodes[".git"] {
            // A FIFO or device where git reads its config would only stall git until the timeout: the node
            // itself is the finding.
            let special = [".git/config", ".git/config.worktree", ".git/commondir"].first {
                if case .other? = walker.result.nodes[$0] { true } else { false }
            }
            let view = special.map { .failed("\($0) is not a regular file") } ?? GitConfigView.read(workspace: workspace, user: user)
            walker.result.git = view
            if case let .entries(entries) = view {
                for path in workspacePaths(named: entries, workspace: workspace) { walker.walk(path) }
                walker.result.gitFiles = Set(entries.compactMap { entry in
                    entry.origin.hasPrefix("file:") ? relative(String(entry.origin.dropFirst(5)), to: workspace) : nil
                })
            }
        }
        return walker.result
    }

    /// Files git's view reads from inside the workspace (include targets outside .git) and a hooks
    /// directory configured inside it, relative to the workspace.
    static func workspacePaths(named entries: [GitConfigView.Entry], workspace: String) -> [String] {
        var paths: [String] = []
        func add(_ path: String) {
            guard let relative = relative(path, to: workspace), !relative.hasPrefix(".git/") else { return }
            if !paths.contains(relative) { paths.append(relative) }
        }
        for entry in entries {
            if entry.origin.hasPrefix("file:") { add(String(entry.origin.dropFirst(5))) }
            if entry.key.lowercased() == "core.hookspath" {
                add(entry.value.hasPrefix("/") ? entry.value : workspace + "/" + entry.value)
            }
        }
        return paths
    }

    /// A path git printed, relative to the workspace (nil outside it). git prints include paths as it joined
    /// them (".git/../team.cfg"): normalized by name only, then walked without following links.
    static func relative(_ path: String, to workspace: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { if !parts.isEmpty { parts.removeLast() } } else { parts.append(part) }
        }
        let absolute = "/" + parts.joined(separator: "/")
        guard absolute.hasPrefix(workspace + "/") else { return nil }
        let relative = String(absolute.dropFirst(workspace.count + 1))
        return relative.isEmpty ? nil : relative
    }

    /// The walk: no symlink followed, bounded in nodes and bytes.
    struct Walker {
        var root: Int32 = -1
        var result = Snapshot()
        var kept = 0

        mutating func walk(_ path: String) {
            guard !result.roots.contains(path) else { return }
            result.roots.append(path)
            visit(path)
        }

        mutating func visit(_ path: String) {
            if result.nodes.count >= RiskyChanges.nodeBudget { result.truncated = true; return }
            let (parentPath, name) = RiskyChanges.split(path)
            let parent = RiskyChanges.openBeneath(root, parentPath, directory: true)
            guard let parent else {
                if errno == ELOOP || errno == EXDEV { result.nodes[path] = .behindLink }
                return
            }
            defer { close(parent) }
            var info = stat()
            guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
            let mode = UInt32(info.st_mode) & 0o7777
            let inGit = path == ".git" || path.hasPrefix(".git/")
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                result.nodes[path] = .directory(mode: mode)
                if inGit && RiskyChanges.gitDataDirectories.contains(name) { return }
                let fd = openat(parent, name, O_RDONLY | CG_O_DIRECTORY | CG_O_NOFOLLOW | CG_O_CLOEXEC)
                guard fd >= 0 else { return }
                let names = RiskyChanges.listDirectory(fd)
                close(fd)
                for child in names { visit(path + "/" + child) }
            case S_IFLNK:
                result.nodes[path] = .symlink(RiskyChanges.readLink(parent, name))
            case S_IFREG:
                if inGit && path != ".git" && (RiskyChanges.gitStateFiles.contains(name) || name.hasSuffix(".sample")) {
                    result.nodes[path] = .state
                    return
                }
                let size = Int(info.st_size)
                guard size <= RiskyChanges.readLimit, let bytes = RiskyChanges.readFile(parent, name, limit: RiskyChanges.readLimit) else {
                    result.nodes[path] = .tooLarge(size: size)
                    return
                }
                if inGit && name == "HEAD" && RiskyChanges.isPlainHead(bytes) { result.nodes[path] = .state; return }
                if bytes.count <= RiskyChanges.keepLimit {
                    result.nodes[path] = .file(mode: mode, size: bytes.count, fingerprint: bytes)
                    if kept + bytes.count <= RiskyChanges.keepBudget { result.contents[path] = bytes; kept += bytes.count }
                } else {
                    result.nodes[path] = .file(mode: mode, size: bytes.count, fingerprint: SHA256.digest(bytes))
                }
            default:
                result.nodes[path] = .other(mode: UInt32(info.st_mode))
            }
        }
    }

    /// HEAD naming a branch or a commit: git's state, not a place for code.
    static func isPlainHead(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self).trimmingSpaces().trimmingCharacters(in: "\n")
        if text.hasPrefix("ref: refs/") { return !text.contains("\n") && !text.contains("..") }
        return (40...64).contains(text.count) && text.allSatisfy { $0.isHexDigit }
    }

    // MARK: compare and report

    /// Paths whose content git's view judges (a config file changing only inert keys is no finding): the
    /// files the view read, and the repository's own config files. Other `config` files (a submodule's
    /// under .git/modules, a linked worktree's) are outside this view: compared as files.
    static func configPaths(_ before: Snapshot, _ after: Snapshot) -> Set<String> {
        before.gitFiles.union(after.gitFiles).union([".git/config", ".git/config.worktree"])
    }

    package static func compare(before: Snapshot, after: Snapshot) -> [Change] {
        var changes: [Change] = []
        let config = configPaths(before, after)
        var configChanged = false
        for path in config where before.nodes[path] != after.nodes[path] { configChanged = true }
        switch after.git {
        case let .entries(entries)?:
            var seen: [String: Int] = [:]
            if case let .entries(old)? = before.git { for entry in old { seen[entry.key + "\u{0}" + entry.value, default: 0] += 1 } }
            for entry in entries where !GitConfigView.isInert(key: entry.key, value: entry.value) {
                let id = entry.key + "\u{0}" + entry.value
                if let count = seen[id], count > 0 { seen[id] = count - 1; continue }
                changes.append(.gitKey(key: entry.key, value: entry.value, origin: entry.scope + ", " + entry.origin))
            }
        case let .failed(message)?:
            if before.git != after.git || configChanged { changes.append(.gitUnreadable(message)) }
        case nil:
            break
        }
        for path in Set(before.nodes.keys).union(after.nodes.keys).sorted() {
            let old = before.nodes[path], new = after.nodes[path]
            guard old != new, let new else { continue }   // removals run nothing
            if case .directory = new {
                if old == nil { continue }
                if case .directory? = old { continue }
            }
            if config.contains(path), case let .file(_, size, _) = new, size <= keepLimit {
                if old == nil || { if case .file? = old { true } else { false } }() { continue }
            }
            changes.append(.path(path, before: old, after: new))
        }
        if after.truncated { changes.append(.truncated) }
        return changes
    }

    package static func report(_ changes: [Change], reverted: Bool, revertErrors: [String] = []) -> String {
        var text = "cagent: the agent made changes that would run code on the host later (H13):\n"
        for change in changes { text += "  - " + TerminalEscape.escape(change.summary) + "\n" }
        for error in revertErrors { text += "  ! " + TerminalEscape.escape(error) + "\n" }
        if reverted {
            text += revertErrors.isEmpty ? "  reverted (--revert-risky).\n" : "  reverted except the items marked '!': review them.\n"
        } else {
            text += "  review them, or run again with --revert-risky to put them back.\n"
        }
        return text
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }

    func trimmingCharacters(in set: String) -> String {
        String(self.drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

extension RiskyChanges {
    /// The end of a session: compare with the start, revert when asked; the report for stderr (nil: nothing).
    package static func check(workspace: String, before: Snapshot, user: InvokingUser, revert: Bool) -> String? {
        let after = snapshot(workspace: workspace, user: user, alsoWalk: before.roots)
        let changes = compare(before: before, after: after)
        guard !changes.isEmpty else { return nil }
        let errors = revert ? self.revert(changes, workspace: workspace, before: before, after: after, owner: user) : []
        return report(changes, reverted: revert, revertErrors: errors)
    }
}
