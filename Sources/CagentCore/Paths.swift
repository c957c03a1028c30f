#if canImport(Glibc)
import Glibc
#endif

/// The user cagent acts for, and where its files live.
///
/// cagent runs as root (it needs namespaces and netfilter) but works on behalf of the invoking user: under
/// sudo that is `SUDO_UID`, otherwise the real uid. The agent never runs as root.
package struct InvokingUser: Sendable, Equatable {
    package var uid: UInt32
    package var gid: UInt32
    package var name: String
    package var home: String

    package init(uid: UInt32, gid: UInt32, name: String, home: String) {
        self.uid = uid; self.gid = gid; self.name = name; self.home = home
    }

    /// Whether cagent runs through sudo (`SUDO_UID` set): the invoking user is then not the process's own.
    package static func underSudo(_ environment: [String: String]) -> Bool { environment["SUDO_UID"] != nil }

    /// SUDO_UID when run through sudo, else the real uid; looked up in the password database.
    package static func current(environment: [String: String]) -> InvokingUser {
        var uid = getuid()
        if let sudo = environment["SUDO_UID"], let parsed = UInt32(sudo) { uid = parsed }
        if let entry = getpwuid(uid) {
            return InvokingUser(uid: uid, gid: entry.pointee.pw_gid,
                                name: String(cString: entry.pointee.pw_name),
                                home: String(cString: entry.pointee.pw_dir))
        }
        return InvokingUser(uid: uid, gid: uid, name: "uid\(uid)", home: "/nonexistent")
    }

    /// The user an agent runs as: `uid` when one was asked for (`--user`; it must exist), else the invoking
    /// user. Never root.
    package static func agent(uid: UInt32?, environment: [String: String]) throws -> InvokingUser {
        var user = current(environment: environment)
        if let uid {
            guard let entry = getpwuid(uid) else {
                throw CagentError(stage: "user", "no user with uid \(uid)", hint: "pass the uid of an existing user")
            }
            user = InvokingUser(uid: uid, gid: entry.pointee.pw_gid, name: String(cString: entry.pointee.pw_name),
                                home: String(cString: entry.pointee.pw_dir))
        }
        if user.uid == 0 {
            throw CagentError(stage: "user", "the agent never runs as root",
                              hint: "run cagent through sudo from your own account, or pass --user UID")
        }
        return user
    }
}

extension InvokingUser {
    /// `environment` as cagent reads it when it acts for this user (`--user`): SUDO_UID, SUDO_GID and
    /// SUDO_USER name the user, so every default place answers for it — CagentPaths.standard (from the user's
    /// own home in the password database, never the caller's XDG variables), ProfileResolver.standard and its
    /// trust store, and FileIdentity.invoking (the user's files are opened with the user's rights).
    package func placesEnvironment(_ environment: [String: String]) -> [String: String] {
        var result = environment
        result["SUDO_UID"] = String(uid)
        result["SUDO_GID"] = String(gid)
        result["SUDO_USER"] = name
        return result
    }

    /// Where a session's files go (`enforce`, `learn`): with `--user` (`actingFor`) every place is this user's
    /// (profiles, trust store, state, the database), whatever cagent's own HOME and XDG variables say; the
    /// environment those places are read from, and the paths, `--state-dir` replacing the data directory.
    package func sessionPlaces(environment: [String: String], actingFor: Bool,
                              stateDir: String?) -> (environment: [String: String], paths: CagentPaths) {
        let places = actingFor ? placesEnvironment(environment) : environment
        var paths = CagentPaths.standard(user: self, environment: places)
        if let stateDir { paths.data = stateDir }
        return (places, paths)
    }

    /// The environment for the places of `uid` (a command's `--user`), or `environment` itself without one.
    /// Acting for another user takes root: a plain user cannot open another's files anyway, and is told so
    /// in one line instead of a permission error on some file.
    package static func placesEnvironment(uid: UInt32?, environment: [String: String]) throws -> [String: String] {
        guard let uid else { return environment }
        guard let entry = getpwuid(uid) else {
            throw CagentError(stage: "user", "no user with uid \(uid)", hint: "pass the uid of an existing user")
        }
        if geteuid() != 0 && uid != getuid() {
            throw CagentError(stage: "user", "acting for another user (--user \(uid)) needs root",
                              hint: "run it with sudo, or leave out --user for your own places")
        }
        let user = InvokingUser(uid: uid, gid: entry.pointee.pw_gid, name: String(cString: entry.pointee.pw_name),
                                home: String(cString: entry.pointee.pw_dir))
        return user.placesEnvironment(environment)
    }
}

/// cagent's directories. State (shadow homes, the database) belongs to the invoking user; runtime state
/// (the global lock, session leases) is machine-wide under /run.
package struct CagentPaths: Sendable {
    /// Machine-wide runtime directory: the setup lock and one lease file per live session.
    package var runtime: String
    /// Persistent per-user state: `$XDG_DATA_HOME/cagent` or `~/.local/share/cagent`.
    package var data: String
    /// Per-user configuration: `$XDG_CONFIG_HOME/cagent` or `~/.config/cagent`.
    package var config: String

    package init(runtime: String, data: String, config: String) {
        self.runtime = runtime; self.data = data; self.config = config
    }

    package static func standard(user: InvokingUser, environment: [String: String]) -> CagentPaths {
        // Under sudo, root's XDG variables are not the user's: use the user's home.
        let underSudo = InvokingUser.underSudo(environment)
        // The XDG spec: an empty or relative value counts as unset.
        func xdg(_ name: String) -> String? {
            guard !underSudo, let value = environment[name], value.hasPrefix("/") else { return nil }
            return value
        }
        let dataHome = xdg("XDG_DATA_HOME") ?? user.home + "/.local/share"
        let configHome = xdg("XDG_CONFIG_HOME") ?? user.home + "/.config"
        let runtime = environment["CAGENT_RUNTIME_DIR"] ?? "/run/cagent"
        return CagentPaths(runtime: runtime, data: dataHome + "/cagent", config: configHome + "/cagent")
    }

    package var leases: String { runtime + "/sessions" }
    package var lockFile: String { runtime + "/setup.lock" }
}

/// Where cagent's own helper executables are: next to the running binary (cagent-init, cagent-full).
package enum OwnExecutable {
    /// `<directory of /proc/self/exe>/<name>`, or nil when the running binary's path cannot be read.
    package static func sibling(_ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink("/proc/self/exe", &buffer, 4096)
        guard count > 0 else { return nil }
        let exe = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return directory + "/" + name
    }
}
