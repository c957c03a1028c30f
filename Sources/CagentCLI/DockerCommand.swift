import ArgumentParser
import CagentCore
import CagentLaunch
import CagentProfile
import CagentSandbox
import Foundation

/// `cagent docker run`: the `docker run` command line for an agent in a container, with cagent as its
/// entrypoint (docs/docker.md). Inside a container cagent cannot mount (Docker refuses CAP_SYS_ADMIN), so what
/// the host-side planners do with mounts is done here with docker's own: the workspace and the agent's home
/// as volumes, an empty read-only tmpfs over every hidden directory and /dev/null over every hidden file,
/// NET_ADMIN for cagent's firewall (given up before the agent starts), and the resolved profile mounted
/// read-only.
struct DockerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docker", abstract: "Run an agent in a container with cagent as its entrypoint.",
        subcommands: [DockerRunCommand.self])
}

struct DockerRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compose and run `docker run` for an agent under a profile (cagent enforce --in-container inside).",
        usage: "cagent docker run [--learn [--state DIR]] --profile PROFILE [--workspace DIR] [--print] IMAGE -- CMD [ARGS...]")

    @OptionGroup var logging: LoggingOptions
    @Option(help: "Profile file or name, resolved here and mounted into the container read-only.") var profile: String
    @Option(help: "The workspace, mounted at /workspace (default: the current directory).") var workspace: String?
    @Option(help: "The named volume for the agent's home /home/agent (default: cagent-home-AGENT).") var homeVolume: String?
    @Flag(help: "Print the command instead of running it.") var print = false
    @Flag(help: "Learn instead of enforce: cagent learn --in-container, recorded into cagent.db in --state.") var learn = false
    @Option(help: "With --learn: the host directory mounted at /state for the database (default: docker/state in cagent's data directory).")
    var state: String?
    @Option(name: .customLong("docker-arg"), help: "Pass this argument to docker run (repeatable), e.g. --docker-arg=--dns=1.1.1.1.")
    var dockerArguments: [String] = []
    @Argument(help: "The image (docker/Dockerfile's runtime stage, or one built FROM it).") var image: String
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []

    func run() throws {
        guard !command.isEmpty else { throw ValidationError("the agent command follows --") }
        let environment = ProcessEnvironment.current
        let user = InvokingUser.current(environment: environment)
        let workspacePath = URL(fileURLWithPath: workspace ?? FileSystem.currentDirectory()).standardizedFileURL.path
        // docker's --mount is comma-separated: a path with a comma or a quote would be split differently.
        guard !workspacePath.contains(","), !workspacePath.contains("\"") else {
            throw CagentError(stage: "docker run", "the workspace path contains a comma or a quote",
                              hint: "docker's --mount cannot take it: move or link the workspace to a plain path")
        }
        let places = user.placesEnvironment(environment)
        let resolved = try ProfileResolver.standard(workspace: workspacePath, environment: places).resolve(profile)
        var paths = CagentPaths.standard(user: user, environment: places)
        paths.data += "/docker"
        let agent = resolved.profile.agent ?? "agent"
        let profileFile = paths.data + "/\(agent.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }).yaml"
        // The resolved profile (no `extends` left to resolve inside), written with the user's rights.
        let identity = FileIdentity.invoking(environment: environment)
        // The directory too is made with the user's rights (never root-owned in the user's home).
        try FileSystem.asUser(identity) { try FileManager.default.createDirectory(atPath: paths.data, withIntermediateDirectories: true) }
        if case .failure(let error) = FileSystem.writeAsUser(profileFile, bytes: Array(ProfileRenderer.render(resolved, name: profile).utf8),
                                                             mode: 0o644, identity: identity) {
            throw CagentError(stage: "docker run", error.message(path: profileFile))
        }
        let secrets = try WorkspaceSecrets.scan(workspace: workspacePath, profile: resolved.profile, user: user)
        let hiddenInWorkspace = secrets.hidden.map {
            DockerRun.Hidden(path: DockerRun.workspace + "/" + $0, isDirectory: DockerRun.hostKind(workspacePath + "/" + $0) ?? false)
        }
        var learnState: String?
        if learn {
            let directory = state ?? paths.data + "/state"
            guard !directory.contains(","), !directory.contains("\"") else {
                throw CagentError(stage: "docker run", "the state directory contains a comma or a quote", hint: "name a plain path")
            }
            try FileSystem.asUser(identity) { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            learnState = URL(fileURLWithPath: directory).standardizedFileURL.path
        }
        let run = DockerRun(image: image, workspace: workspacePath, homeVolume: homeVolume ?? "cagent-home-\(agent)",
                            profileFile: profileFile,
                            hidden: DockerRun.hiddenHomePaths(resolved.profile, hostHome: user.home, kind: DockerRun.hostKind) + hiddenInWorkspace,
                            interactive: isatty(0) == 1, extra: dockerArguments, command: command, learnState: learnState)
        let arguments = run.arguments
        if let learnState {
            FileDescriptorStream.standardError.write("cagent: learning into \(TerminalEscape.escape(learnState))/cagent.db; then: cagent profile propose --db \(TerminalEscape.escape(learnState))/cagent.db\n")
        }
        if print {
            Swift.print((["docker"] + arguments).map(DockerRun.shellQuoted).joined(separator: " "))
            return
        }
        guard let docker = FileSystem.which("docker", path: environment["PATH"]) else {
            throw CagentError(stage: "docker run", "docker is not on PATH", hint: "install the Docker client, or use --print")
        }
        var argv = ([docker] + arguments).map { strdup($0) } + [nil]
        execv(docker, &argv)
        throw CagentError(stage: "docker run", "cannot run \(docker)", errno: errno)
    }
}

/// The `docker run` arguments (pure: DockerRunTests).
package struct DockerRun: Sendable, Equatable {
    package static let workspace = "/workspace"
    package static let home = "/home/agent"
    package static let profileTarget = "/etc/cagent/profile.yaml"

    package struct Hidden: Sendable, Equatable {
        package var path: String
        package var isDirectory: Bool
        package init(path: String, isDirectory: Bool) { self.path = path; self.isDirectory = isDirectory }
    }

    package var image: String
    package var workspace: String
    package var homeVolume: String
    package var profileFile: String
    package var hidden: [Hidden]
    package var interactive: Bool
    package var extra: [String]
    package var command: [String]
    /// `--learn`: the host directory mounted at /state, where learn records (nil: enforce).
    package var learnState: String?

    package init(image: String, workspace: String, homeVolume: String, profileFile: String, hidden: [Hidden],
                interactive: Bool, extra: [String], command: [String], learnState: String? = nil) {
        self.image = image; self.workspace = workspace; self.homeVolume = homeVolume; self.profileFile = profileFile
        self.hidden = hidden; self.interactive = interactive; self.extra = extra; self.command = command
        self.learnState = learnState
    }

    /// Files among the hide list's usual entries; every other home entry is covered as a directory.
    static let knownFiles: Set<String> = [".netrc", ".git-credentials", ".npmrc", ".pypirc"]

    /// The profile's hide list (with the built-in one) at the container's home. File or directory: what the
    /// same entry is in `hostHome` when it exists there (`kind`), else guessed from the name (a dot after the
    /// first character, a history or token file, the usual rc files); Docker makes the missing mount point.
    package static func hiddenHomePaths(_ profile: Profile, hostHome: String? = nil,
                                       kind: (String) -> Bool? = { _ in nil }) -> [Hidden] {
        LearnPlanner.hiddenEntries(profile).compactMap { entry in
            if entry == "~" { return nil }
            let rest = entry.hasPrefix("~/") ? String(entry.dropFirst(2)) : nil
            let path = rest.map { home + "/" + $0 } ?? entry
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            let guessedFile = knownFiles.contains(name) || name.dropFirst().contains(".") || name.hasSuffix("history") || name.hasSuffix("token")
            let onHost = rest.flatMap { rest in hostHome.flatMap { kind($0 + "/" + rest) } } ?? (rest == nil ? kind(entry) : nil)
            return Hidden(path: path, isDirectory: onHost ?? !guessedFile)
        }
    }

    /// True for a directory, false for anything else, nil when nothing is there (lstat: a link is not followed).
    package static func hostKind(_ path: String) -> Bool? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        return (status.st_mode & S_IFMT) == S_IFDIR
    }

    package var arguments: [String] {
        var out = ["run", "--rm", interactive ? "-it" : "-i",
                   // cagent's firewall; the agent's process drops it with every other capability.
                   "--cap-add", "NET_ADMIN",
                   "--mount", "type=bind,source=\(workspace),target=\(Self.workspace)",
                   "--mount", "type=volume,source=\(homeVolume),target=\(Self.home)",
                   "--mount", "type=bind,source=\(profileFile),target=\(Self.profileTarget),readonly",
                   "--workdir", Self.workspace]
        // Docker orders mounts by target depth, so these land on top of the volumes above.
        for entry in hidden {
            if entry.isDirectory {
                out += ["--mount", "type=tmpfs,target=\(entry.path),tmpfs-size=4096,tmpfs-mode=0555"]
            } else {
                out += ["--mount", "type=bind,source=/dev/null,target=\(entry.path),readonly"]
            }
        }
        if let learnState {
            // The tracer reads the agent's memory (another uid): cagent keeps SYS_PTRACE, the agent never has it.
            out += ["--cap-add", "SYS_PTRACE", "--mount", "type=bind,source=\(learnState),target=/state"]
        }
        out += extra
        out += ["--entrypoint", "/usr/local/bin/cagent", image]
        out += learnState == nil ? ["enforce", "--in-container", "--profile", Self.profileTarget, "--"]
                                 : ["learn", "--in-container", "--agent", Self.profileTarget, "--db", "/state/cagent.db", "--"]
        out += command
        return out
    }

    package static func shellQuoted(_ word: String) -> String {
        if !word.isEmpty && word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@+".contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
