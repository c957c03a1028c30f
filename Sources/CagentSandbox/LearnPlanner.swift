import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// What `cagent learn` was asked to run.
package struct LearnRequest: Sendable {
    package var profile: Profile
    package var workspace: String
    package var user: InvokingUser
    package var paths: CagentPaths
    package var command: [String]
    package var environment: [String: String]
    /// Names passed besides the profile's env.pass (`--env NAME`).
    package var requestedEnvironment: [String] = []
    package var terminal: SandboxPlan.TerminalSize?
    package var sessionID: String
    package var hostname = "cagent-learn"
    package var nameservers: [String] = []
    /// Where writes outside the workspace land: an ext4 image `<state>/scratch/<session>.img` of
    /// `diskBytes` (DiskVolume); the host's own files never see them.
    package var scratch: String
    package var tmpBytes: UInt64 = 1 << 30
    package var shmBytes: UInt64 = 64 << 20
    package var diskBytes: UInt64
    /// Rootless mode: `scratch` is a plain directory of the user's (a loop-mounted image needs root), the
    /// overlays' layers directories in it; limits.disk does not bound it.
    package var rootless = false

    package init(profile: Profile, workspace: String, user: InvokingUser, paths: CagentPaths, command: [String],
                environment: [String: String], sessionID: String) {
        self.profile = profile; self.workspace = workspace; self.user = user; self.paths = paths
        self.command = command; self.environment = environment; self.sessionID = sessionID
        self.scratch = paths.data + "/scratch/" + sessionID + ".img"
        self.diskBytes = profile.limits.diskBytes ?? ResourceLimits.defaults.diskBytes
    }
}

/// Profile + request -> SandboxPlan for learn mode: the agent should work unmodified, so the view is the
/// host's own tree, read-only, bound top-level directory by top-level directory (a recursive bind carries
/// every submount; an overlay over `/` would miss them), with the kernel interfaces, /run and /tmp private,
/// secrets hidden, the workspace read-write, and every other write going to a scratch tmpfs.
///
/// Scratch layer (documented choice): the home directory is an overlay whose upper layer lives in the
/// session's scratch volume (`LearnRequest.scratch`, an ext4 image of limits.disk, kept with
/// `--keep-scratch`); `/tmp`, `/var/tmp`,
/// `/run` and `/dev/shm` are private tmpfs; host directories the user could write (owned, group- or
/// world-writable, at the top level or one below) are overlays with their upper layer in scratch too. Every
/// other host directory is read-only (EROFS where the host would answer EACCES): the agent runs as the user
/// without any capability, so those were not writable to it on the host either.
package enum LearnPlanner {
    /// Top-level host entries never bound: kernel interfaces and private trees get their own mounts,
    /// `/root` is the host administrator's home, the others hold nothing an agent needs.
    package static let skippedTopLevel: Set<String> = ["proc", "sys", "dev", "run", "tmp", "root", "lost+found", "etc",
                                                      "mnt", "media", "boot", "snap"]

    /// /etc entries never bound (credentials, and the files learn mode generates).
    package static let etcSkipped: Set<String> = ["shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d",
                                                 "ssh", "passwd", "passwd-", "group", "group-", "hosts", "hostname",
                                                 "resolv.conf", "subuid", "subgid", "security", "pip.conf", "npmrc",
                                                 "netns", "machine-id", "credstore", "credstore.encrypted", "wireguard",
                                                 "NetworkManager", "ppp", "cagent"]

    package static func plan(_ request: LearnRequest) throws -> SandboxPlan {
        let user = request.user
        guard user.uid != 0 else {
            throw CagentError(stage: "user", "the agent never runs as root",
                              hint: "run through sudo (SUDO_UID names the user) or pass --user UID")
        }
        guard !request.command.isEmpty else {
            throw CagentError(stage: "command", "no agent command given", hint: "cagent learn -- CMD [ARGS...]")
        }
        let workspace = try EnforcePlanner.realPath(request.workspace, what: "workspace")
        let home = try EnforcePlanner.cleanPath(user.home, what: "home")
        if workspace == "/" || EnforcePlanner.isWithin(home, workspace) {
            throw CagentError(stage: "workspace", "the workspace \(TerminalEscape.escape(workspace)) would expose the whole home directory",
                              hint: "run cagent from a project directory, not from your home or /")
        }
        var steps: [SandboxPlan.Step] = []
        func add(_ operation: SandboxPlan.Operation, _ reason: String) { steps.append(.init(operation, reason)) }
        let homeTop = home.split(separator: "/").first.map(String.init)

        // 1. Every top-level host directory read-only, one by one (recursive binds: submounts included);
        //    symlinks (merged /usr) recreated. The top directory holding the home (/home) is not bound:
        //    other users' homes stay out, the user's own home comes in step 5.
        for name in topLevelEntries().sorted() where !skippedTopLevel.contains(name) {
            let path = "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFLNK, let target = EnforcePlanner.readLink(path) {
                add(.symlink(target: target, path: path), "same link as the host: \(path) -> \(target)")
            } else if (info.st_mode & S_IFMT) == S_IFDIR, name != homeTop || home == path {
                add(.bind(source: path, target: path, mode: .readOnly, optional: true), "host directory, read-only")
            }
        }

        // 2. /etc: a tmpfs holding every host entry except credentials, plus generated names (the DNS gate).
        add(.tmpfs(target: "/etc", mode: "0755", sizeBytes: 1 << 20), "/etc is built: the host's minus credentials")
        for name in directoryEntries("/etc").sorted() where !etcSkipped.contains(name) {
            let path = "/etc/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                if let target = EnforcePlanner.readLink(path) { add(.symlink(target: target, path: path), "host symlink, recreated") }
            case S_IFDIR, S_IFREG:
                add(.bind(source: path, target: path, mode: .readOnly, optional: true), "host /etc entry")
            default: continue
            }
        }
        var enforceLike = EnforceRequest(profile: request.profile, workspace: workspace, user: user, paths: request.paths,
                                         command: request.command, environment: [:], hostname: request.hostname,
                                         nameservers: request.nameservers)
        enforceLike.sessionID = request.sessionID
        for (name, contents) in EnforcePlanner.generatedEtc(request: enforceLike, user: user, home: home) {
            add(.file(path: "/etc/" + name, mode: "0644", contents: contents), "generated: the sandbox's users, names and resolver")
        }

        // 3. Kernel interfaces and private trees: no host socket (/run/user/UID/bus, ssh/gpg agents, the
        //    resolver's socket) is reachable, host processes are invisible.
        steps += EnforcePlanner.kernelInterfaces(shmBytes: request.shmBytes)
        add(.tmpfs(target: "/run", mode: "0755", sizeBytes: 1 << 20), "private /run: no host sockets")
        add(.tmpfs(target: "/tmp", mode: "1777", sizeBytes: request.tmpBytes), "private /tmp (scratch)")
        var varTmp = stat()
        if lstat("/var/tmp", &varTmp) == 0 && (varTmp.st_mode & S_IFMT) == S_IFDIR {
            add(.tmpfs(target: "/var/tmp", mode: "1777", sizeBytes: request.tmpBytes), "private /var/tmp (scratch)")
        }

        // 4. /root hidden (an empty directory): the host administrator's home.
        add(.directory("/root"), "mount point")

        // 5. The real home, read-only, with writes to the session's scratch layer (overlay, upper in scratch).
        //    After /tmp: a home under /tmp (tests) lands on the new /tmp.
        //    The scratch volume is attached outside the view first; the layers are directories in it.
        var layers: [SandboxPlan.VolumeSpec.Directory] = []
        // The layers' paths: in the volume (attached at /volume of the base tmpfs), or rootless in the scratch directory.
        let layerRoot = request.rootless ? request.scratch : ""
        let attachScratch = steps.count
        var homeInfo = stat()
        if lstat(home, &homeInfo) == 0 && (homeInfo.st_mode & S_IFMT) == S_IFDIR {
            layers += [.init(path: "home/upper", mode: 0o700), .init(path: "home/work", mode: 0o700)]
            add(.overlay(lower: home, upper: layerRoot + "/home/upper", work: layerRoot + "/home/work", target: home, inVolume: !request.rootless),
                "the home: host files visible, writes to the scratch layer")
        } else {
            add(.directory(home), "the home does not exist on the host")
        }

        // 5b. Other host directories the user could write (as owner, by group or by everyone; at the top level
        //     or one below, e.g. /opt/tool): the same overlay, so the agent's writes there land in scratch too.
        for (index, directory) in userWritableDirectories(user: user, home: home, workspace: workspace).enumerated() {
            // Optional: a host directory removed between this listing and the mount (a build's temporary
            // tree, another session's) is skipped, not a failed start. Nothing is lost: what is gone from the host
            // has nothing to show, and a directory re-created later appears through the read-only bind of its
            // parent, so no write of the agent can reach the host either way.
            var lower = stat()
            guard lstat(directory, &lower) == 0 else { continue }
            // The upper directory takes the lower one's mode: the overlay's root shows its attributes.
            layers += [.init(path: "dir\(index)/upper", mode: UInt32(lower.st_mode & 0o7777)), .init(path: "dir\(index)/work", mode: 0o700)]
            add(.overlay(lower: directory, upper: layerRoot + "/dir\(index)/upper", work: layerRoot + "/dir\(index)/work", target: directory,
                         inVolume: !request.rootless,
                         optional: true),
                "a directory the user may write: writes to the scratch layer")
        }
        if !layers.isEmpty && request.rootless {
            try prepareRootlessScratch(request.scratch, layers: layers, user: user)
        } else if !layers.isEmpty {
            try prepareScratchDirectory(request.scratch, user: user)
            steps.insert(.init(.volume(target: nil), "the scratch volume (limits.disk), outside the view: the overlays' upper layers"),
                         at: attachScratch)
        }

        // 6. The workspace, read-write at its real path.
        add(.bind(source: workspace, target: workspace, mode: .readWrite), "the workspace")
        steps += GitProtection.steps(workspace: workspace, user: user).steps   // .git pinned, hooks read-only (H13)

        // 7. The profile's write list read-write (the user asked for it); its read list is already visible.
        for entry in request.profile.filesystem.write {
            if let (source, target) = try EnforcePlanner.hostEntry(entry, home: home) {
                add(.bind(source: source, target: target, mode: .readWrite, optional: true), "profile write: \(entry)")
            }
        }

        // 7b/8. The agent's own tree when it lives in a private tree (/tmp, /run), then the secrets hidden after
        //       every bind (each attempt becomes a finding in the store), then the workspace's secrets.
        let (agent, secrets) = try CoveredView.add(to: &steps, profile: request.profile, command: request.command,
                                                   path: request.environment["PATH"], home: home, workspace: workspace,
                                                   user: user, own: CoveredView.ownPlaces(request.paths, user: user), shadowHomeTarget: nil)

        add(.readOnly("/etc"), "populated: now read-only")
        add(.readOnly("/dev"), "populated: now read-only")

        var plan = SandboxPlan(sessionID: request.sessionID, hostname: request.hostname, uid: user.uid, gid: user.gid,
                               workingDirectory: workspace, command: agent.command,
                               environment: environment(request: request, home: home), steps: steps,
                               terminal: request.terminal, workspace: workspace, shadowHome: nil)
        plan.rootless = request.rootless
        if !layers.isEmpty && !request.rootless {
            plan.volume = .init(image: request.scratch, sizeBytes: request.diskBytes, journal: false, directories: layers,
                                purpose: "scratch layer")
        }
        plan.workspaceSecrets = secrets
        plan.agentMapped = agent.mapped
        return plan
    }

    /// DefaultHidden + the profile's hide list of paths (`~/x`, absolute; the findings' secret paths too).
    /// Workspace patterns are matched by the plan (`SandboxPlan.workspaceSecrets`).
    package static func hiddenEntries(_ profile: Profile) -> [String] {
        var out: [String] = []
        for entry in DefaultHidden.home + profile.filesystem.hide
            where !out.contains(entry) && !WorkspacePattern.isWorkspaceEntry(entry) { out.append(entry) }
        return out
    }

    /// The agent's environment: enforce's policy (AgentEnvironment), not the host's whole environment.
    static func environment(request: LearnRequest, home: String) -> [String] {
        AgentEnvironment(host: request.environment, profilePass: request.profile.env.pass,
                         requested: request.requestedEnvironment, home: home).entries
    }

    /// The directory holding the session's scratch image (`<state>/scratch`), owned by the user like the
    /// rest of cagent's state; refused when it is not a plain directory.
    static func prepareScratchDirectory(_ image: String, user: InvokingUser) throws {
        let directory = String(image[..<(image.lastIndex(of: "/") ?? image.endIndex)])
        var built = ""
        for part in directory.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) == 0 { _ = chown(built, user.uid, user.gid) }
        }
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw CagentError(stage: "scratch", "\(TerminalEscape.escape(directory)) is not a directory (a symlink?)")
        }
    }

    /// Rootless mode: the session's scratch directory `<state>/scratch/<session>` (new, the user's, 0700) and its
    /// layer directories, made here by cagent as the user (the launcher mounts no volume).
    static func prepareRootlessScratch(_ directory: String, layers: [SandboxPlan.VolumeSpec.Directory], user: InvokingUser) throws {
        try prepareScratchDirectory(directory, user: user)
        guard mkdir(directory, 0o700) == 0 else {
            throw CagentError.system("scratch", "cannot create the scratch directory \(TerminalEscape.escape(directory))")
        }
        for layer in layers {
            var built = directory
            for part in layer.path.split(separator: "/") {
                built += "/" + part
                if mkdir(built, 0o700) != 0 && errno != EEXIST {
                    throw CagentError.system("scratch", "cannot create \(TerminalEscape.escape(built))")
                }
            }
            chmod(built, mode_t(layer.mode))
        }
    }

    /// Directories at depth 1 or 2 of the bound host tree owned by the user and writable by them (the agent
    /// runs with the user's uid and no capability: elsewhere it could not write anyway). Not the home's tree,
    /// the workspace or its parents' siblings below it, nothing with a character overlayfs options cannot carry.
    /// Host directories the plan replaces with private tmpfs (step 3): never layered.
    static let privateTrees: Set<String> = ["/var/tmp"]

    static func userWritableDirectories(user: InvokingUser, home: String, workspace: String) -> [String] {
        let homeTop = home.split(separator: "/").first.map(String.init)
        var found: [String] = []
        func consider(_ path: String) -> Bool {
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return false }
            // Writable to the agent on the host: as owner, through its primary group (it runs with no
            // supplementary groups), or by everyone (e.g. a sticky shared directory). Trees the plan makes
            // private anyway (/var/tmp) are not layered.
            let writable = (info.st_uid == user.uid && info.st_mode & S_IWUSR != 0)
                || (info.st_gid == user.gid && info.st_mode & S_IWGRP != 0)
                || info.st_mode & S_IWOTH != 0
            guard writable, !privateTrees.contains(path) else { return false }
            guard path != workspace, !EnforcePlanner.isWithin(path, workspace), !EnforcePlanner.isWithin(path, home),
                  !EnforcePlanner.isWithin(home, path), !path.contains(","), !path.contains(":"), !path.contains("\\") else { return true }
            found.append(path)
            return true
        }
        for name in topLevelEntries().sorted() where !skippedTopLevel.contains(name) && name != homeTop {
            let top = "/" + name
            var info = stat()
            guard lstat(top, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { continue }
            if consider(top) { continue }
            for child in directoryEntries(top).sorted() { _ = consider(top + "/" + child) }
        }
        return found
    }

    static func topLevelEntries() -> [String] { directoryEntries("/") }

    static func directoryEntries(_ path: String) -> [String] { FileSystem.list(path) }
}
