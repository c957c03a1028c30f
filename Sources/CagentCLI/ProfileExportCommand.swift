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
        if case .failure(let error) = FileSystem.writeAsUser(path, bytes: Array(text.utf8), mode: 0o644,
                                                             identity: FileIdentity.invoking(environment: ProcessEnvironment.current)) {
            let isLink: Bool
            if case .open(let code) = error.reason { isLink = code == ELOOP } else { isLink = false }
            throw CagentError(stage: "export", error.message(path: path),
                              hint: isLink ? "it is a symbolic link; name the file itself" : "check the directory exists and is writable")
        }
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
