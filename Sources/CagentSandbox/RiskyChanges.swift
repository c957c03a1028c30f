import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Part 5 of the sandbox core (threat H13): changes an agent can make in the workspace that would run
/// code on the host later, when the user runs git, opens the editor, enters the directory or builds.
/// A snapshot is taken before and after the session; new or changed items are reported and, with
/// `--revert-risky`, put back. Every host-side access resolves paths beneath the workspace without
/// following symlinks (the agent may have planted them): openat2 RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH.
public enum RiskyChanges {
    /// Files that tools run or load without asking (direnv, VS Code tasks, cargo, npm).
    public static let watchedFiles = [".envrc", ".vscode/tasks.json", ".cargo/config.toml", ".npmrc"]

    /// git config keys that name a program to run (or pull in more config).
    public static func isRiskyGitKey(_ key: String) -> Bool {
        let lower = key.lowercased()
        if ["core.hookspath", "core.fsmonitor", "core.sshcommand", "diff.external", "include.path"].contains(lower) { return true }
        return lower.hasPrefix("filter.") || (lower.hasPrefix("includeif.") && lower.hasSuffix(".path"))
    }

    public enum FileState: Sendable, Equatable {
        case file([UInt8])
        case symlink(String)
        case other
    }

    public struct Snapshot: Sendable, Equatable {
        /// Risky keys of .git/config and their values, in file order.
        public var gitKeys: [String: [String]] = [:]
        /// Watched files and git hooks (relative path -> state); absent ones are not listed.
        public var files: [String: FileState] = [:]
    }

    public enum Change: Sendable, Equatable {
        case gitKey(key: String, before: [String], after: [String])
        case file(path: String, before: FileState?, after: FileState?)

        public var summary: String {
            switch self {
            case let .gitKey(key, before, after):
                let now = after.isEmpty ? "(removed)" : after.joined(separator: ", ")
                return before.isEmpty ? ".git/config: new \(key) = \(now)" : ".git/config: \(key) changed to \(now)"
            case let .file(path, before, after):
                if before == nil { return "new \(path)" + (after.map(describe) ?? "") }
                return after == nil ? "removed \(path)" : "changed \(path)" + (after.map(describe) ?? "")
            }
        }

        private func describe(_ state: FileState) -> String {
            if case let .symlink(target) = state { return " (symlink to \(target))" }
            return ""
        }
    }

    // MARK: snapshot

    public static func snapshot(workspace: String) -> Snapshot {
        var result = Snapshot()
        let root = open(workspace, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { return result }
        defer { close(root) }
        if case let .file(bytes)? = state(root: root, path: ".git/config") {
            result.gitKeys = riskyKeys(GitConfig.parse(String(decoding: bytes, as: UTF8.self)))
        }
        for path in watchedFiles { if let s = state(root: root, path: path) { result.files[path] = s } }
        if let hooks = openBeneath(root, ".git/hooks", directory: true) {
            for name in listDirectory(hooks) where !name.hasSuffix(".sample") {
                if let s = state(root: root, path: ".git/hooks/" + name) { result.files[".git/hooks/" + name] = s }
            }
            close(hooks)
        }
        return result
    }

    public static func compare(before: Snapshot, after: Snapshot) -> [Change] {
        var changes: [Change] = []
        for key in Set(before.gitKeys.keys).union(after.gitKeys.keys).sorted() {
            let old = before.gitKeys[key] ?? [], new = after.gitKeys[key] ?? []
            if old != new && !new.isEmpty { changes.append(.gitKey(key: key, before: old, after: new)) }
        }
        for path in Set(before.files.keys).union(after.files.keys).sorted() {
            let old = before.files[path], new = after.files[path]
            if old != new && new != nil { changes.append(.file(path: path, before: old, after: new)) }
        }
        return changes
    }

    public static func report(_ changes: [Change], reverted: Bool) -> String {
        var text = "cagent: the agent made changes that would run code on the host later (H13):\n"
        for change in changes { text += "  - " + TerminalEscape.escape(change.summary) + "\n" }
        text += reverted ? "  reverted (--revert-risky).\n" : "  review them, or run again with --revert-risky to put them back.\n"
        return text
    }

    // MARK: revert

    /// Puts risky items back as they were before the session: risky git keys removed or restored (other
    /// config edits kept), new files removed, changed files rewritten (owned by `owner`).
    public static func revert(_ changes: [Change], workspace: String, before: Snapshot, owner: InvokingUser) throws {
        let root = open(workspace, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { throw CagentError.system("revert", "cannot open the workspace") }
        defer { close(root) }
        let keys = changes.compactMap { change -> String? in
            if case let .gitKey(key, _, _) = change { return key } else { return nil }
        }
        if !keys.isEmpty {
            guard case let .file(bytes)? = state(root: root, path: ".git/config") else {
                throw CagentError(stage: "revert", ".git/config is no longer a regular file")
            }
            var text = GitConfig.removing(keys: Set(keys), from: String(decoding: bytes, as: UTF8.self))
            for key in keys { for value in before.gitKeys[key] ?? [] { text += GitConfig.assignment(key: key, value: value) } }
            try replace(root: root, path: ".git/config", with: .file(Array(text.utf8)), owner: owner)
        }
        for change in changes {
            guard case let .file(path, old, _) = change else { continue }
            if let old { try replace(root: root, path: path, with: old, owner: owner) }
            else { try remove(root: root, path: path) }
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

    static func state(root: Int32, path: String) -> FileState? {
        let (parentPath, name) = split(path)
        guard let parent = openBeneath(root, parentPath, directory: true) else { return nil }
        defer { close(parent) }
        var info = stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: 4097)
            let count = readlinkat(parent, name, &buffer, 4096)
            return .symlink(count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?")
        case S_IFREG:
            let fd = openat(parent, name, O_RDONLY | CG_O_NOFOLLOW | CG_O_CLOEXEC)
            guard fd >= 0 else { return .other }
            defer { close(fd) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while bytes.count < 4 << 20 {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            return .file(bytes)
        default:
            return .other
        }
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

    /// Writes a file (or link) through a temporary name and rename: a symlink the agent put at the final
    /// name is replaced, never followed.
    static func replace(root: Int32, path: String, with state: FileState, owner: InvokingUser) throws {
        let (parentPath, name) = split(path)
        guard let parent = openBeneath(root, parentPath, directory: true) else {
            throw CagentError.system("revert", "cannot open \(TerminalEscape.escape(parentPath)) without following links")
        }
        defer { close(parent) }
        let temporary = ".\(name).cagent-revert"
        _ = unlinkat(parent, temporary, 0)
        switch state {
        case let .file(bytes):
            let fd = openat(parent, temporary, O_WRONLY | O_CREAT | O_EXCL | CG_O_NOFOLLOW | CG_O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw CagentError.system("revert", "cannot write \(TerminalEscape.escape(path))") }
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
            _ = fchown(fd, owner.uid, owner.gid)
            close(fd)
        case let .symlink(target):
            guard symlinkat(target, parent, temporary) == 0 else { throw CagentError.system("revert", "symlinkat") }
            _ = fchownat(parent, temporary, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)
        case .other:
            return
        }
        guard renameat(parent, temporary, parent, name) == 0 else {
            throw CagentError.system("revert", "cannot put back \(TerminalEscape.escape(path))")
        }
    }

    static func remove(root: Int32, path: String) throws {
        let (parentPath, name) = split(path)
        guard let parent = openBeneath(root, parentPath, directory: true) else { return }
        defer { close(parent) }
        if unlinkat(parent, name, 0) != 0 && errno != ENOENT {
            throw CagentError.system("revert", "cannot remove \(TerminalEscape.escape(path))")
        }
    }

    static func riskyKeys(_ entries: [(String, String)]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (key, value) in entries where isRiskyGitKey(key) { result[key, default: []].append(value) }
        return result
    }
}

/// Just enough of git's config syntax to find keys and edit them line by line (never runs git: git itself
/// would honour core.fsmonitor).
enum GitConfig {
    /// Full key (section[.subsection].name, section and name lowercased) of a section header + name.
    static func parse(_ text: String) -> [(String, String)] {
        var section = ""
        var result: [(String, String)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let header = sectionName(raw) { section = header; continue }
            if let (name, value) = assignment(raw), !section.isEmpty { result.append((section + "." + name, value)) }
        }
        return result
    }

    static func sectionName(_ line: Substring) -> String? {
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        guard trimmed.first == "[", let close = trimmed.firstIndex(of: "]") else { return nil }
        let inside = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
        if let quote = inside.firstIndex(of: "\"") {
            let name = inside[..<quote].trimmingSpaces().lowercased()
            var sub = String(inside[inside.index(after: quote)...])
            if sub.hasSuffix("\"") { sub.removeLast() }
            return name + "." + sub.replacingBackslashes()
        }
        // [section.sub] (old syntax): the subsection lowercased as git does.
        return inside.trimmingSpaces().lowercased()
    }

    static func assignment(_ line: Substring) -> (String, String)? {
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        guard let first = trimmed.first, first.isLetter else { return nil }
        let name: Substring, value: Substring
        if let equals = trimmed.firstIndex(of: "=") {
            name = trimmed[..<equals]; value = trimmed[trimmed.index(after: equals)...]
        } else {
            name = trimmed; value = "true"
        }
        var cleaned = value.trimmingSpaces()
        if cleaned.hasPrefix("\"") && cleaned.hasSuffix("\"") && cleaned.count >= 2 { cleaned = String(cleaned.dropFirst().dropLast()) }
        return (name.trimmingSpaces().lowercased(), cleaned)
    }

    /// The text without the lines that set any of `keys`.
    static func removing(keys: Set<String>, from text: String) -> String {
        var section = ""
        var kept: [Substring] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let header = sectionName(raw) { section = header; kept.append(raw); continue }
            if let (name, _) = assignment(raw), keys.contains(section + "." + name) { continue }
            kept.append(raw)
        }
        var result = kept.joined(separator: "\n")
        if !result.hasSuffix("\n") { result += "\n" }
        return result
    }

    /// `[section "sub"]\n\tname = value\n` for a full key.
    static func assignment(key: String, value: String) -> String {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return "" }
        let section = parts.first!, name = parts.last!
        let sub = parts.dropFirst().dropLast().joined(separator: ".")
        let header = sub.isEmpty ? "[\(section)]" : "[\(section) \"\(sub)\"]"
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\(header)\n\t\(name) = \"\(escaped)\"\n"
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }
}

extension String {
    func replacingBackslashes() -> String {
        var out = ""
        var escape = false
        for c in self { if escape { out.append(c); escape = false } else if c == "\\" { escape = true } else { out.append(c) } }
        return out
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
