import ArgumentParser
import CagentCore
import CagentLaunch
import CagentProfile
import CagentPropose
import CagentSandbox
import CagentStore
import CShim
#if canImport(Glibc)
import Glibc
#endif

/// `cagent profile propose`: the smallest profile that lets what recorded sessions did run again, every entry
/// with its evidence, every risky one flagged. A proposal for review; nothing is applied. docs/profiles.md
/// "Proposals".
struct ProfilePropose: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "propose", abstract: "Propose a minimal profile from recorded sessions (for review).",
        discussion: """
        Reads learn sessions from the store (read-only) and writes a profile that extends --extends (default: base) \
        with what the sessions used: domains connected to, endpoints for other ports, files read and written \
        outside what the extended profiles give. Each entry cites its evidence; RISK lines need a decision. \
        Without --session, the latest learn session. Output: standard output, or -o FILE (never overwritten \
        without --force).

        --update PROFILE: from enforce sessions (default: the latest), the smallest addition to PROFILE that allows \
        what was denied, as a diff against it; -o FILE writes the updated profile.
        """)

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var lookup: ProfileLookupOptions
    @Option(name: .customLong("session"), help: "A session to learn from (repeatable; default: the latest learn session).")
    var sessions: [String] = []
    @Option(name: .customLong("extends"), help: "A profile the proposal extends (repeatable; default: base).")
    var extends: [String] = []
    @Option(help: "Propose additions to this profile for what enforce sessions denied (a diff; -o writes the updated profile).")
    var update: String?
    @Option(name: .shortAndLong, help: "Write the proposal to this file instead of standard output.")
    var output: String?
    @Flag(help: "Overwrite the -o file if it exists.") var force = false
    @Option(help: "`*.parent` only when at least this many names directly under it were connected to.")
    var siblings = 3
    @Option(help: "A directory instead of its entries when at least this many entries directly under it were used.")
    var collapse = 3
    @Option(help: "Flag a parent as possible DNS exfiltration at this many unique names, most never connected to.")
    var exfiltrationNames = 20
    @Flag(help: "Allow `*.parent` directly under a multi-tenant suffix (the Public Suffix List's PRIVATE section, e.g. github.io).")
    var allowPrivateSuffix = false
    @Option(help: "The Public Suffix List file.") var publicSuffixList = PublicSuffixList.systemPath

    func validate() throws {
        guard siblings >= 2, collapse >= 2, exfiltrationNames >= 2 else {
            throw ValidationError("--siblings, --collapse and --exfiltration-names must be at least 2")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let opened = try store.openForReading()
        let ids: [String]
        if sessions.isEmpty {
            let kind = update == nil ? "learn" : "enforce"
            guard let latest = try Observations.latestSession(kind: kind, in: opened) else {
                throw CagentError(stage: "propose", "no \(kind) session in \(opened.path)",
                                  hint: "record one with cagent \(kind) ... -- COMMAND, or name one with --session")
            }
            ids = [latest]
        } else {
            var unique: [String] = []
            for id in sessions where !unique.contains(id) { unique.append(id) }
            ids = unique
        }
        let observations = try Observations.load(from: opened, sessions: ids)
        guard let suffixes = PublicSuffixList.load(path: publicSuffixList) else {
            throw CagentError(stage: "propose", "cannot read the Public Suffix List at \(TerminalEscape.escape(publicSuffixList))",
                              hint: "install Debian's publicsuffix package, or pass --public-suffix-list FILE")
        }

        let (resolver, user) = lookup.context(policy: .refuse, environment: try store.places())
        if let update {
            return try proposeUpdate(update, observations: observations, suffixes: suffixes, resolver: resolver, user: user)
        }
        var options = ProposalOptions(home: user.home)
        options.extends = extends.isEmpty ? ["base"] : extends
        options.siblingThreshold = siblings
        options.collapseThreshold = collapse
        options.exfiltrationThreshold = exfiltrationNames
        options.allowPrivateSuffix = allowPrivateSuffix
        let workspace = lookup.workspace ?? (FileSystem.realPath(".") ?? ".")
        options.workspace = FileSystem.realPath(workspace) ?? workspace
        // What enforce gives without any entry: the system directories, the /etc it builds, /proc, /dev; /tmp
        // and /dev/shm writable; the workspace.
        options.givenRead = EnforcePlanner.systemDirectories + EnforcePlanner.etcEntries.map { "/etc/" + $0 }
            + ["passwd", "group", "hosts", "hostname", "resolv.conf"].map { "/etc/" + $0 } + ["/proc", "/dev"]
        options.givenWrite = ["/tmp", "/dev/shm"]
        var hidden = DefaultHidden.home + FindingRules.systemSecrets
        for name in options.extends {
            let profile = try resolver.resolve(name).profile
            options.givenRead += profile.filesystem.read.map { expand($0, home: user.home) }
            options.givenWrite += profile.filesystem.write.map { expand($0, home: user.home) }
            options.givenDomains += profile.network.domains
            options.givenEndpoints += profile.network.endpoints.map(\.description)
            hidden += profile.filesystem.hide
        }
        options.hidden = Array(Set(hidden)).sorted()

        let proposal = Proposer(options: options, suffixes: suffixes).propose(observations)
        let text = ProposalRenderer.render(proposal)
        // Fail closed: a proposal the project's own parser refuses is a bug, never written.
        let parsed = ProfileParser.parse(text: text, file: output ?? "<proposal>")
        if parsed.layer == nil || parsed.diagnostics.contains(where: { $0.severity == .error }) {
            throw CagentError(stage: "propose", "the proposal does not parse: "
                              + parsed.diagnostics.map(\.description).joined(separator: "; "),
                              hint: "a bug in cagent: please report it with the session")
        }
        if let output {
            try writeProposal(text, to: output, user: user)
            let entries = proposal.domains.count + proposal.endpoints.count + proposal.read.count + proposal.write.count
            FileDescriptorStream.standardError.write(
                "cagent: proposed \(entries) entries (\(proposal.riskCount) RISK) from \(ids.map(TerminalEscape.escape).joined(separator: ", ")) "
                + "in \(TerminalEscape.escape(output)); review it, then cagent enforce --profile \(TerminalEscape.escape(output)) -- ...\n")
        } else {
            FileDescriptorStream.standardOutput.write(text)
        }
    }

    /// `--update PROFILE`: what the sessions denied, as the smallest addition to PROFILE (its resolved network
    /// is what is already given), shown as a diff; -o writes the whole updated profile.
    private func proposeUpdate(_ reference: String, observations: Observations, suffixes: PublicSuffixList,
                               resolver: ProfileResolver, user: InvokingUser) throws {
        let resolved = try resolver.resolve(reference)
        var options = ProposalOptions(home: user.home)
        options.extends = []
        options.siblingThreshold = siblings
        options.exfiltrationThreshold = exfiltrationNames
        options.allowPrivateSuffix = allowPrivateSuffix
        options.givenDomains = resolved.profile.network.domains
        options.givenEndpoints = resolved.profile.network.endpoints.map(\.description)
        var proposal = Proposer(options: options, suffixes: suffixes).propose(observations)
        // Only the network: an enforce session records no file access.
        proposal.read = []; proposal.write = []; proposal.filesystemNotes = []
        let shownFile = TerminalEscape.escape(resolved.source.display)
        let update: ProfileUpdate
        do { update = try ProfileUpdate.apply(proposal, to: resolved.source.text, file: resolved.source.display) }
        catch { throw CagentError(stage: "propose", error.description, hint: "edit the profile by hand, or change the list's style") }
        // Fail closed: an update the project's own parser refuses, or that does not allow what it added, is a bug.
        let parsed = ProfileParser.parse(text: update.text, file: resolved.source.display)
        if parsed.layer == nil || parsed.diagnostics.contains(where: { $0.severity == .error }) {
            throw CagentError(stage: "propose", "the updated profile does not parse: "
                              + parsed.diagnostics.map(\.description).joined(separator: "; "),
                              hint: "a bug in cagent: please report it with the profile and the session")
        }
        for note in proposal.networkNotes {
            FileDescriptorStream.standardError.write("cagent: note: \(TerminalEscape.escape(note))\n")
        }
        guard update.added > 0 else {
            FileDescriptorStream.standardError.write(
                "cagent: nothing to add to \(shownFile): no denial in \(observations.sessions.map(TerminalEscape.escape).joined(separator: ", ")) that a profile entry would allow\n")
            return
        }
        FileDescriptorStream.standardOutput.write(update.diff)
        if let output {
            try writeProposal(update.text, to: output, user: user)
            FileDescriptorStream.standardError.write(
                "cagent: \(update.added) entr\(update.added == 1 ? "y" : "ies") (\(proposal.riskCount) RISK) added to \(shownFile) "
                + "in \(TerminalEscape.escape(output)); review it, then cagent enforce --profile \(TerminalEscape.escape(output)) -- ...\n")
        }
    }

    private func expand(_ path: String, home: String) -> String {
        if path == "~" { return home }
        return path.hasPrefix("~/") ? home + path.dropFirst(1) : path
    }

    /// Writes with the invoking user's rights (under sudo the thread's filesystem ids are the user's: the
    /// file is theirs and their permissions decide), never following a symlink at the file name: a new file
    /// is created exclusively; `--force` writes a temporary file beside it and renames it over the old one.
    private func writeProposal(_ text: String, to path: String, user: InvokingUser) throws {
        try FileSystem.asUser(FileIdentity(invokingUnderRoot: user)) { try Self.writeFile(text, to: path, force: force) }
    }

    /// Call with the user's rights (FileSystem.asUser). `force`: replace an existing file (by rename).
    static func writeFile(_ text: String, to path: String, force: Bool) throws {
        let shown = TerminalEscape.escape(path)
        var info = stat()
        let exists = lstat(path, &info) == 0
        if exists && !force {
            throw CagentError(stage: "propose", "\(shown) exists", hint: "choose another file, or pass --force to replace it")
        }
        let target = exists ? path + ".cagent-\(getpid())" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CagentError.system("propose", "cannot create \(TerminalEscape.escape(target))") }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let code = errno
                close(fd); unlink(target)
                throw CagentError(stage: "propose", "cannot write \(TerminalEscape.escape(target))", errno: code)
            }
            written += count
        }
        guard close(fd) == 0 else { unlink(target); throw CagentError.system("propose", "cannot write \(TerminalEscape.escape(target))") }
        if exists && rename(target, path) != 0 {
            let code = errno
            unlink(target)
            throw CagentError(stage: "propose", "cannot replace \(shown)", errno: code)
        }
    }
}
