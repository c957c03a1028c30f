import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #15 item 4: secrets in the workspace (`.env`, `*.pem`) were fully readable inside the sandbox. The
/// profile's workspace patterns are matched host-side at plan time and every match is covered.
@Suite("workspace secrets", .serialized)
struct WorkspaceSecretsTests {
    static let marker = "WS-SECRET-\(UInt64.random(in: 0...UInt64.max))"
    static let control = "WS-CONTROL-\(UInt64.random(in: 0...UInt64.max))"

    /// Secret files at several depths, and a plain file next to them (the positive control).
    static func populate(_ world: SandboxFixture) throws {
        for path in [".env", ".env.local", "certs/server.pem", "deep/a/b/.env", "config/id_rsa"] {
            try world.write(world.workspace + "/" + path, marker + "\n")
        }
        try world.write(world.workspace + "/notes.txt", control + "\n")
    }

    static let probe = "cd \"$0\" && for f in .env .env.local certs/server.pem deep/a/b/.env config/id_rsa notes.txt; do cat \"$f\" 2>&1; done; true"

    func cagent(_ arguments: [String], world: SandboxFixture) throws -> Netlab.Output {
        try Netlab.execute([Products.cagent, "enforce", "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace,
                            "--state-dir", world.state, "--offline"] + arguments,
                           timeout: 60, environment: ["PATH": "/usr/bin:/bin", "HOME": world.home])
    }

    /// enforce with the bundled base profile: its default workspace patterns cover `.env`, `.env.*`, `*.pem`,
    /// `id_rsa*` at any depth, and the start says which files.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func enforceHidesWorkspaceSecrets() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try Self.populate(world)
        // Positive control: outside the sandbox the same cat prints the marker.
        let host = try Netlab.execute(["/bin/sh", "-c", Self.probe, world.workspace], timeout: 10)
        #expect(host.stdout.contains(Self.marker) && host.stdout.contains(Self.control), "\(host.stdout)")

        let run = try cagent(["--profile", "base", "--", "/bin/sh", "-c", Self.probe, world.workspace], world: world)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(Self.control), "positive control: a file next to them is readable: \(run.stdout) \(run.stderr)")
        #expect(!run.stdout.contains(Self.marker), "a workspace secret was read in the sandbox: \(run.stdout)")
        #expect(run.stderr.contains("cagent: hidden in the workspace: .env, .env.local, certs/server.pem, config/id_rsa, deep/a/b/.env"),
                "\(run.stderr)")
    }

    /// learn mode covers the same files (a real sandbox from LearnPlanner, as `cagent learn` builds it).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func learnHidesWorkspaceSecrets() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try Self.populate(world)
        let profile = Profile(agent: "t", filesystem: .init(hide: [".env", ".env.*", "*.pem", "id_rsa*"]))
        let request = LearnRequest(profile: profile, workspace: world.workspace, user: world.user, paths: world.paths,
                                   command: ["/bin/sh", "-c", Self.probe, world.workspace], environment: ["PATH": "/usr/bin:/bin"],
                                   sessionID: "wsl\(UInt32.random(in: 0...UInt32.max))")
        let plan = try LearnPlanner.plan(request)
        let result = try world.run(plan)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains(Self.control), "positive control: \(result.output) \(result.error)")
        #expect(!result.output.contains(Self.marker), "a workspace secret was read in learn mode: \(result.output)")
    }

    /// A `.env` that is a symlink out of the workspace, and a symlinked directory holding a `.env`: the
    /// planner follows neither (no hide step through a link, which cagent-init would refuse: the start
    /// must not fail), and the sandbox still does not show the link's target.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func symlinkedSecretIsNotFollowedHostSide() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let outside = world.root + "/outside"
        try world.write(outside + "/secret.env", Self.marker + "\n")
        try world.write(outside + "/dir/.env", Self.marker + "\n")
        symlink(outside + "/secret.env", world.workspace + "/.env")
        symlink(outside + "/dir", world.workspace + "/linked")
        try world.write(world.workspace + "/notes.txt", Self.control + "\n")
        let profile = Profile(agent: "t", filesystem: .init(hide: [".env"]))
        let plan = try world.plan(["/bin/sh", "-c", "cat .env linked/.env notes.txt 2>&1; true"], profile: profile)
        let hides = plan.steps.compactMap { step -> String? in if case let .hide(path) = step.operation { path } else { nil } }
        #expect(!hides.contains { $0.hasPrefix(world.workspace + "/") || $0.hasPrefix(outside) }, "\(hides)")
        let result = try world.run(plan)
        #expect(result.status == 0, "the start failed: \(result.error)")
        #expect(result.output.contains(Self.control), "positive control: \(result.output)")
        #expect(!result.output.contains(Self.marker), "\(result.output)")
    }

    /// `cagent learn` covers the base profile's workspace patterns and records the agent's read of one as a
    /// secret-access finding (the seccomp tracer; a netlab with its resolver only).
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft", "dnsmasq"]), "needs root and the netlab tools"))
    func learnRecordsReadsOfWorkspaceSecrets() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try Self.populate(world)
        let lab = try Netlab(services: [.dns])
        defer { lab.shutdown() }
        let database = world.root + "/learn.db"
        let run = try lab.run(in: .host, [Products.cagent, "learn", "--quiet", "--user", String(SandboxFixture.agentUID),
                                          "--home", world.home, "--state-dir", world.state, "--db", database,
                                          "--workspace", world.workspace, "--tracer", "seccomp", "--",
                                          "/bin/sh", "-c", Self.probe, world.workspace], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(Self.control), "positive control: \(run.stdout) \(run.stderr)")
        #expect(!run.stdout.contains(Self.marker), "a workspace secret was read in learn mode: \(run.stdout)")
        #expect(run.stderr.contains("cagent: hidden in the workspace: .env, .env.local"), "\(run.stderr)")
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let findings = (json["findings"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "secret-access" }
        let subjects = findings.compactMap { $0["subject"] as? String }
        #expect(subjects.contains(world.workspace + "/.env") && subjects.contains(world.workspace + "/certs/server.pem"), "\(subjects)")
        #expect(!subjects.contains { $0.hasSuffix("/notes.txt") }, "\(subjects)")
    }

    /// The walk itself: breadth first, bounded, directories covered whole, node_modules and .git not entered.
    @Test func walkOrderBoundsAndSkips() throws {
        let world = try SandboxFixture(); defer { world.remove() }
        for path in ["a/b/c/.env", ".env", "node_modules/pkg/.env", ".git/.env", "secrets/x.txt", "sub/secrets/y", "z/server.pem"] {
            try world.write(world.workspace + "/" + path, "x")
        }
        let patterns = try [".env", "secrets/", "*.pem"].map { try WorkspacePattern($0) }
        let full = try WorkspaceSecrets.scan(workspace: world.workspace, patterns: patterns, identity: nil)
        #expect(full.hidden == [".env", "secrets", "sub/secrets", "z/server.pem", "a/b/c/.env"], "\(full.hidden)")
        #expect(!full.truncated)
        let bounded = try WorkspaceSecrets.scan(workspace: world.workspace, patterns: patterns, identity: nil, entryBudget: 4)
        #expect(bounded.truncated && bounded.hidden == [".env"], "\(bounded)")
        #expect(WorkspaceSecrets.startLine(bounded)?.contains("hide patterns were matched in the first") == true)
        let shallow = try WorkspaceSecrets.scan(workspace: world.workspace, patterns: patterns, identity: nil, depthLimit: 2)
        #expect(!shallow.hidden.contains("a/b/c/.env") && shallow.hidden.contains("z/server.pem"), "\(shallow.hidden)")
    }
}
