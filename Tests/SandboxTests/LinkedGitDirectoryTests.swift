import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #15 item 5a: a workspace that is a linked worktree (`git worktree add`) or a submodule checkout
/// has a `.git` file naming a git directory outside the workspace. The sandbox maps the smallest tree git
/// needs — the common git dir, the module's git dir — with the H13 protections (hooks and config
/// read-only), and only when that directory names this workspace back (an agent-made `.git` file pointing
/// at another repository's git dir, or at any directory, maps nothing). Real git, as the agent's user.
@Suite struct LinkedGitDirectoryTests {
    static let tools = ["git", "setpriv"]

    /// Runs `script` as the fixture's user on the host.
    static func asUser(_ script: String, in directory: String) throws -> Netlab.Output {
        try Netlab.execute(["setpriv", "--reuid=\(SandboxFixture.agentUID)", "--regid=\(SandboxFixture.agentUID)", "--clear-groups",
                            "/bin/sh", "-c", "cd \"$1\" && " + script, "sh", directory],
                           timeout: 30, environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
                                                      "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"])
    }

    static func plan(_ world: SandboxFixture, workspace: String, _ script: String) throws -> SandboxPlan {
        var request = EnforceRequest(profile: Profile(agent: "test"), workspace: workspace, user: world.user, paths: world.paths,
                                     command: ["/bin/sh", "-c", script],
                                     environment: ["PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@t",
                                                   "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@t"])
        request.requestedEnvironment = ["GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"]
        return try EnforcePlanner.plan(request)
    }

    static let probe = """
        echo change >> README
        git commit -qam from-the-sandbox && echo committed
        common=$(git rev-parse --path-format=absolute --git-common-dir)
        echo hook > "$common/hooks/post-commit" 2>/dev/null && echo hook-written || echo hook-refused
        git config core.fsmonitor 'touch /tmp/x' 2>/dev/null && echo config-written || echo config-refused
        ls "$common/.." 2>/dev/null | grep -q MAIN-ONLY && echo main-tree-visible || echo main-tree-absent
        """

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, git"))
    func aLinkedWorktreeCommitsThroughItsCommonGitDir() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        chown(world.root, SandboxFixture.agentUID, SandboxFixture.agentUID)   // the user makes repositories beside the workspace
        try world.makeDirectory(world.root + "/main")
        let made = try Self.asUser("""
            git init -q -b main . && echo one > README && echo secret > MAIN-ONLY && git add . && git commit -qm one
            rm -rf ../ws && git worktree add -q ../ws -b feature
            """, in: world.root + "/main")
        try #require(made.succeeded, "\(made.stderr)")
        let outcome = try world.run(Self.plan(world, workspace: world.workspace, Self.probe))
        #expect(outcome.output.contains("committed"), "out: \(outcome.output) err: \(outcome.error)")
        #expect(outcome.output.contains("hook-refused") && outcome.output.contains("config-refused"), "out: \(outcome.output)")
        #expect(outcome.output.contains("main-tree-absent"), "out: \(outcome.output)")
        // The commit is in the real repository (the control that the commit above was real).
        let log = try Self.asUser("git log -1 --format=%s feature", in: world.root + "/main")
        #expect(log.stdout.contains("from-the-sandbox"), "\(log.stdout) \(log.stderr)")
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, git"))
    func aSubmoduleCheckoutCommitsThroughItsModuleGitDir() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        chown(world.root, SandboxFixture.agentUID, SandboxFixture.agentUID)   // the user makes repositories beside the workspace
        try world.makeDirectory(world.root + "/subsrc")
        try world.makeDirectory(world.root + "/super")
        let made = try Self.asUser("""
            git init -q -b main . && echo one > README && git add . && git commit -qm one
            cd ../super && git init -q -b main . && echo MAIN-ONLY > MAIN-ONLY && git add . && git commit -qm super
            git -c protocol.file.allow=always submodule add -q ../subsrc sub && git commit -qm sub
            """, in: world.root + "/subsrc")
        try #require(made.succeeded, "\(made.stderr)")
        let workspace = world.root + "/super/sub"
        let outcome = try world.run(Self.plan(world, workspace: workspace, Self.probe.replacingOccurrences(of: "$common/..", with: "$common/../../..")))
        #expect(outcome.output.contains("committed"), "out: \(outcome.output) err: \(outcome.error)")
        #expect(outcome.output.contains("hook-refused") && outcome.output.contains("config-refused"), "out: \(outcome.output)")
        #expect(outcome.output.contains("main-tree-absent"), "out: \(outcome.output)")
        let log = try Self.asUser("git log -1 --format=%s", in: workspace)
        #expect(log.stdout.contains("from-the-sandbox"), "\(log.stdout) \(log.stderr)")
    }

    /// A `.git` file the agent wrote (a session where `.git` was missing) naming another repository's worktree
    /// dir, a directory dressed up as a git dir, or a link: nothing of it is mapped, and the start says why.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, git"))
    func aGitFileNamingSomethingElseMapsNothing() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        chown(world.root, SandboxFixture.agentUID, SandboxFixture.agentUID)   // the user makes repositories beside the workspace
        try world.makeDirectory(world.root + "/other")
        let made = try Self.asUser("""
            git init -q -b main . && echo one > README && git add . && git commit -qm one && git worktree add -q ../other-wt -b x
            mkdir -p ../fake && echo 'ref: refs/heads/main' > ../fake/HEAD && mkdir ../fake/objects
            """, in: world.root + "/other")
        try #require(made.succeeded, "\(made.stderr)")
        for (target, why) in [(world.root + "/other/.git/worktrees/other-wt", "names another worktree"),
                              (world.root + "/fake", "does not name this workspace")] {
            try world.write(world.workspace + "/.git", "gitdir: \(target)\n")
            let plan = try Self.plan(world, workspace: world.workspace, "true")
            let mapped = plan.steps.filter { if case let .bind(source, _, _, _) = $0.operation { return source.hasPrefix(world.root + "/other") || source.hasPrefix(world.root + "/fake") } else { return false } }
            #expect(mapped.isEmpty, "\(mapped)")
            #expect(plan.policyNotices.contains { $0.contains("not mapped") && $0.contains(why) }, "\(plan.policyNotices)")
        }
        // The control: the same file naming the real worktree's dir from that worktree does map it.
        let plan = try Self.plan(world, workspace: world.root + "/other-wt", "true")
        #expect(plan.steps.contains { if case let .bind(source, _, .readWrite, _) = $0.operation { return source == world.root + "/other/.git" } else { return false } },
                "\(plan.steps.map(\.operation))")
    }
}
