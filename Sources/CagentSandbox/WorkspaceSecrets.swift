import CShim
import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// The workspace's secrets (`.env`, `*.pem`, ...): the profile's workspace patterns matched host-side at
/// plan time, each match becoming a hide step. The walk never follows a symlink (openat2
/// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH from the workspace's descriptor, as RiskyChanges does), runs with the
/// invoking user's rights (a directory the user cannot search is one cagent-init could not cover either), is
/// breadth first (shallow files are matched before a deep tree exhausts the budget) and bounded, so a huge
/// tree cannot stall the start. Files created during the session are not covered (docs/security.md).
package enum WorkspaceSecrets {
    /// Entries examined at most, and the deepest level walked (the workspace's own entries are level 1).
    /// 100,000 entries: 0.3 s in a release build, 1.4 s of CPU in a debug one, on the test VM (docs/security.md).
    package static let entryBudget = 100_000
    package static let depthLimit = 24
    /// Matches covered at most (each is a mount): more stops the start rather than leave some uncovered.
    package static let hideLimit = 1_000
    /// Directories never descended: git's own files (pinned separately) and installed dependencies (their
    /// test keys and sample `.env` files are the package's, not the user's; they would cost a mount each):
    /// npm's `node_modules`, Python's `site-packages` (a venv in the workspace: covering certifi's
    /// `cacert.pem` gave pip an empty CA bundle, and made `rm -rf .venv` fail with EBUSY).
    package static let skippedDirectories: Set<String> = [".git", "node_modules", "site-packages"]

    package struct Scan: Sendable, Equatable {
        /// Matches, relative to the workspace, in walk order (shallow first).
        package var hidden: [String] = []
        /// Matches that are symlinks: not covered (cagent-init never mounts on a link); what they point at is
        /// whatever the view shows there.
        package var symlinks: [String] = []
        /// The budget ran out: deeper or later entries were not matched.
        package var truncated = false
        package var entries = 0
    }

    /// Matches `patterns` in `workspace`, as `identity` when given. Throws when the user's rights cannot be
    /// taken (never a silent empty scan: that would leave every secret visible).
    package static func scan(workspace: String, patterns: [WorkspacePattern], identity: FileIdentity?,
                            entryBudget: Int = WorkspaceSecrets.entryBudget,
                            depthLimit: Int = WorkspaceSecrets.depthLimit) throws -> Scan {
        guard !patterns.isEmpty else { return Scan() }
        do {
            return try FileSystem.asUser(identity) {
                walk(workspace: workspace, patterns: patterns, entryBudget: entryBudget, depthLimit: depthLimit)
            }
        } catch let error as UserFileError {
            throw CagentError(stage: "workspace secrets", error.message(path: workspace))
        }
    }

    static func walk(workspace: String, patterns: [WorkspacePattern], entryBudget: Int, depthLimit: Int) -> Scan {
        var scan = Scan()
        let root = open(workspace, O_RDONLY | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { return scan }
        defer { close(root) }
        // Anchored patterns alone never need deeper levels than their own.
        let deepest = patterns.contains { $0.depth == nil } ? depthLimit : min(depthLimit, patterns.compactMap(\.depth).max() ?? 1)
        var queue: [[String]] = [[]]
        var next = 0
        while next < queue.count {
            let directory = queue[next]
            next += 1
            let path = directory.isEmpty ? "." : directory.joined(separator: "/")
            let fd = directory.isEmpty ? dup(root) : RiskyChanges.openBeneath(root, path, directory: true) ?? -1
            guard fd >= 0 else { continue }
            for (name, type) in entries(fd) {
                scan.entries += 1
                if scan.entries > entryBudget { close(fd); scan.truncated = true; return scan }
                if skippedDirectories.contains(name) && type != DT_LNK && type != DT_REG { continue }
                var kind = type
                if kind == DT_UNKNOWN {
                    var info = stat()
                    guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    kind = (info.st_mode & S_IFMT) == S_IFDIR ? UInt8(DT_DIR) : (info.st_mode & S_IFMT) == S_IFLNK ? UInt8(DT_LNK) : UInt8(DT_REG)
                }
                let isDirectory = kind == DT_DIR
                if patterns.contains(where: { $0.matches(directory: directory[...], name: name, isDirectory: isDirectory) }) {
                    let relative = directory.isEmpty ? name : path + "/" + name
                    if kind == DT_LNK { scan.symlinks.append(relative) } else { scan.hidden.append(relative) }
                    continue   // a covered directory hides everything below it
                }
                if isDirectory && directory.count + 1 < deepest { queue.append(directory + [name]) }
            }
            close(fd)
            if next > 4096 { queue.removeFirst(next); next = 0 }
        }
        return scan
    }

    /// Names and d_type of a directory's entries, sorted by name (the same plan for the same tree).
    static func entries(_ fd: Int32) -> [(String, UInt8)] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else { return [] }
        defer { closedir(dir) }
        var out: [(String, UInt8)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { out.append((name, entry.pointee.d_type)) }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The start line: `cagent: hidden in the workspace: .env, certs/server.pem` (nil: nothing to say).
    package static func startLine(_ scan: Scan) -> String? {
        var parts: [String] = []
        if !scan.hidden.isEmpty {
            let shown = scan.hidden.prefix(12).map { TerminalEscape.escape($0) }.joined(separator: ", ")
            let more = scan.hidden.count > 12 ? " and \(scan.hidden.count - 12) more" : ""
            parts.append("cagent: hidden in the workspace: " + shown + more)
        }
        if !scan.symlinks.isEmpty {
            parts.append("cagent: notice: not hidden (symlinks; the sandbox shows only what its view holds at their targets): "
                         + scan.symlinks.prefix(12).map { TerminalEscape.escape($0) }.joined(separator: ", "))
        }
        if scan.truncated {
            parts.append("cagent: notice: the workspace has more than \(entryBudget) entries: hide patterns were matched in the first \(entryBudget) only (breadth first)")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "\n")
    }
}

extension WorkspaceSecrets {
    /// The profile's workspace patterns matched in the (real) workspace, with the user's rights.
    package static func scan(workspace: String, profile: Profile, user: InvokingUser) throws -> Scan {
        var patterns: [WorkspacePattern] = []
        for entry in profile.filesystem.hide where WorkspacePattern.isWorkspaceEntry(entry) {
            do throws(ValueProblem) { patterns.append(try WorkspacePattern(entry)) } catch {
                throw CagentError(stage: "profile", "filesystem.hide: \(TerminalEscape.escape(entry)): \(error.message)", hint: error.hint)
            }
        }
        let found = try scan(workspace: workspace, patterns: patterns, identity: FileIdentity(invokingUnderRoot: user))
        if found.hidden.count > hideLimit {
            throw CagentError(stage: "workspace secrets",
                              "\(found.hidden.count) files in the workspace match filesystem.hide; cagent covers at most \(hideLimit)",
                              hint: "narrow the patterns, or hide their directory with one entry ('certs/')")
        }
        return found
    }

    /// One hide step per match, at its path in the view (the workspace sits at its real path).
    static func steps(_ scan: Scan, workspace: String) -> [SandboxPlan.Step] {
        scan.hidden.map { .init(.hide(workspace + "/" + $0), "hidden in the workspace: \($0)") }
    }

    /// The matches as absolute host paths (the findings' secret paths in learn mode).
    package static func absolutePaths(_ scan: Scan, workspace: String) -> [String] {
        (scan.hidden + scan.symlinks).map { workspace + "/" + $0 }
    }
}
