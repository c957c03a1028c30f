import ArgumentParser
import CagentCore
import CagentExport
import CagentLaunch
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// The options of `cagent profile export` (and of its alias, the top-level `cagent export`).
extension CiliumExport.DNSLookups: ExpressibleByArgument {}

struct ProfileExportOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable { case cilium, kubernetes }

    @OptionGroup var lookup: ProfileLookupOptions
    @Option(help: "cilium: a CiliumNetworkPolicy (names, kept current by Cilium's DNS proxy); kubernetes: a NetworkPolicy (addresses resolved now).")
    var format: Format
    @Option(name: .customLong("selector"), help: "A pod label the policy applies to, key=value (repeatable). Default: app=<agent>.")
    var selectors: [String] = []
    @Option(help: "The policy's name. Default: cagent-<agent>.") var name: String?
    @Option(help: "The policy's namespace. Default: none (kubectl's current namespace).") var namespace: String?
    @Option(help: "cilium only: which lookups reach kube-dns. all: every name (Cilium's usual DNS rule); profile: only the profile's names, as cagent's gate (breaks search-list lookups on musl-based images).")
    var dnsLookups: CiliumExport.DNSLookups?
    @Flag(help: "Print JSON instead of YAML.") var json = false
    @Option(name: .shortAndLong, help: "Write the policy to this file instead of standard output.") var output: String?
    @Argument(help: "Profile name or path.") var profile: String

    func run() throws {
        let (resolver, _) = lookup.context(policy: .refuse)
        let resolved = try resolver.resolve(profile)
        let errors = FileDescriptorStream.standardError
        for warning in resolved.warnings { errors.write(warning.description + "\n") }
        let target = try ExportTarget(profile: resolved.profile, reference: profile, name: name, namespace: namespace,
                                      selectors: selectors)
        let exported: ExportedPolicy
        switch format {
        case .cilium:
            exported = CiliumExport.policy(resolved.profile, target: target, dnsLookups: dnsLookups ?? .all)
        case .kubernetes:
            if dnsLookups != nil {
                throw CagentError(stage: "export", "--dns-lookups applies to --format cilium only",
                                  hint: "a NetworkPolicy cannot filter lookups by name; leave the option out")
            }
            exported = KubernetesExport.policy(resolved.profile, target: target, resolver: SystemResolver(),
                                               exportedAt: Self.utcNow())
        }
        for line in exported.notExported {
            errors.write("cagent: export: not exported: \(TerminalEscape.escape(line))\n")
        }
        let text = json ? exported.json : exported.yaml
        if let output {
            try Self.write(text, to: output)
        } else {
            FileDescriptorStream.standardOutput.write(text)
        }
    }

    /// RFC 3339 UTC, to the second.
    static func utcNow() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Creates or truncates the file the user named, with that user's rights (under sudo, the invoking
    /// user's: root must not write where the user could not); never through a symlink in its last component.
    static func write(_ text: String, to path: String) throws {
        let (fd, code) = try asInvokingUser { () -> (Int32, Int32) in
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
            return (fd, errno)
        }
        guard fd >= 0 else {
            throw CagentError(stage: "export", "cannot write \(TerminalEscape.escape(path))", errno: code,
                              hint: code == ELOOP ? "it is a symbolic link; name the file itself" : "check the directory exists and is writable")
        }
        defer { close(fd) }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw CagentError(stage: "export", "cannot write \(TerminalEscape.escape(path))", errno: errno,
                                  hint: "check the disk has room")
            }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Runs `body` with the effective uid, gid and groups of the user who ran sudo, when cagent runs as root
    /// under sudo; as is otherwise. The ids are restored before returning.
    static func asInvokingUser<T>(_ body: () -> T) throws -> T {
        let environment = ProcessEnvironment.current
        guard geteuid() == 0, environment["SUDO_UID"] != nil else { return body() }
        let user = InvokingUser.current(environment: environment)
        if user.uid == 0 { return body() }
        var saved = [gid_t](repeating: 0, count: Int(getgroups(0, nil)))
        let count = getgroups(Int32(saved.count), &saved)
        guard count >= 0, initgroups(user.name, user.gid) == 0, setegid(user.gid) == 0, seteuid(user.uid) == 0 else {
            let code = errno
            _ = seteuid(0); _ = setegid(0); _ = setgroups(max(Int(count), 0), saved)
            throw CagentError(stage: "export", "cannot act as \(TerminalEscape.escape(user.name)) to write the file", errno: code,
                              hint: "write to standard output instead and redirect it")
        }
        let result = body()
        guard seteuid(0) == 0, setegid(0) == 0, setgroups(Int(count), saved) == 0 else {
            // Never continue as root with the user's ids half restored.
            FileDescriptorStream.standardError.write("cagent: export failed: cannot restore root's ids\n")
            Glibc.exit(1)
        }
        return result
    }
}

struct ProfileExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a profile's network allowlist as a CiliumNetworkPolicy or Kubernetes NetworkPolicy.",
        discussion: """
        cilium keeps names (toFQDNs, learned by Cilium's DNS proxy); kubernetes resolves the names now into \
        ipBlocks, a snapshot that goes stale. Only egress is exported. Entries a policy cannot express are \
        listed on standard error and in the policy's annotations. See docs/profiles.md, "Export".
        """)
    @OptionGroup var options: ProfileExportOptions
    func run() throws { try options.run() }
}

/// `cagent export`: the same command at the top level, kept for the name the command list always had.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Same as `cagent profile export`.", shouldDisplay: true)
    @OptionGroup var options: ProfileExportOptions
    func run() throws { try options.run() }
}
