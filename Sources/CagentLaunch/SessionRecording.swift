import CShim
import CagentCapture
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// How an enforce session reaches the store without the lean front linking SQLite (docs/architecture.md
/// "Enforce sessions in the store"): at the end of the session the front writes one JSON record — the
/// session's id, profile, command, times, status, gate, and every distinct network entry with its count —
/// as the full list of the summary line (`sessions/<id>-network.json` in the state directory) and into the
/// store's spool (`<db>.pending/<id>.json`, with the user's rights); the next command that opens that store
/// records it (`PendingRecords`). Nothing of this runs before the agent starts, and the end of a session
/// costs two small file writes, not a SQLite open. Only when the user chose "add to the profile" at an
/// `--ask` prompt does the front hand over to `cagent-full record-enforce` (which edits the profile).
struct SessionRecording {
    let sessionID: String
    let profile: String
    let command: [String]
    /// `--db` (or the state directory's cagent.db); nil: the invoking user's default store.
    let db: String?
    /// The store's path (`db`, else `cagent.db` in the data directory: Store.defaultPath).
    var storePath: String { db ?? paths.data + "/cagent.db" }
    let paths: CagentPaths
    let workspace: String
    let asker: DenialAsker?
    let startedAt: Int64 = DenialReporterClock.now()

    /// The command that proposes allowing this session's denials (shell-quoted; the reporter escapes it for
    /// the terminal).
    var allowCommand: String {
        "cagent profile propose --update \(ShellQuote.quote(profile)) --session \(ShellQuote.quote(sessionID))"
            + (db.map { " --db \(ShellQuote.quote($0))" } ?? "")
    }

    /// The record as JSON: the reporter's counts and entries (or none, offline) with the session's fields.
    /// `reporter` and `gate`: the root session's (EnforceNetwork) or the rootless one's (RootlessNetwork); nil offline.
    func json(reporter: DenialReporter?, gate: String?, status: Int32, endedAt: Int64) -> String {
        var fields = ["\"session\":\(JSONText.quote(sessionID))", "\"kind\":\"enforce\"",
                      "\"profile\":\(JSONText.quote(profile))",
                      "\"command\":[" + command.map(JSONText.quote).joined(separator: ",") + "]",
                      "\"started_at\":\(startedAt)", "\"ended_at\":\(endedAt)", "\"status\":\(status)"]
        if let gate { fields.append("\"gate\":\(JSONText.quote(gate))") }
        fields.append("\"workspace\":\(JSONText.quote(workspace))")
        if let added = asker?.addToProfile.withLock({ $0 }), !added.isEmpty {
            fields.append("\"add_to_profile\":[" + added.map(JSONText.quote).joined(separator: ",") + "]")
        }
        let list = reporter?.json() ?? "{\"allowed\":0,\"refused\":0,\"blocked\":0,\"failed\":0,\"entries\":[]}"
        return "{" + fields.joined(separator: ",") + "," + list.dropFirst()
    }

    /// Writes the record readable by the user only; returns its path. Root writes in the user's state
    /// directory: no symlink anywhere on the path is followed (none is expected; if one is there, nothing is
    /// written, the summary line names no list and the session is not recorded).
    func write(reporter: DenialReporter?, gate: String?, status: Int32, owner: InvokingUser) -> (list: String?, spooled: String?) {
        let text = json(reporter: reporter, gate: gate, status: status, endedAt: DenialReporterClock.now()) + "\n"
        return (writeList(text, owner: owner), spool(text, owner: owner))
    }

    /// The record into the store's spool, with the rights of the user the session ran for (the store is theirs:
    /// under `--user` too, not only under sudo); nil when it cannot be written (a warning says so: the session is
    /// then only in the full list).
    func spool(_ text: String, owner: InvokingUser) -> String? {
        let identity = FileIdentity(invokingUnderRoot: owner)
        let directory = storePath + ".pending"
        let path = directory + "/\(sessionID).json"
        _ = try? FileSystem.asUser(identity) { mkdir(directory, 0o700) }
        if case .failure(let error) = FileSystem.writeAsUser(path, bytes: Array(text.utf8), mode: 0o600, identity: identity) {
            FileDescriptorStream.standardError.write("cagent: warning: session not queued for the store: \(error.message(path: path))\n")
            return nil
        }
        return path
    }

    private func writeList(_ text: String, owner: InvokingUser) -> String? {
        let resolve = CG_RESOLVE_NO_SYMLINKS | CG_RESOLVE_NO_MAGICLINKS
        let data = cg_openat2(AT_FDCWD, paths.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, resolve)
        guard data >= 0 else { return nil }
        defer { close(data) }
        if mkdirat(data, "sessions", 0o700) == 0 { fchownat(data, "sessions", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) }
        let name = "sessions/\(sessionID)-network.json"
        let fd = cg_openat2(data, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600, resolve | CG_RESOLVE_BENEATH)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else { return nil }
        fchown(fd, owner.uid, owner.gid)
        return paths.data + "/" + name
    }

    /// `--ask`'s "add to the profile": replaces this process with `cagent-full record-enforce`, which records
    /// `file`, edits the profile and exits with `status`. Returns at once when there is nothing to add, or
    /// when cagent-full cannot start (a warning says so; the record stays in the spool).
    func addToProfile(file: String, status: Int32) {
        guard let added = asker?.addToProfile.withLock({ $0 }), !added.isEmpty else { return }
        guard let full = OwnExecutable.sibling("cagent-full") else { return }
        var arguments = [full, "record-enforce", "--file", file, "--exit-status", String(status)]
        // The profile is edited by cagent-full: say so, since the exec's own start costs a moment.
        if let db { arguments += ["--db", db] }
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(full, &pointers)
        let reason = String(cString: strerror(errno))
        FileDescriptorStream.standardError.write(
            "cagent: warning: not added to the profile: cannot run \(TerminalEscape.escape(full)): \(reason)\n")
    }
}

/// Wall-clock nanoseconds since the epoch.
enum DenialReporterClock {
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// A word as a POSIX shell reads it back: plain words as they are, anything else in single quotes.
package enum ShellQuote {
    package static func quote(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./=:,+@%".unicodeScalars.contains($0)
        }
        return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
