import Netlab
import CagentCore
import Foundation
import Testing
@testable import CagentProfile

/// The `cagent profile` commands end to end, through the built executable (`swift build` builds it with the
/// tests). Each run gets its own config and data directories.
@Suite("cagent profile (executable)")
struct ProfileCLITests {
    static var executable: String {
        URL(fileURLWithPath: repositoryProfiles()).deletingLastPathComponent().path + "/.build/debug/cagent"
    }

    /// Under CI the tests run (and fail) even when the executable is missing.
    static var mayRun: Bool { Requirements.isCI || FileManager.default.isExecutableFile(atPath: executable) }

    struct Result { var status: Int32; var output: String; var errors: String }

    static func run(_ arguments: [String], in sandbox: ProfileSandbox, directory: String,
                    timeout: Double = 120) throws -> Result {
        let environment = ["PATH": "/usr/bin:/bin", "HOME": sandbox.root + "/home",
                           "XDG_CONFIG_HOME": sandbox.root + "/xdg-config", "XDG_DATA_HOME": sandbox.root + "/xdg-data",
                           "CAGENT_PROFILES_DIR": repositoryProfiles()]
        let result = try Netlab.execute([executable] + arguments, timeout: timeout, environment: environment,
                                        directory: directory)
        return Result(status: result.status, output: result.stdout, errors: result.stderr)
    }

    @Test("lint, show --resolved, trust, diff and list on a workspace profile",
          .enabled(if: Self.mayRun, "needs `swift build` to have built .build/debug/cagent"))
    func workspaceFlow() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("ws/.cagent/project.yaml", """
            cagent: 1
            extends: [claude-code]
            network:
              domains:
                - "!sentry.io"
                - internal.example.com   # our registry

            """)
        let ws = sandbox.workspace

        let lint = try Self.run(["profile", "lint", "project"], in: sandbox, directory: ws)
        #expect(lint.status == 0)
        #expect(lint.output.contains("not trusted"), "\(lint.output)")
        #expect(lint.output.contains("ok .cagent/project.yaml"), "\(lint.output)")

        let refused = try Self.run(["profile", "show", "--resolved", "project"], in: sandbox, directory: ws)
        #expect(refused.status == 125)
        #expect(refused.errors == "cagent: profile failed: command line: '.cagent/project.yaml' is inside the workspace and not trusted: "
                + "a repository, or the agent, must not choose its own policy\n"
                + "  hint: review it, then run `cagent profile trust .cagent/project.yaml`, or name it by path\n")

        let trust = try Self.run(["profile", "trust", ".cagent/project.yaml"], in: sandbox, directory: ws)
        #expect(trust.status == 0)
        #expect(trust.output.hasPrefix("trusted .cagent/project.yaml (sha256:"))

        let shown = try Self.run(["profile", "show", "--resolved", "project"], in: sandbox, directory: ws)
        #expect(shown.status == 0, "\(shown.errors)")
        #expect(shown.output.contains("    - internal.example.com  # from .cagent/project.yaml:6 -- our registry\n"))
        #expect(!shown.output.contains("sentry.io"))
        // The output is a profile: lint reads it back.
        try shown.output.write(toFile: sandbox.root + "/resolved.yaml", atomically: false, encoding: .utf8)
        let relint = try Self.run(["profile", "lint", sandbox.root + "/resolved.yaml"], in: sandbox, directory: ws)
        #expect(relint.status == 0, "\(relint.output)")

        let diff = try Self.run(["profile", "diff", "claude-code", "project"], in: sandbox, directory: ws)
        #expect(diff.status == 1)
        #expect(diff.output.contains("+ network.domains: internal.example.com  (.cagent/project.yaml:6)"))
        #expect(diff.output.contains("- network.domains: sentry.io"))

        let list = try Self.run(["profile", "list"], in: sandbox, directory: ws)
        #expect(list.output.contains("workspace,trusted"), "\(list.output)")

        let original = try Self.run(["profile", "show", "project"], in: sandbox, directory: ws)
        #expect(original.output.hasSuffix("    - internal.example.com   # our registry\n"))

        // Built now (CagentProposeTests); with no database it says so and creates none.
        let propose = try Self.run(["profile", "propose"], in: sandbox, directory: ws)
        #expect(propose.status == 125)
        #expect(propose.errors.contains("no database at"), "\(propose.errors)")
    }

    @Test("lint exits 1 with file:line:column on a broken profile",
          .enabled(if: Self.mayRun, "needs `swift build` to have built .build/debug/cagent"))
    func brokenLint() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("ws/bad.yaml", "cagent: 1\nnetwork:\n  dns:\n    upstream: 192.0.2.53\n")
        let lint = try Self.run(["profile", "lint", "bad.yaml"], in: sandbox, directory: sandbox.workspace)
        #expect(lint.status == 1)
        #expect(lint.output.contains("bad.yaml:3:3: error: 'network.dns' is not a profile key: the DNS upstream is host configuration\n"
                                      + "  hint: a shared profile must not choose the resolver whose answers get pinned"), "\(lint.output)")
    }
}

/// Issue #12, section 5: a proxy voids the allowlist (everything it fetches bypasses the gate). `profile lint`
/// warns, at the entry's file:line, about a passed proxy variable and an endpoint on a proxy-looking port.
@Suite("profile lint: proxies")
struct ProxyLintTests {
    @Test(.enabled(if: ProfileCLITests.mayRun, "needs `swift build` to have built .build/debug/cagent"))
    func lintWarnsAboutProxyVariablesAndProxyPorts() throws {
        let sandbox = try ProfileSandbox()
        let path = try sandbox.write("proxied.yaml", """
            cagent: 1
            network:
              endpoints:
                - proxy.corp.test:3128/tcp
                - api.corp.test:443/tcp
            env:
              pass:
                - HTTPS_PROXY
                - EDITOR

            """)
        let lint = try ProfileCLITests.run(["profile", "lint", path], in: sandbox, directory: sandbox.root)
        let lines = lint.output.split(separator: "\n").map(String.init)
        let endpointWarning = lines.first { $0.contains(":4:") && $0.contains("warning") }
        let envWarning = lines.first { $0.contains(":8:") && $0.contains("warning") }
        #expect(endpointWarning?.contains("proxy.corp.test:3128/tcp") == true && endpointWarning?.contains("allowlist") == true,
                "no warning at the endpoint's line: \(lint.output)")
        #expect(envWarning?.contains("HTTPS_PROXY") == true && envWarning?.contains("allowlist") == true,
                "no warning at the env entry's line: \(lint.output)")
        // Control: the harmless entries of the same file draw nothing.
        #expect(!lines.contains { $0.contains(":5:") || $0.contains(":9:") }, "\(lint.output)")
        #expect(lint.status == 0 && lint.output.contains("warning(s)"), "\(lint.output)")
        let strict = try ProfileCLITests.run(["profile", "lint", "--strict", path], in: sandbox, directory: sandbox.root)
        #expect(strict.status == 1, "\(strict.output)")
    }
}
