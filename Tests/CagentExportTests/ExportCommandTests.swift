import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent profile export` end to end, through the built executable.
@Suite("profile export (executable)")
struct ExportCommandTests {
    static var mayRun: Bool { Requirements.isCI || FileManager.default.isExecutableFile(atPath: ExportSupport.executable) }

    static func environment(_ root: String) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "HOME": root + "/home", "XDG_CONFIG_HOME": root + "/xdg-config",
         "XDG_DATA_HOME": root + "/xdg-data", "CAGENT_PROFILES_DIR": ExportSupport.bundledProfiles]
    }

    @Test("cilium export of a bundled profile: stdout, -o FILE, --json, the top-level alias; bad options fail",
          .enabled(if: Self.mayRun, "needs `swift build` to have built .build/debug/cagent"))
    func ciliumCommand() throws {
        let root = try ExportSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let env = Self.environment(root)
        let exe = ExportSupport.executable
        let out = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "claude-code"], timeout: 120,
                                     environment: env, directory: root)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("# CiliumNetworkPolicy exported by cagent from profile claude-code.\n"), "\(out.stdout)")
        #expect(out.stdout.contains("  name: cagent-claude-code\n"))
        #expect(out.stdout.contains("- matchName: api.anthropic.com\n"))

        let file = root + "/policy.yaml"
        let written = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "--selector", "team=ai",
                                          "-o", file, "claude-code"], timeout: 120, environment: env, directory: root)
        #expect(written.status == 0, "\(written.stderr)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains("      team: ai\n"), "\(text)")
        #expect(written.stdout.isEmpty)

        // -o never follows a symlink: an agent-made link must not redirect the write.
        let target = root + "/elsewhere"
        try "keep\n".write(toFile: target, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: root + "/link.yaml", withDestinationPath: target)
        let refused = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "-o", root + "/link.yaml", "claude-code"],
                                         timeout: 120, environment: env, directory: root)
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("export failed: cannot write"), "\(refused.stderr)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep\n")

        let alias = try Netlab.execute([exe, "export", "--format", "cilium", "--json", "codex"], timeout: 120,
                                       environment: env, directory: root)
        #expect(alias.status == 0, "\(alias.stderr)")
        #expect(alias.stdout.hasPrefix("{\n  \"apiVersion\": \"cilium.io/v2\",\n"), "\(alias.stdout)")

        let strict = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "--dns-lookups", "profile", "codex"],
                                        timeout: 120, environment: env, directory: root)
        #expect(strict.status == 0, "\(strict.stderr)")
        #expect(strict.stdout.contains("              - matchName: auth.openai.com\n"), "\(strict.stdout)")
        #expect(!strict.stdout.contains("matchPattern: \"*\""))
        #expect(out.stdout.contains("              - matchPattern: \"*\"\n"), "\(out.stdout)")
        let mixed = try Netlab.execute([exe, "profile", "export", "--format", "kubernetes", "--dns-lookups", "profile", "codex"],
                                       timeout: 120, environment: env, directory: root)
        #expect(mixed.status == 125)
        #expect(mixed.stderr.contains("--dns-lookups applies to --format cilium only"), "\(mixed.stderr)")

        let bad = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "--selector", "app", "codex"],
                                     timeout: 120, environment: env, directory: root)
        #expect(bad.status == 125)
        #expect(bad.stderr.contains("export failed: --selector 'app' is not a label key=value"), "\(bad.stderr)")
    }

    @Test("under sudo, -o writes with the invoking user's rights: not where only root may write, and the file is theirs",
          .enabled(if: Self.mayRun && Requirements.mayRun(root: true), "needs root and the built cagent"))
    func outputAsInvokingUser() throws {
        try Requirements.root()
        let root = try ExportSupport.temporaryDirectory()   // mode 0700, root's: nobody may not write here
        defer { try? FileManager.default.removeItem(atPath: root) }
        let nobody = try #require(getpwnam("nobody")?.pointee, "needs the user nobody")
        let exe = ExportSupport.executable
        var env = Self.environment(root)

        // Positive control: as root without sudo, the same command writes into the root-only directory.
        let asRoot = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "-o", root + "/root.yaml", "codex"],
                                        timeout: 120, environment: env, directory: root)
        #expect(asRoot.status == 0, "\(asRoot.stderr)")
        #expect(FileManager.default.fileExists(atPath: root + "/root.yaml"))

        env["SUDO_UID"] = String(nobody.pw_uid)
        env["SUDO_GID"] = String(nobody.pw_gid)
        let refused = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "-o", root + "/sudo.yaml", "codex"],
                                         timeout: 120, environment: env, directory: root)
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("export failed: cannot write"), "\(refused.stderr)")
        #expect(refused.stderr.contains("Permission denied"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: root + "/sudo.yaml"))

        let theirs = root + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: false)
        #expect(chown(theirs, nobody.pw_uid, nobody.pw_gid) == 0)
        chmod(root, 0o711)   // nobody may pass through, not list or write
        let written = try Netlab.execute([exe, "profile", "export", "--format", "cilium", "-o", theirs + "/p.yaml", "codex"],
                                         timeout: 120, environment: env, directory: root)
        #expect(written.status == 0, "\(written.stderr)")
        var info = stat()
        #expect(stat(theirs + "/p.yaml", &info) == 0)
        #expect(info.st_uid == nobody.pw_uid, "the file belongs to uid \(info.st_uid)")
    }

    @Test("kubernetes export resolves through the system resolver: the netlab's dnsmasq answers, rebinding refused",
          .enabled(if: Self.mayRun && Requirements.mayRun(root: true, tools: ["ip", "dnsmasq"]), "needs root, the netlab tools and the built cagent"))
    func kubernetesThroughNetlab() throws {
        try Requirements.root()
        let lab = try Netlab(services: [.dns])
        defer { lab.shutdown() }
        let root = try ExportSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try """
            cagent: 1
            agent: lab-agent
            network:
              domains:
                - www.allowed.test
                - "*.allowed.test"
                - rebind.allowed.test
                - nothing.allowed.test
              endpoints:
                - api.allowed.test:8443/tcp

            """.write(toFile: root + "/lab.yaml", atomically: false, encoding: .utf8)
        let env = Self.environment(root).map { "\($0.key)=\($0.value)" }.sorted()
        let result = try Netlab.execute(["ip", "netns", "exec", lab.hostNamespace, "env", "-i"] + env
                                        + [ExportSupport.executable, "profile", "export", "--format", "kubernetes", root + "/lab.yaml"],
                                        timeout: 120, directory: root)
        #expect(result.status == 0, "\(result.stderr)")
        let yaml = result.stdout
        // The lab's web servers, v4 and v6, on the web ports and on the endpoint's port.
        #expect(yaml.contains("cidr: \"203.0.113.10/32\""), "\(yaml)")
        #expect(yaml.contains("cidr: \"2001:db8:10::10/128\""), "\(yaml)")
        #expect(yaml.contains("cidr: \"203.0.113.11/32\""), "\(yaml)")
        #expect(yaml.contains("port: 8443"))
        // Rebinding refused, NXDOMAIN and wildcards reported on stderr and in the annotation.
        #expect(!yaml.contains("127.0.0.1/32"))
        #expect(result.stderr.contains("not exported: rebind.allowed.test: answer 127.0.0.1 is loopback"), "\(result.stderr)")
        #expect(result.stderr.contains("not exported: nothing.allowed.test: did not resolve"), "\(result.stderr)")
        #expect(result.stderr.contains("not exported: *.allowed.test: a wildcard cannot be resolved"), "\(result.stderr)")
        #expect(yaml.contains("cagent/exported-at: \"20"), "\(yaml)")
        // The answers came from the lab's DNS server (positive control: the lookups went where we think).
        let log = try String(contentsOfFile: lab.dnsLog, encoding: .utf8)
        #expect(log.contains("www.allowed.test"), "\(log)")
    }
}
