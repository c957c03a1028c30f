import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Finds a profile by name or path, checks where it comes from, reads it and everything it extends, and
/// merges them. The one entry point for every mode:
///
///     let resolved = try ProfileResolver(paths: paths, workspace: cwd).resolve("claude-code")
///
/// Look-up by name: the user's `<config>/profiles`, then the bundled directories, then the workspace's
/// `.cagent/` — a workspace profile only when its exact content was trusted (`cagent profile trust`).
/// A path names one file explicitly; `extends` names resolve in the user's and bundled directories only,
/// `extends` paths are relative to the file that writes them and, when they lead into the workspace, need trust.
package struct ProfileResolver: Sendable {
    /// What to do with a workspace profile that was neither named by path nor trusted.
    package enum TrustPolicy: Sendable {
        /// Refuse it (enforce, learn, show).
        case refuse
        /// Read it anyway and warn (lint: checking a file applies no policy).
        case warn
    }

    package var paths: CagentPaths
    /// The agent's workspace (real path), where profiles are untrusted; nil when there is none.
    package var workspace: String?
    package var bundledDirectories: [String]
    package var userDirectory: String
    package var trustStore: TrustStore
    package var trustPolicy: TrustPolicy = .refuse
    /// Relative paths on the command line start here; messages show files relative to it.
    package var currentDirectory: String
    /// The user's home, for `~/` in paths given on the command line.
    package var home: String?
    /// Whose rights profile files are found and read with: the invoking user under sudo (a profile, an
    /// `extends` target or a workspace symlink must not read root's files); nil: the process's own.
    package var reader: FileIdentity?

    /// Files are limited to this many levels of `extends`.
    package static let maximumDepth = 16

    /// The resolver for the invoking user (under sudo: `SUDO_UID`'s config and home), as every command uses it.
    package static func standard(workspace: String?, environment: [String: String] = ProcessEnvironment.current) -> ProfileResolver {
        let user = InvokingUser.current(environment: environment)
        let paths = CagentPaths.standard(user: user, environment: environment)
        var resolver = ProfileResolver(paths: paths, workspace: workspace, environment: environment, home: user.home)
        resolver.reader = FileIdentity.invoking(environment: environment)
        return resolver
    }

    /// `path` with every symlink resolved, looked up with the reader's rights (a root-only directory is
    /// neither entered nor reported as holding a file).
    package func realPath(_ path: String) -> String? {
        (try? FileSystem.asUser(reader) { FileSystem.realPath(path) }) ?? nil
    }

    /// Whether the trust file (in the user's config) pins this content; the trust file is read with the
    /// reader's rights too (unreadable: nothing is trusted).
    package func trustStatus(path: String, sha256: String) -> TrustStore.Status {
        (try? FileSystem.asUser(reader) { trustStore.status(path: path, sha256: sha256) }) ?? .unknown
    }

    /// Reads a profile file with the reader's rights: a regular file of at most `limit` bytes, else the
    /// reason in words (never any of its content).
    package func readFile(_ path: String, limit: Int) -> Result<[UInt8], UserFileError> {
        FileSystem.readAsUser(path, limit: limit, identity: reader, followSymlinks: false)
    }

    package init(paths: CagentPaths, workspace: String?, bundledDirectories: [String]? = nil,
                environment: [String: String] = ProcessEnvironment.current, currentDirectory: String? = nil,
                home: String? = nil) {
        self.paths = paths
        self.workspace = workspace.map { FileSystem.realPath($0) ?? $0 }
        self.bundledDirectories = (bundledDirectories ?? ProfileDirectories.bundled(environment: environment))
            .map { FileSystem.realPath($0) ?? $0 }
        let user = ProfileDirectories.user(paths)
        self.userDirectory = FileSystem.realPath(user) ?? user
        self.trustStore = TrustStore(paths: paths)
        let cwd = currentDirectory ?? FileSystem.currentDirectory(orElse: "/")
        self.currentDirectory = FileSystem.realPath(cwd) ?? cwd
        self.home = home ?? environment["HOME"]
    }

    // MARK: Resolving

    /// The merged profile, or a CagentError (stage "profile") naming file:line:column for each problem.
    package func resolve(_ reference: String) throws -> ResolvedProfile {
        let outcome = resolveCollecting(reference)
        if let resolved = outcome.resolved { return resolved }
        throw CagentError.profile(outcome.diagnostics)
    }

    /// Everything found, for `lint`: the profile when it is usable, and every error and warning.
    package func resolveCollecting(_ reference: String) -> (resolved: ResolvedProfile?, diagnostics: [ProfileDiagnostic]) {
        var run = Run(resolver: self)
        let commandLine = SourceLocation.commandLine
        guard let root = run.locate(reference, at: commandLine, relativeTo: currentDirectory, byUser: true) else {
            return (nil, run.diagnostics)
        }
        var stack: [Located<String>] = []
        run.load(root, stack: &stack)
        if run.diagnostics.contains(where: { $0.severity == .error }) { return (nil, run.diagnostics) }
        var resolved = ProfileMerger.merge(run.order.map { ($0.source, $0.layer) })
        resolved.warnings = run.diagnostics + resolved.warnings
        return (resolved, resolved.warnings)
    }

    /// Reads and checks a single file, without its `extends` (for `show` of one file, and `trust`). Reading
    /// applies no policy, so an untrusted workspace file is read too; `source.origin` says where it lives.
    package func loadFile(_ reference: String) throws -> (source: ProfileSource, layer: ProfileLayer, warnings: [ProfileDiagnostic]) {
        var reader = self
        reader.trustPolicy = .warn
        var run = Run(resolver: reader)
        let commandLine = SourceLocation.commandLine
        guard let found = run.locate(reference, at: commandLine, relativeTo: currentDirectory, byUser: true),
              let source = run.read(found, at: commandLine) else { throw CagentError.profile(run.diagnostics) }
        let (layer, diagnostics) = ProfileParser.parse(text: source.text, file: source.display)
        guard let layer else { throw CagentError.profile(diagnostics) }
        return (source, layer, diagnostics)
    }

    // MARK: Where files come from

    /// Trusted by where they live, untrusted because the repository or the agent can write there, or other.
    package func origin(ofRealPath path: String) -> ProfileSource.Origin {
        if ProfileDirectories.isInside(path, userDirectory) { return .user }
        if bundledDirectories.contains(where: { ProfileDirectories.isInside(path, $0) }) { return .bundled }
        if let workspace, ProfileDirectories.isInside(path, workspace) { return .workspace }
        let data = FileSystem.realPath(paths.data) ?? paths.data
        if ProfileDirectories.isInside(path, data) { return .workspace }
        return .other
    }

    /// How messages show a file: relative to the current directory when inside it.
    package func display(_ path: String) -> String {
        if currentDirectory != "/" && path.hasPrefix(currentDirectory + "/") {
            return String(path.dropFirst(currentDirectory.count + 1))
        }
        return path
    }

    /// The directories searched by name, in order, with the origin each gives.
    package func searchDirectories() -> [(directory: String, origin: ProfileSource.Origin)] {
        var result: [(String, ProfileSource.Origin)] = [(userDirectory, .user)]
        result += bundledDirectories.map { ($0, .bundled) }
        if let workspace { result.append((workspace + "/" + ProfileDirectories.workspaceSubdirectory, .workspace)) }
        return result
    }
}

/// One resolution: the files read so far (each once), their merge order, and the problems found.
private struct Run {
    struct Found { var path: String; var origin: ProfileSource.Origin; var byUser: Bool }
    struct Loaded { var source: ProfileSource; var layer: ProfileLayer }

    let resolver: ProfileResolver
    var diagnostics: [ProfileDiagnostic] = []
    var order: [Loaded] = []
    var done: Set<String> = []

    init(resolver: ProfileResolver) { self.resolver = resolver }

    /// Finds the file a reference names. `byUser`: named on the command line (rather than by `extends`).
    /// `from`: the file whose `extends` names it; a name never finds that file itself, so a user profile
    /// `claude-code` can extend the bundled `claude-code`.
    mutating func locate(_ reference: String, at location: SourceLocation, relativeTo directory: String, byUser: Bool,
                         from: String? = nil) -> Found? {
        guard let parsed = ProfileReference(reference) else {
            fail(location, "\(ProfileText.quote(reference)) is neither a profile name nor a path to a .yaml file",
                 hint: "a name such as 'claude-code', or a path such as './profile.yaml'")
            return nil
        }
        switch parsed {
        case .path(let written):
            var absolute = written
            if written.hasPrefix("~/"), let home = resolver.home { absolute = home + written.dropFirst(1) }
            else if !written.hasPrefix("/") { absolute = directory + "/" + written }
            guard let real = resolver.realPath(absolute) else {
                fail(location, "no profile file \(ProfileText.quote(written))"
                     + (byUser ? "" : " (relative to \(ProfileText.quote(resolver.display(directory))))"))
                return nil
            }
            return Found(path: real, origin: resolver.origin(ofRealPath: real), byUser: byUser)
        case .name(let name):
            var searched: [String] = []
            var foundItself = false
            for (dir, origin) in resolver.searchDirectories() {
                // `extends` never reaches the workspace by name: a repository must not shadow a shared profile.
                if origin == .workspace && !byUser { continue }
                searched.append(resolver.display(dir))
                for ext in [".yaml", ".yml"] {
                    let candidate = dir + "/" + name + ext
                    if FileSystem.exists(candidate), let real = resolver.realPath(candidate) {
                        if real == from { foundItself = true; continue }
                        let actual = resolver.origin(ofRealPath: real)
                        // A symlink from a trusted directory into the workspace does not launder the file.
                        let effective = actual == .workspace || origin == .workspace ? .workspace : origin
                        return Found(path: real, origin: effective, byUser: false)
                    }
                }
            }
            if foundItself {
                fail(location, "a profile cannot extend itself, and no other profile is named \(ProfileText.quote(name))")
                return nil
            }
            fail(location, "no profile named \(ProfileText.quote(name))",
                 hint: "searched " + searched.joined(separator: ", ") + "; `cagent profile list` shows what exists")
            return nil
        }
    }

    /// Reads a located file once, checking trust; nil after reporting why it cannot be used.
    mutating func read(_ found: Found, at location: SourceLocation) -> ProfileSource? {
        let bytes: [UInt8]
        switch resolver.readFile(found.path, limit: ProfileParser.maximumBytes + 1) {
        case .success(let read): bytes = read
        case .failure(let error):
            fail(location, error.message(path: resolver.display(found.path)),
                 hint: error.identity.map { "the file must be readable by \($0.name), who runs cagent through sudo" })
            return nil
        }
        let display = resolver.display(found.path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            fail(Self.firstInvalidUTF8(bytes, file: display), "not UTF-8 text", hint: "a profile is UTF-8 YAML")
            return nil
        }
        let hash = SHA256.hex(bytes)
        let source = ProfileSource(path: found.path, display: display, origin: found.origin, sha256: hash, text: text)
        guard found.origin == .workspace else { return source }

        let status = resolver.trustStatus(path: found.path, sha256: hash)
        if status == .trusted { return source }
        let shown = ProfileText.quote(display)
        if found.byUser {
            diagnostics.append(ProfileDiagnostic(SourceLocation(file: display, line: 1, column: 1),
                                                 "using \(shown) from the workspace because it was named by path; it is not trusted (sha256 \(hash.prefix(12)))",
                                                 severity: .warning))
            return source
        }
        var message = "\(shown) is inside the workspace and not trusted: a repository, or the agent, must not choose its own policy"
        if case .changed(let old) = status {
            message = "\(shown) changed since it was trusted (trusted sha256 \(old.prefix(12)), now \(hash.prefix(12)))"
        }
        let hint = "review it, then run `cagent profile trust \(TerminalEscape.escape(display))`, or name it by path"
        if resolver.trustPolicy == .warn {
            diagnostics.append(ProfileDiagnostic(location, message + "; enforce will refuse it", hint: hint, severity: .warning))
            return source
        }
        fail(location, message, hint: hint)
        return nil
    }

    /// Reads a file and, depth first, what it extends; appends each file to `order` after its bases.
    mutating func load(_ found: Found, stack: inout [Located<String>], at location: SourceLocation? = nil) {
        if done.contains(found.path) { return }
        let here = location ?? SourceLocation.commandLine
        if let start = stack.firstIndex(where: { $0.value == found.path }) {
            let chain = stack[start...].map { resolver.display($0.value) } + [resolver.display(found.path)]
            fail(here, "extends cycle: " + chain.map { TerminalEscape.escape($0) }.joined(separator: " -> "),
                 hint: "remove one of these 'extends' entries")
            return
        }
        if stack.count >= ProfileResolver.maximumDepth {
            fail(here, "more than \(ProfileResolver.maximumDepth) levels of 'extends'")
            return
        }
        guard let source = read(found, at: here) else { return }
        let (layer, parsed) = ProfileParser.parse(text: source.text, file: source.display)
        diagnostics += parsed
        guard let layer else { return }

        stack.append(Located(found.path, at: here))
        let directory = ProfileDirectories.parent(found.path)
        for base in layer.extends {
            if let next = locate(base.value, at: base.location, relativeTo: directory, byUser: false, from: found.path) {
                load(next, stack: &stack, at: base.location)
            }
        }
        stack.removeLast()
        done.insert(found.path)
        order.append(Loaded(source: source, layer: layer))
    }

    /// Where the first byte that is not UTF-8 is.
    static func firstInvalidUTF8(_ bytes: [UInt8], file: String) -> SourceLocation {
        var line = 1, column = 1
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while case .scalarValue(let scalar) = decoder.decode(&iterator) {
            if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return SourceLocation(file: file, line: line, column: column)
    }

    mutating func fail(_ location: SourceLocation, _ message: String, hint: String? = nil) {
        diagnostics.append(ProfileDiagnostic(location, message, hint: hint))
    }
}
