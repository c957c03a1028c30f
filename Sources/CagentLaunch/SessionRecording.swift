import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// How an enforce session reaches the store without the lean front linking SQLite (docs/architecture.md
/// "Enforce sessions in the store"): at the end of the session the front writes one JSON record — the
/// session's id, profile, command, times, status, gate, and every distinct network entry with its count
/// (`sessions/<id>-network.json` in the state directory, the "full list" of the summary line) — then execs
/// `cagent-full record-enforce`, which puts it into the store and exits with the agent's status. Nothing
/// of this runs before the agent starts.
struct SessionRecording {
    let sessionID: String
    let profile: String
    let command: [String]
    /// `--db` (or the state directory's cagent.db); nil: the invoking user's default store.
    let db: String?
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
    func json(network: EnforceNetwork?, status: Int32, endedAt: Int64) -> String {
        var fields = ["\"session\":\(JSONText.quote(sessionID))", "\"kind\":\"enforce\"",
                      "\"profile\":\(JSONText.quote(profile))",
                      "\"command\":[" + command.map(JSONText.quote).joined(separator: ",") + "]",
                      "\"started_at\":\(startedAt)", "\"ended_at\":\(endedAt)", "\"status\":\(status)"]
        if let gate = network?.gateAddress { fields.append("\"gate\":\(JSONText.quote(gate))") }
        fields.append("\"workspace\":\(JSONText.quote(workspace))")
        if let added = asker?.addToProfile.withLock({ $0 }), !added.isEmpty {
            fields.append("\"add_to_profile\":[" + added.map(JSONText.quote).joined(separator: ",") + "]")
        }
        let list = network?.reporter.json() ?? "{\"allowed\":0,\"refused\":0,\"blocked\":0,\"failed\":0,\"entries\":[]}"
        return "{" + fields.joined(separator: ",") + "," + list.dropFirst()
    }

    /// Writes the record readable by the user only; returns its path. Root writes in the user's state
    /// directory: no symlink anywhere on the path is followed (none is expected; if one is there, nothing is
    /// written, the summary line names no list and the session is not recorded).
    func write(network: EnforceNetwork?, status: Int32, owner: InvokingUser) -> String? {
        let resolve = CG_RESOLVE_NO_SYMLINKS | CG_RESOLVE_NO_MAGICLINKS
        let data = cg_openat2(AT_FDCWD, paths.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, resolve)
        guard data >= 0 else { return nil }
        defer { close(data) }
        if mkdirat(data, "sessions", 0o700) == 0 { fchownat(data, "sessions", owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) }
        let name = "sessions/\(sessionID)-network.json"
        let fd = cg_openat2(data, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600, resolve | CG_RESOLVE_BENEATH)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let bytes = Array((json(network: network, status: status, endedAt: DenialReporterClock.now()) + "\n").utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else { return nil }
        fchown(fd, owner.uid, owner.gid)
        return paths.data + "/" + name
    }

    /// Replaces this process with `cagent-full record-enforce`, which records `file` and exits with `status`.
    /// Returns only when that cannot start (a warning says so; the record stays on disk).
    func recordInStore(file: String, status: Int32) {
        guard let full = OwnExecutable.sibling("cagent-full") else { return }
        var arguments = [full, "record-enforce", "--file", file, "--exit-status", String(status)]
        if let db { arguments += ["--db", db] }
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(full, &pointers)
        let reason = String(cString: strerror(errno))
        FileDescriptorStream.standardError.write(
            "cagent: warning: session not recorded in the store: cannot run \(TerminalEscape.escape(full)): \(reason)\n")
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
public enum ShellQuote {
    public static func quote(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "-_./=:,+@%".unicodeScalars.contains($0)
        }
        return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
