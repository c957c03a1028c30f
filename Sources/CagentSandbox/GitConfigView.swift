import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The workspace repository's configuration as git itself computes it (threat H13): every scope git reads
/// from the repository (config, include and includeIf files, config.worktree, commondir), never a parser of
/// our own that an agent could out-guess. git runs as the invoking user with an empty global and system
/// configuration, an explicit GIT_DIR (discovery cannot wander) and a clean environment. `git config
/// --list` executes nothing (core.fsmonitor, pagers, hooks and helpers belong to other commands); a
/// timeout and an output bound cover a FIFO or a huge file planted as an include.
package enum GitConfigView {
    package struct Entry: Sendable, Hashable {
        package var scope: String
        /// Where git read it ("file:/path/.git/config").
        package var origin: String
        /// section[.subsection].name as git prints it (section and name lowercased).
        package var key: String
        package var value: String
    }

    package enum Outcome: Sendable, Equatable {
        case entries([Entry])
        /// git could not compute the configuration (it is a finding when the session may have caused it).
        case failed(String)
    }

    static let candidates = ["/usr/bin/git", "/usr/local/bin/git", "/bin/git"]
    static let outputLimit = 32 << 20
    package static let timeoutMilliseconds: Int32 = 10_000

    /// Keys that never make git run anything or read more configuration (values are checked where a key
    /// alone is not enough: a remote URL with `::` names a transport helper program).
    package static func isInert(key: String, value: String) -> Bool {
        let lower = key.lowercased()
        if ["user.name", "user.email", "core.repositoryformatversion", "core.filemode", "core.bare",
            "core.logallrefupdates", "core.ignorecase", "core.precomposeunicode", "core.symlinks"].contains(lower) { return true }
        let parts = lower.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, let section = parts.first, let name = parts.last else { return false }
        switch (section, name) {
        case ("remote", "url"), ("remote", "pushurl"):
            return !value.hasPrefix("-") && !value.contains("::") && !value.unicodeScalars.contains { $0.value < 0x20 }
        case ("remote", "fetch"), ("remote", "push"), ("branch", "remote"), ("branch", "merge"):
            return true
        default:
            return false
        }
    }

    /// git's view of `<workspace>/.git` (a real directory: the caller checked without following links).
    package static func read(workspace: String, user: InvokingUser, timeoutMilliseconds: Int32 = timeoutMilliseconds) -> Outcome {
        guard let git = candidates.first(where: { access($0, X_OK) == 0 }) else { return .failed("git is not installed") }
        let parent = workspace.lastIndex(of: "/").map { String(workspace[..<$0]) } ?? "/"
        let environment = [
            "HOME=" + user.home, "PATH=/usr/bin:/bin", "LC_ALL=C", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
            "GIT_DIR=" + workspace + "/.git", "GIT_CEILING_DIRECTORIES=" + (parent.isEmpty ? "/" : parent),
            "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0",
        ]
        let arguments = [git, "config", "--list", "--show-origin", "--show-scope", "--includes", "-z"]
        var output: [UInt8] = [], errors: [UInt8] = []
        let status = run(git, arguments, environment, cwd: workspace, user: user, timeout: timeoutMilliseconds,
                         output: &output, errors: &errors)
        switch status {
        case .some(0):
            return .entries(parse(output))
        case .some(let code):
            let message = String(decoding: errors.prefix(400), as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            return .failed("git config exited with \(code)" + (message.isEmpty ? "" : ": " + message))
        case .none:
            return .failed(output.count >= outputLimit ? "the configuration is larger than \(outputLimit >> 20) MiB"
                                                       : "git config did not finish in \(timeoutMilliseconds) ms")
        }
    }

    /// `scope NUL origin NUL key LF value NUL` records (a key without a value has no LF).
    static func parse(_ bytes: [UInt8]) -> [Entry] {
        let tokens = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var entries: [Entry] = []
        var index = 0
        while index + 2 < tokens.count {
            let pair = tokens[index + 2]
            let key: String, value: String
            if let newline = pair.firstIndex(of: "\n") {
                key = String(pair[..<newline]); value = String(pair[pair.index(after: newline)...])
            } else {
                key = pair; value = ""
            }
            entries.append(Entry(scope: tokens[index], origin: tokens[index + 1], key: key, value: value))
            index += 3
        }
        return entries
    }

    /// Runs git as the user; nil on timeout or oversized output (the child is killed either way).
    static func run(_ path: String, _ arguments: [String], _ environment: [String], cwd: String, user: InvokingUser,
                    timeout: Int32, output: inout [UInt8], errors: inout [UInt8]) -> Int32? {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { return 127 }
        guard pipe(&errPipe) == 0 else { close(outPipe[0]); close(outPipe[1]); return 127 }
        // The child closes every descriptor but its three (close_range): no other spawn inherits these for long.
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = environment.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        // The user's supplementary groups, looked up here: the child between fork and exec must not call NSS.
        let groups = FileIdentity(user: user).groups.map { gid_t($0) }
        let count = Int32(groups.count)
        let pid = cg_run_as(user.uid, user.gid, groups, count, cwd, path, &argv, &envp, outPipe[1], errPipe[1])
        close(outPipe[1]); close(errPipe[1])
        defer { close(outPipe[0]); close(errPipe[0]) }
        guard pid > 0 else { return 127 }
        var open = [outPipe[0], errPipe[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        var remaining = timeout
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let start = monotonicMilliseconds()
            let ready = poll(&fds, nfds_t(fds.count), remaining)
            remaining -= Int32(clamping: monotonicMilliseconds() - start)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 || remaining <= 0 { timedOut = true; break }
            for item in fds where item.revents != 0 {
                let n = Glibc.read(item.fd, &buffer, buffer.count)
                if n <= 0 { open.removeAll { $0 == item.fd }; continue }
                if item.fd == outPipe[0] { output += buffer[0..<n] } else if errors.count < 4096 { errors += buffer[0..<n] }
            }
            if output.count >= outputLimit { timedOut = true; break }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut { return nil }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    static func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
