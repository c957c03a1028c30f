import ArgumentParser
import CagentCore
import CagentLaunch
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// `cagent profile ...`: check, read, compare and trust profiles. docs/profiles.md documents the format.
struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Lint, show, list, diff, trust, propose and export profiles.",
        subcommands: [ProfileLint.self, ProfileShow.self, ProfileList.self, ProfileDiffCommand.self,
                      ProfileTrust.self, ProfilePropose.self,
                      ProfileExport.self])
}

/// Where profiles are looked up: the user's config, the bundled directory, the workspace.
struct ProfileLookupOptions: ParsableArguments {
    @Option(help: "The agent's workspace; profiles inside it are used only when trusted or named by path. Default: the current directory.")
    var workspace: String?

    /// `environment`: whose places (a command's `--user`: InvokingUser.placesEnvironment).
    func context(policy: ProfileResolver.TrustPolicy = .refuse, environment: [String: String] = ProcessEnvironment.current)
        -> (resolver: ProfileResolver, user: InvokingUser) {
        let user = InvokingUser.current(environment: environment)
        var resolver = ProfileResolver.standard(workspace: workspace ?? ".", environment: environment)
        resolver.trustPolicy = policy
        return (resolver, user)
    }
}

struct ProfileLint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Check profiles and everything they extend; every problem with file:line:column.",
        discussion: "Without arguments, checks every profile found by name. Exits 1 when a profile has an error.")
    @OptionGroup var lookup: ProfileLookupOptions
    @Flag(help: "Treat warnings as errors.") var strict = false
    @Argument(help: "Profile names or paths.") var profiles: [String] = []

    func run() async throws {
        let (resolver, _) = lookup.context(policy: .warn)
        let out = FileDescriptorStream.standardOutput
        var references = profiles
        if references.isEmpty {
            references = ProfileCatalog(resolver: resolver).entries().filter { !$0.shadowed }.map(\.path)
        }
        var failed = 0
        for reference in references {
            let (resolved, diagnostics) = resolver.resolveCollecting(reference)
            for diagnostic in diagnostics { out.write(diagnostic.description + "\n") }
            let warnings = diagnostics.filter { $0.severity == .warning }.count
            if let resolved, !(strict && warnings > 0) {
                let layers = resolved.layers.map { TerminalEscape.escape($0.display) }.joined(separator: " <- ")
                out.write("ok \(TerminalEscape.escape(resolved.source.display)) (\(layers))\(warnings > 0 ? ", \(warnings) warning(s)" : "")\n")
            } else {
                failed += 1
                let errors = diagnostics.filter { $0.severity == .error }.count
                out.write("FAILED \(TerminalEscape.escape(reference)): \(errors) error(s), \(warnings) warning(s)\n")
            }
        }
        if failed > 0 { throw CagentExit(status: 1) }
    }
}

struct ProfileShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a profile file as written, or (--resolved) merged with what it extends.",
        discussion: "--resolved prints what enforce would use, a comment on each entry naming the file and line it came from.")
    @OptionGroup var lookup: ProfileLookupOptions
    @Flag(help: "Merge the profile with everything it extends; cite the origin of each entry.") var resolved = false
    @Argument(help: "Profile name or path.") var profile: String

    func run() async throws {
        let out = FileDescriptorStream.standardOutput
        if resolved {
            let (resolver, _) = lookup.context(policy: .refuse)
            let result = try resolver.resolve(profile)
            for warning in result.warnings { FileDescriptorStream.standardError.write(warning.description + "\n") }
            out.write(ProfileRenderer.render(result, name: profile))
        } else {
            let (resolver, _) = lookup.context(policy: .warn)
            let file = try resolver.loadFile(profile)
            out.write("# \(TerminalEscape.escape(file.source.display)) (\(file.source.origin.rawValue), sha256:\(file.source.sha256.prefix(16)))\n")
            // The file as written; on a terminal, anything that could move the cursor is shown escaped.
            if isatty(1) == 1 {
                for line in file.source.text.split(separator: "\n", omittingEmptySubsequences: false) {
                    out.write(TerminalEscape.escape(String(line)) + "\n")
                }
            } else {
                out.write(file.source.text)
            }
        }
    }
}

struct ProfileList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the profiles found by name: the user's, the bundled ones, the workspace's.")
    @OptionGroup var lookup: ProfileLookupOptions

    func run() async throws {
        let (resolver, _) = lookup.context(policy: .warn)
        let out = FileDescriptorStream.standardOutput
        let entries = ProfileCatalog(resolver: resolver).entries()
        if entries.isEmpty {
            out.write("no profiles found in " + resolver.searchDirectories().map { TerminalEscape.escape($0.directory) }.joined(separator: ", ") + "\n")
            return
        }
        let nameWidth = max(4, entries.map { $0.name.count }.max() ?? 0)
        out.write(pad("NAME", nameWidth) + "  " + pad("SOURCE", 20) + "  DESCRIPTION\n")
        for entry in entries {
            var source = entry.origin.rawValue
            if entry.origin == .workspace { source += entry.trusted ? ",trusted" : ",untrusted" }
            if entry.shadowed { source += ",shadowed" }
            let description = entry.problem.map { "(invalid: \($0))" } ?? entry.description ?? ""
            out.write(pad(TerminalEscape.escape(entry.name), nameWidth) + "  " + pad(source, 20) + "  "
                      + TerminalEscape.escape(description) + "\n")
            out.write(pad("", nameWidth) + "  " + TerminalEscape.escape(resolver.display(entry.path)) + "\n")
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}

struct ProfileDiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Compare two resolved profiles entry by entry.",
        discussion: "'+' only in B, '-' only in A, '~' a changed value; each line names the file and line of the entry. Exits 1 when they differ.")
    @OptionGroup var lookup: ProfileLookupOptions
    @Argument(help: "The first profile (name or path).") var a: String
    @Argument(help: "The second profile (name or path).") var b: String

    func run() async throws {
        let (resolver, _) = lookup.context(policy: .refuse)
        let first = try resolver.resolve(a)
        let second = try resolver.resolve(b)
        let lines = ProfileDiff.lines(from: first, to: second)
        for line in lines { FileDescriptorStream.standardOutput.write(line + "\n") }
        if !lines.isEmpty { throw CagentExit(status: 1) }
    }
}

struct ProfileTrust: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust", abstract: "Trust a workspace profile's exact content (pinned by SHA-256 in your config).",
        discussion: "Review the file first. Once its content changes, cagent refuses it again until it is trusted anew.")
    @OptionGroup var lookup: ProfileLookupOptions
    @Argument(help: "The profile file.") var file: String

    func run() async throws {
        let (resolver, user) = lookup.context(policy: .warn)
        let loaded = try resolver.loadFile(file)
        let shown = TerminalEscape.escape(loaded.source.display)
        let out = FileDescriptorStream.standardOutput
        guard loaded.source.origin == .workspace else {
            out.write("\(shown) is a \(loaded.source.origin.rawValue) profile, trusted by where it lives; nothing to record\n")
            return
        }
        let underSudo = InvokingUser.underSudo(ProcessEnvironment.current)
        // Written with the user's rights: a symlinked config directory must not make root write elsewhere.
        try FileSystem.asUser(resolver.reader) {
            try resolver.trustStore.trust(path: loaded.source.path, sha256: loaded.source.sha256,
                                          owner: underSudo ? (user.uid, user.gid) : nil)
        }
        out.write("trusted \(shown) (sha256:\(loaded.source.sha256)) in \(TerminalEscape.escape(resolver.trustStore.file))\n")
    }
}
