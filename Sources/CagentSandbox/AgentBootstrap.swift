import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Agents live where the sandbox does not show the host: in the home (a venv, pipx, uv tools, `~/.local/bin`,
/// nvm, bun, cargo), which enforce replaces with the shadow home, or in /tmp, which is private. Before the
/// sandbox is built, the command is resolved as the invoking user (their rights, their PATH) and, when what
/// runs it lies outside the view, the smallest tree that runs it is bound read-only at its own path:
///
/// - a venv (a directory holding `pyvenv.cfg`: `python -m venv`, pipx's `~/.local/pipx/venvs/<tool>`, uv's
///   `~/.local/share/uv/tools/<tool>`), found above the command or its real path;
/// - a node prefix (a directory holding `bin/node`: `~/.nvm/versions/node/vX`);
/// - an interpreter's install prefix (`X/bin/python3.12` with `X/lib`, e.g. uv's managed pythons), never the
///   home or a directory directly in it (`~/.local` holds far more than the agent);
/// - else the single file (a static binary).
///
/// The script's `#!` interpreter (through `/usr/bin/env NAME` on the agent's PATH) is resolved the same way.
/// A path on the hide list is never mapped: the command gets an error that says where it lives. Links are
/// followed here only as the user would (realpath with the user's rights); nothing is written.
package enum AgentBootstrap {
    package struct Resolution: Sendable, Equatable {
        /// The command to run (argv[0] replaced by the real path when the name's link is not in the view).
        package var command: [String]
        /// Host trees bound read-only at their own paths.
        package var mapped: [String] = []
        package init(command: [String]) { self.command = command }
    }

    /// Directories searched after the PATH: sudo replaces the user's PATH with its secure_path, so a tool the
    /// user runs by name from their shell is looked for where user installers put it.
    static let userBinDirectories = [".local/bin", "bin", ".cargo/bin", ".bun/bin", ".deno/bin", ".npm-global/bin"]

    /// What the plan's steps so far show at each target: the host's tree (binds, overlays, recreated links)
    /// or not (a tmpfs, the shadow home bound at `shadowHomeTarget`). The deepest covering target decides.
    package static func view(of steps: [SandboxPlan.Step], shadowHomeTarget: String?) -> [(String, Bool)] {
        steps.compactMap { step -> (String, Bool)? in
            switch step.operation {
            case let .bind(_, target, _, _): return (target, target != shadowHomeTarget)
            case let .overlay(_, _, _, target, _, _): return (target, true)
            case let .volume(target?): return (target, false)   // the bounded shadow home: none of the host
            case let .symlink(_, path): return (path, true)
            case let .tmpfs(target, _, _, _): return (target, false)
            case let .hide(path): return (path, false)
            default: return nil
            }
        }
    }

    /// `view`: what the plan shows at each target (`view(of:)`); `hidden`: the hide list as view paths.
    /// Throws when the command lives under a hidden path.
    package static func resolve(command: [String], path: String?, home: String, view: [(String, Bool)], hidden: [String],
                               identity: FileIdentity?) throws -> Resolution {
        var resolution = Resolution(command: command)
        guard let name = command.first, !name.isEmpty else { return resolution }
        let lookup: Lookup?
        do {
            lookup = try FileSystem.asUser(identity) {
                try Lookup.make(name: name, path: path, home: home, view: view, hidden: hidden)
            }
        } catch let error as UserFileError {
            throw CagentError(stage: "agent", "resolving the agent command: " + error.message(path: name))
        }
        guard let lookup else { return resolution }
        resolution.mapped = lookup.roots
        if let run = lookup.runPath { resolution.command[0] = run }
        return resolution
    }

    /// The start line: `cagent: the agent lives in ~/.venvs/aider: mapped read-only`.
    package static func startLine(_ mapped: [String], home: String) -> String? {
        guard !mapped.isEmpty else { return nil }
        return "cagent: the agent lives in " + mapped.map { TerminalEscape.escape(display($0, home: home)) }.joined(separator: ", ")
            + ": mapped read-only"
    }

    static func display(_ path: String, home: String) -> String {
        path == home ? "~" : path.hasPrefix(home + "/") ? "~/" + path.dropFirst(home.count + 1) : path
    }

    /// The work, on the user's rights (inside FileSystem.asUser).
    struct Lookup {
        var roots: [String] = []
        var runPath: String?
        let home: String
        let view: [(String, Bool)]
        let hidden: [String]
        let path: String?

        static func make(name: String, path: String?, home: String, view: [(String, Bool)], hidden: [String]) throws -> Lookup? {
            var lookup = Lookup(home: home, view: view, hidden: hidden, path: path)
            // A relative path runs from the workspace, which is in the view.
            if name.contains("/") && !name.hasPrefix("/") { return nil }
            guard let (candidate, onPath) = lookup.find(name) else { return nil }   // not found: cagent-init says so
            try lookup.map(candidate, isCommand: true, onPath: onPath, depth: 0)
            return lookup.roots.isEmpty && lookup.runPath == nil ? nil : lookup
        }

        /// The executable `name` names: itself when a path, else the first on PATH, then the user's bin
        /// directories. Whether it was found on the agent's PATH (the sandbox's own search would find it).
        func find(_ name: String) -> (String, Bool)? {
            if name.hasPrefix("/") { return AgentBootstrap.isExecutable(name) ? (name, true) : nil }
            for directory in (path ?? "").split(separator: ":") where directory.hasPrefix("/") {
                let candidate = directory + "/" + name
                if AgentBootstrap.isExecutable(candidate) { return (candidate, true) }
            }
            for directory in AgentBootstrap.userBinDirectories {
                let candidate = home + "/" + directory + "/" + name
                if AgentBootstrap.isExecutable(candidate) { return (candidate, false) }
            }
            return nil
        }

        /// The deepest target covering `path` decides (a later one wins a tie); the mapped roots show it.
        func isVisible(_ path: String) -> Bool {
            if roots.contains(where: { EnforcePlanner.isWithin(path, $0) }) { return true }
            var best: (depth: Int, shows: Bool)?
            for (target, shows) in view where EnforcePlanner.isWithin(path, target) {
                let depth = target.split(separator: "/").count
                if best == nil || depth >= best!.depth { best = (depth, shows) }
            }
            return best?.shows ?? false
        }

        func hiddenEntry(covering path: String) -> String? {
            hidden.first { EnforcePlanner.isWithin(path, $0) }
        }

        mutating func map(_ candidate: String, isCommand: Bool, onPath: Bool, depth: Int) throws {
            guard depth < 4 else { return }
            let real = FileSystem.realPath(candidate) ?? candidate
            for path in [candidate, real] {
                if let secret = hiddenEntry(covering: path) {
                    let shown = AgentBootstrap.display(secret, home: home)
                    throw CagentError(stage: "agent", "\(isCommand ? "the agent command" : "its interpreter") "
                                      + "\(TerminalEscape.escape(AgentBootstrap.display(path, home: home))) lives under \(TerminalEscape.escape(shown)), "
                                      + "which cagent hides: secrets are never mapped into the sandbox",
                                      hint: "install the agent outside the hidden paths (e.g. `python3 -m venv ~/.venvs/NAME`, pipx, uv tool) "
                                      + "and run it from there; a hidden path stays hidden whatever the profile's read list says")
                }
            }
            if !isVisible(candidate) {
                // The name's own location: a venv or node prefix above it keeps the path (and its links) valid.
                if let root = AgentBootstrap.prefixRoot(above: candidate, home: home) {
                    add(root)
                    if isCommand && !onPath { runPath = candidate }
                } else if isCommand {
                    runPath = real   // a link in ~/.local/bin: run what it points at
                }
            } else if isCommand && !onPath {
                runPath = candidate   // the sandbox's PATH search would not find it
            }
            if !isVisible(real) { add(AgentBootstrap.treeRoot(of: real, home: home)) }
            // The interpreter of a script, the same way.
            guard let (interpreter, viaEnv) = AgentBootstrap.shebang(real) else { return }
            if viaEnv {
                guard let (found, _) = find(interpreter) else { return }
                try map(found, isCommand: false, onPath: true, depth: depth + 1)
            } else {
                try map(interpreter, isCommand: false, onPath: true, depth: depth + 1)
            }
        }

        mutating func add(_ root: String) {
            guard !roots.contains(where: { EnforcePlanner.isWithin(root, $0) }) else { return }
            roots.removeAll { EnforcePlanner.isWithin($0, root) }
            roots.append(root)
        }
    }

    /// A venv or node prefix among the ancestors of `path` (below the home, or below a top-level directory).
    static func prefixRoot(above path: String, home: String) -> String? {
        var directory = parent(path)
        while directory != "/" && directory != home && directory.split(separator: "/").count > 1 {
            if isRegular(directory + "/pyvenv.cfg") || isRegular(directory + "/bin/node") { return directory }
            directory = parent(directory)
        }
        return nil
    }

    /// The smallest tree that runs `real`: a venv or node prefix above it, an interpreter's install prefix,
    /// else the file itself.
    static func treeRoot(of real: String, home: String) -> String {
        if let root = prefixRoot(above: real, home: home) { return root }
        let directory = parent(real)
        if directory.hasSuffix("/bin") {
            let prefix = parent(directory)
            let shallow = prefix == home || parent(prefix) == home || prefix.split(separator: "/").count < 2
            if !shallow && EnforcePlanner.isWithin(prefix, home) == EnforcePlanner.isWithin(real, home) && isDirectory(prefix + "/lib") {
                return prefix
            }
        }
        return real
    }

    /// `#!/path/to/interpreter` or `#!/usr/bin/env [-S] NAME`: the interpreter, and whether env searches for it.
    static func shebang(_ path: String) -> (String, Bool)? {
        guard let bytes = FileSystem.read(path, limit: 256), bytes.starts(with: Array("#!".utf8)) else { return nil }
        let line = String(decoding: bytes.dropFirst(2).prefix(while: { $0 != 0x0A }), as: UTF8.self)
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        guard let first = words.first, first.hasPrefix("/") else { return nil }
        if first.hasSuffix("/env") {
            guard let program = words.dropFirst().first(where: { !$0.hasPrefix("-") && !$0.contains("=") }) else { return nil }
            return program.contains("/") ? (program, false) : (program, true)
        }
        return (first, false)
    }

    static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && info.st_mode & 0o111 != 0
    }

    static func isRegular(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
