import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// What `cagent enforce` was asked to run, before any decision is made.
package struct EnforceRequest: Sendable {
    package var profile: Profile
    /// The workspace as given (resolved to its real path by the planner).
    package var workspace: String
    package var user: InvokingUser
    package var paths: CagentPaths
    package var command: [String]
    /// cagent's own environment: only the allowlisted names reach the agent (AgentEnvironment).
    package var environment: [String: String]
    /// Names passed from it besides the profile's env.pass (`--env NAME`).
    package var requestedEnvironment: [String] = []
    package var terminal: SandboxPlan.TerminalSize?
    package var sessionID: String
    package var hostname: String
    /// The sandbox's resolvers (the network layer's DNS gate); empty: a resolv.conf saying there is none.
    package var nameservers: [String]
    package var tmpBytes: UInt64
    package var shmBytes: UInt64
    /// The shadow home's bound (limits.disk).
    package var diskBytes: UInt64
    /// Apply the process policy (seccomp, Landlock, rlimits) to the agent; off only to test the layers apart.
    package var processPolicy = true
    /// No usable cgroup (SessionLimits): rlimits hold the process and memory limits.
    package var limitsWithoutCgroup = false
    /// Rootless mode: cagent is not root. The shadow home is a plain directory of the user's (a loop device
    /// for the bounded image needs root), bound read-write like the workspace; everything else is the same.
    package var rootless = false
    /// `--ssh-key`: the deploy key and the profile's known hosts, written into the sandbox's /etc/ssh.
    package var sshKey: SshDeployKey?

    package init(profile: Profile, workspace: String, user: InvokingUser, paths: CagentPaths, command: [String],
                environment: [String: String], terminal: SandboxPlan.TerminalSize? = nil,
                sessionID: String = SessionID.new(), hostname: String = "cagent",
                nameservers: [String] = []) {
        self.profile = profile; self.workspace = workspace; self.user = user; self.paths = paths
        self.command = command; self.environment = environment; self.terminal = terminal
        self.sessionID = sessionID; self.hostname = hostname; self.nameservers = nameservers
        self.tmpBytes = profile.limits.tmpBytes ?? (1 << 30)
        self.shmBytes = profile.limits.shmBytes ?? (64 << 20)
        self.diskBytes = profile.limits.diskBytes ?? ResourceLimits.defaults.diskBytes
    }
}

/// Profile + request -> SandboxPlan for enforce mode. The filesystem view is one sequence below; each
/// step carries the reason for its place in the order (docs/architecture.md repeats them).
package enum EnforcePlanner {
    /// /proc of the sandbox's own pid namespace, a minimal /dev (harmless nodes, the sandbox's own devpts,
    /// the standard links) and a private /dev/shm: the same in enforce and learn mode.
    static func kernelInterfaces(shmBytes: UInt64) -> [SandboxPlan.Step] {
        var steps: [SandboxPlan.Step] = []
        func add(_ operation: SandboxPlan.Operation, _ reason: String) { steps.append(.init(operation, reason)) }
        add(.proc("/proc"), "fresh /proc of the sandbox's pid namespace")
        add(.tmpfs(target: "/dev", mode: "0755", sizeBytes: 64 << 10), "minimal /dev")
        for node in ["null", "zero", "full", "random", "urandom", "tty"] {
            add(.bind(source: "/dev/" + node, target: "/dev/" + node, mode: .device), "harmless device node")
        }
        add(.devpts("/dev/pts"), "the sandbox's own devpts: no path to the user's terminal")
        add(.symlink(target: "pts/ptmx", path: "/dev/ptmx"), "ptmx of the sandbox's devpts")
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            add(.symlink(target: target, path: "/dev/" + name), "standard /dev link")
        }
        add(.tmpfs(target: "/dev/shm", mode: "1777", sizeBytes: shmBytes), "private shared memory")
        return steps
    }

    /// System directories bound read-only (or recreated as the same symlink on merged-/usr systems).
    package static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

    /// Host files under /etc that programs need; nothing with credentials (no shadow, no pip.conf/npmrc).
    package static let etcEntries = [
        "alternatives", "ca-certificates", "ca-certificates.conf", "ssl", "pki", "ld.so.cache", "ld.so.conf",
        "ld.so.conf.d", "nsswitch.conf", "localtime", "timezone", "protocols", "services", "networks",
        "gai.conf", "host.conf", "mime.types", "inputrc", "bash.bashrc", "profile", "profile.d", "shells",
        "gitconfig", "terminfo", "os-release", "debian_version", "lsb-release", "locale.alias", "locale.conf",
        "manpath.config", "python3", "python3.11", "magic", "magic.mime", "vim", "wgetrc", "xdg",
    ]

    /// Variables that always pass (besides the profile's env.pass, `--env` names, LC_* and HOME).
    package static var alwaysPassed: [String] { AgentEnvironment.alwaysPassed }

    /// The plan's bounded volume (the shadow home's image), known before the plan is made: the start opens and
    /// mounts it on a thread (PendingVolume) meanwhile. nil in rootless mode (a directory) and for root as the
    /// agent (the plan refuses it). The plan's own `volume` is the same value (`shadowHomeVolume`).
    package static func volume(_ request: EnforceRequest) throws -> SandboxPlan.VolumeSpec? {
        guard !request.rootless, request.user.uid != 0 else { return nil }
        let image = try ShadowHome.prepare(paths: request.paths, user: request.user, agent: request.profile.agent)
        return shadowHomeVolume(image: image, request)
    }

    static func shadowHomeVolume(image: String, _ request: EnforceRequest) -> SandboxPlan.VolumeSpec {
        .init(image: image, sizeBytes: request.diskBytes, journal: true, purpose: "shadow home",
              seed: ShadowHome.legacyDirectory(paths: request.paths, agent: request.profile.agent))
    }

    package static func plan(_ request: EnforceRequest) throws -> SandboxPlan {
        let user = request.user
        guard user.uid != 0 else {
            throw CagentError(stage: "user", "the agent never runs as root",
                              hint: "run through sudo (SUDO_UID names the user) or pass --user UID")
        }
        guard !request.command.isEmpty else {
            throw CagentError(stage: "command", "no agent command given", hint: "cagent enforce --profile P -- CMD [ARGS...]")
        }
        let workspace = try realPath(request.workspace, what: "workspace")
        let home = try cleanPath(user.home, what: "home")
        if workspace == "/" || isWithin(home, workspace) {
            throw CagentError(stage: "workspace", "the workspace \(TerminalEscape.escape(workspace)) would expose the whole home directory",
                              hint: "run cagent from a project directory, not from your home or /")
        }
        let shadowHome = request.rootless
            ? try ShadowHome.prepareDirectory(paths: request.paths, user: user, agent: request.profile.agent)
            : try ShadowHome.prepare(paths: request.paths, user: user, agent: request.profile.agent)
        var steps: [SandboxPlan.Step] = []
        func add(_ operation: SandboxPlan.Operation, _ reason: String) { steps.append(.init(operation, reason)) }

        // 1. System directories read-only. First, because everything after (the /etc symlinks, the agent's
        //    interpreter and libraries) points into them; merged-/usr links are recreated, not followed.
        for directory in systemDirectories {
            var info = stat()
            guard lstat(directory, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFLNK, let target = readLink(directory) {
                add(.symlink(target: target, path: directory), "same link as the host: \(directory) -> \(target)")
            } else if (info.st_mode & S_IFMT) == S_IFDIR {
                add(.bind(source: directory, target: directory, mode: .readOnly), "system directory, read-only")
            }
        }

        // 2. /etc on a tmpfs, filled from the host's files the agent needs (symlinks recreated as links: many
        //    are, e.g. localtime, resolv.conf) plus generated identity and name files; sealed read-only at
        //    the very end (step 9), after profile entries that land in it (`/etc/default/locale`).
        add(.tmpfs(target: "/etc", mode: "0755", sizeBytes: 1 << 20), "/etc is built, never the host's")
        for name in etcEntries {
            let path = "/etc/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFLNK, let target = readLink(path) {
                add(.symlink(target: target, path: path), "host symlink, recreated")
            } else {
                add(.bind(source: path, target: path, mode: .readOnly, optional: true), "host file the agent needs")
            }
        }
        for (name, contents) in generatedEtc(request: request, user: user, home: home) {
            add(.file(path: "/etc/" + name, mode: "0644", contents: contents), "generated: only the sandbox's users and names")
        }
        // The deploy key of --ssh-key lives here, not in the persistent shadow home: sealed with /etc, gone with the session.
        if let sshKey = request.sshKey { steps += sshKey.steps }

        // 3. Kernel interfaces before any host tree: /proc is this pid namespace's own (host processes
        //    invisible), /dev only harmless nodes and the sandbox's own devpts, /tmp private and bounded.
        //    They come before the workspace so that a workspace under /tmp lands on top of the new /tmp.
        steps += kernelInterfaces(shmBytes: request.shmBytes)
        add(.tmpfs(target: "/tmp", mode: "1777", sizeBytes: request.tmpBytes), "private /tmp with a size bound")

        // 4. The shadow home at the user's home path (the real home never appears), before the workspace:
        //    a workspace inside the home must land on top of it, not under it. It is the bounded volume (an
        //    ext4 image of limits.disk): the agent cannot fill the host's disk through it.
        if request.rootless {
            add(.bind(source: shadowHome, target: home, mode: .readWrite), "persistent shadow home (agent config and cache): rootless, a directory of the user's, not bounded")
        } else {
            add(.volume(target: home), "persistent shadow home (agent config and cache), bounded by limits.disk")
        }

        // 5. The workspace, read-write at its real path (agents record absolute paths).
        add(.bind(source: workspace, target: workspace, mode: .readWrite), "the workspace")

        // 6. The profile's lists, after home and workspace because they may land inside either
        //    (`~/.gitconfig` lands in the shadow home).
        for entry in request.profile.filesystem.read {
            if let (source, target) = try hostEntry(entry, home: home) {
                add(.bind(source: source, target: target, mode: .readOnly, optional: true), "profile read: \(entry)")
            }
        }
        for entry in request.profile.filesystem.write {
            if let (source, target) = try hostEntry(entry, home: home) {
                add(.bind(source: source, target: target, mode: .readWrite, optional: true), "profile write: \(entry)")
            }
        }

        // 6b/7. The agent's own tree when it lives outside the view (a venv in the home, a tool in /tmp), then
        //      the hide list after every bind (it covers what they exposed), then the workspace's secrets.
        let (agent, secrets) = try CoveredView.add(to: &steps, profile: request.profile, command: request.command,
                                                   path: request.environment["PATH"], home: home, workspace: workspace,
                                                   user: user, own: CoveredView.ownPlaces(request.paths, user: user), shadowHomeTarget: home)

        // 8. .git pinned (a mount point) and its hooks read-only, last in the workspace: hooks and a
        //    replaced .git would run on the host when the user next runs git (H13).
        //    A worktree's or submodule's git dir outside the workspace is mapped here too (LinkedGitDirectory),
        //    never over a hidden path.
        let hidden = try LearnPlanner.hiddenEntries(request.profile).map { try viewPath($0, home: home) }
        let git = GitProtection.steps(workspace: workspace, user: user, linkedHidden: hidden)
        steps += git.steps

        // 9. Seal the tmpfs trees we populated: last, because any bind above may have needed a mount point
        //    in them. (The root itself is sealed by cagent-init after the pivot.)
        add(.readOnly("/etc"), "populated: now read-only")
        add(.readOnly("/dev"), "populated: now read-only")

        var plan = SandboxPlan(sessionID: request.sessionID, hostname: request.hostname, uid: user.uid, gid: user.gid,
                               workingDirectory: workspace, command: agent.command,
                               environment: environment(request: request, home: home), steps: steps,
                               terminal: request.terminal, workspace: workspace, shadowHome: shadowHome)
        // An older cagent's shadow-home directory is copied into the image when the image is made.
        plan.rootless = request.rootless
        if !request.rootless {
            plan.volume = shadowHomeVolume(image: shadowHome, request)
        }

        // The process policy (Policy/): seccomp filter, Landlock over the view (read everywhere the mounts
        // show, write only where they allow it), rlimits. Applied by cagent-init last, before exec.
        if request.processPolicy {
            let writable = steps.compactMap { step -> String? in
                switch step.operation {
                case let .bind(_, target, .readWrite, _): return target
                case let .volume(target?): return target
                case let .tmpfs(target, _, _, false) where target == "/tmp" || target == "/dev/shm": return target
                default: return nil
                }
            }
            var limits = ResourceLimits(profile: request.profile.limits)
            limits.withoutCgroup = request.limitsWithoutCgroup
            let (policy, notices) = try ProcessPolicy.forSandbox(limits: limits,
                                                                 readOnly: ["/"], readWrite: writable)
            plan.policy = try policy.serialized()
            plan.policyNotices = notices
        }
        plan.policyNotices += git.notices
        plan.workspaceSecrets = secrets
        plan.agentMapped = agent.mapped
        return plan
    }

    /// The agent's environment (AgentEnvironment: the same policy in learn mode).
    static func environment(request: EnforceRequest, home: String) -> [String] {
        AgentEnvironment(host: request.environment, profilePass: request.profile.env.pass,
                         requested: request.requestedEnvironment, home: home).entries
    }

    static func generatedEtc(request: EnforceRequest, user: InvokingUser, home: String) -> [(String, String)] {
        let shells: [String] = ["/bin/bash", "/bin/sh"]
        let shell = shells.first { access($0, X_OK) == 0 } ?? "/bin/sh"
        let userName = sanitizedName(user.name)
        var groupName = userName
        if let group = getgrgid(user.gid), let name = group.pointee.gr_name { groupName = sanitizedName(String(cString: name)) }
        let passwd = """
        root:x:0:0:root:/root:/usr/sbin/nologin
        \(userName):x:\(user.uid):\(user.gid):\(userName):\(home):\(shell)
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """
        let group = """
        root:x:0:
        \(groupName):x:\(user.gid):
        nogroup:x:65534:

        """
        let hosts = """
        127.0.0.1\tlocalhost
        ::1\tlocalhost ip6-localhost ip6-loopback
        127.0.1.1\t\(request.hostname)

        """
        let resolv = resolvConf(nameservers: request.nameservers)
        return [("passwd", passwd), ("group", group), ("hosts", hosts), ("hostname", request.hostname + "\n"),
                ("resolv.conf", resolv)]
    }

    /// The sandbox's /etc/resolv.conf: the network's gateway addresses (the DNS gate), or none.
    package static func resolvConf(nameservers: [String]) -> String {
        nameservers.isEmpty
            ? "# cagent: no resolver in this sandbox\n"
            : nameservers.map { "nameserver \($0)\n" }.joined() + "options edns0\n"
    }

    static func sanitizedName(_ name: String) -> String {
        let cleaned = String(name.unicodeScalars.map { scalar -> Character in
            let ok = (scalar.value >= 0x30 && scalar.value <= 0x39) || (scalar.value >= 0x41 && scalar.value <= 0x5a)
                || (scalar.value >= 0x61 && scalar.value <= 0x7a) || scalar == "-" || scalar == "_" || scalar == "."
            return ok ? Character(scalar) : "_"
        })
        return cleaned.isEmpty ? "agent" : cleaned
    }

    /// A profile path (`~/x` or absolute) as it appears in the view.
    static func viewPath(_ entry: String, home: String) throws -> String {
        if entry == "~" { return home }
        if entry.hasPrefix("~/") { return try cleanPath(home + "/" + entry.dropFirst(2), what: "profile path") }
        return try cleanPath(entry, what: "profile path")
    }

    /// Source (host real path) and target (view path) of a read/write entry; nil when it does not exist.
    static func hostEntry(_ entry: String, home: String) throws -> (String, String)? {
        let target = try viewPath(entry, home: home)
        // `~/x` names the real home's x (the view's home path is the real home's path), shown at ~/x.
        guard let source = try? realPath(target, what: "profile path") else { return nil }
        // The sandbox has its own /proc: an entry resolving into the host's (/etc/mtab -> /proc/self/mounts,
        // which names cagent's own pid here) is never bound; the sandbox's /proc shows the agent its own.
        if isWithin(source, "/proc") { return nil }
        return (source, entry.hasPrefix("~") ? target : source)
    }

    static func isWithin(_ path: String, _ directory: String) -> Bool {
        path == directory || directory == "/" || path.hasPrefix(directory + "/")
    }

    /// An absolute path without empty or "." components; ".." is refused (paths are resolved beneath roots).
    static func cleanPath(_ path: String, what: String) throws -> String {
        guard path.hasPrefix("/") else {
            throw CagentError(stage: what, "not an absolute path: \(TerminalEscape.escape(path))")
        }
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { throw CagentError(stage: what, "'..' in \(TerminalEscape.escape(path))") }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    package static func realPath(_ path: String, what: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            let hint = what == "workspace"
                ? "the workspace is the agent's project directory and must exist: create it, or pass --workspace DIR (default: the current directory)"
                : nil
            throw CagentError.system(what, "cannot resolve \(TerminalEscape.escape(path))", hint: hint)
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink(path, &buffer, 4096)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The agent's persistent home under cagent's state directory: an ext4 image `<data>/homes/<agent>.img`
/// of limits.disk (DiskVolume), root's, whose root directory is the user's. Its config and cache survive
/// between runs; the user's real home never appears in the sandbox. Host-side code reaches its files
/// through the volume's mount fd (`DiskVolume.mountFD`), never through a host path.
package enum ShadowHome {
    package static func path(paths: CagentPaths, agent: String?) -> String {
        legacyDirectory(paths: paths, agent: agent) + ".img"
    }

    /// Where the shadow home lived before it was bounded (a plain directory, no longer used).
    package static func legacyDirectory(paths: CagentPaths, agent: String?) -> String {
        paths.data + "/homes/" + EnforcePlanner.sanitizedName(agent ?? "default")
    }

    /// Creates the directories above the image (owned by the user) and returns the image's path; the
    /// Launcher creates the image itself when it is missing.
    package static func prepare(paths: CagentPaths, user: InvokingUser, agent: String?) throws -> String {
        let target = paths.data + "/homes"
        // cagent makes its own directories, never the user's home (as root it would make any path the password
        // database names, e.g. /nonexistent, owned by the user): state under a missing home is an error.
        var home = stat()
        if target.hasPrefix(user.home + "/"), user.home != "/", lstat(user.home, &home) != 0 {
            throw CagentError(stage: "shadow home", "the home directory \(TerminalEscape.escape(user.home)) of \(TerminalEscape.escape(user.name)) does not exist",
                              hint: "create it, or keep cagent's state elsewhere: --state-dir DIR")
        }
        var built = ""
        for part in target.split(separator: "/") {
            built += "/" + part
            var info = stat()
            if lstat(built, &info) == 0 { continue }
            guard mkdir(built, 0o700) == 0 || errno == EEXIST else {
                throw CagentError.system("shadow home", "cannot create \(TerminalEscape.escape(built))")
            }
            _ = chown(built, user.uid, user.gid)
        }
        var info = stat()
        guard lstat(target, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw CagentError(stage: "shadow home", "\(TerminalEscape.escape(target)) is not a directory (a symlink?)",
                              hint: "remove it; cagent recreates it")
        }
        return path(paths: paths, agent: agent)
    }

    /// Rootless mode: the shadow home as the plain directory `<data>/homes/<agent>` (the user's, 0700; the
    /// same directory cagent used before the image, so a rootful image's seed and a rootless home agree).
    /// A loop device needs root and nothing else bounds a directory: limits.disk does not hold here (the
    /// start says so). cagent-init binds it without following a symlink (a link the agent left at a mount
    /// target inside it stops the start, H11).
    package static func prepareDirectory(paths: CagentPaths, user: InvokingUser, agent: String?) throws -> String {
        _ = try prepare(paths: paths, user: user, agent: agent)
        let directory = legacyDirectory(paths: paths, agent: agent)
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw CagentError.system("shadow home", "cannot create \(TerminalEscape.escape(directory))")
        }
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == user.uid else {
            throw CagentError(stage: "shadow home", "\(TerminalEscape.escape(directory)) is not a directory of uid \(user.uid) (a symlink?)",
                              hint: "remove it; cagent recreates it")
        }
        return directory
    }
}

extension SandboxPlan {
    /// Rewrites the plan's /etc/resolv.conf to name `nameservers` (the launcher's `finalizePlan`: a session's
    /// resolver addresses are known only after the clone).
    package mutating func setNameservers(_ nameservers: [String]) {
        replaceFile(at: "/etc/resolv.conf", contents: EnforcePlanner.resolvConf(nameservers: nameservers))
    }
}
