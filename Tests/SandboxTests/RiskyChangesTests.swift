import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Pure logic of the git config reader/editor (no root needed).
@Suite struct GitConfigTests {
    let sample = """
    [core]
    \trepositoryformatversion = 0
    \thooksPath = /tmp/evil-hooks
    [remote "origin"]
    \turl = https://example.test/repo.git
    [filter "lfs"]
    \tclean = git-lfs clean -- %f
    [diff]
    \texternal = "sh -c 'touch /tmp/pwned'"
    [includeIf "gitdir:~/x/"]
    \tpath = /tmp/other.cfg

    """

    @Test func findsRiskyKeysOnly() {
        let keys = RiskyChanges.riskyKeys(GitConfig.parse(sample))
        #expect(keys["core.hookspath"] == ["/tmp/evil-hooks"])
        #expect(keys["filter.lfs.clean"] == ["git-lfs clean -- %f"])
        #expect(keys["diff.external"] == ["sh -c 'touch /tmp/pwned'"])
        #expect(keys["includeif.gitdir:~/x/.path"] == ["/tmp/other.cfg"])
        #expect(keys["remote.origin.url"] == nil)
        #expect(keys["core.repositoryformatversion"] == nil)
    }

    @Test func removingKeepsEverythingElse() {
        let edited = GitConfig.removing(keys: ["core.hookspath", "diff.external"], from: sample)
        #expect(!edited.contains("hooksPath"))
        #expect(!edited.contains("external"))
        #expect(edited.contains("url = https://example.test/repo.git"))
        #expect(edited.contains("clean = git-lfs"))
        let reparsed = RiskyChanges.riskyKeys(GitConfig.parse(edited + GitConfig.assignment(key: "core.sshcommand", value: "ssh -v \"x\"")))
        #expect(reparsed["core.sshcommand"] == ["ssh -v \\\"x\\\""] || reparsed["core.sshcommand"]?.isEmpty == false)
    }

    @Test func planRejectsNulAndEmptyValues() throws {
        var plan = SandboxPlan(sessionID: "s", hostname: "h", uid: 1000, gid: 1000, workingDirectory: "/w",
                               command: ["a\u{0}b"], environment: [], steps: [], workspace: "/w")
        #expect(throws: CagentError.self) { try plan.serialized() }
        plan.command = [""]
        #expect(throws: CagentError.self) { try plan.serialized() }
        plan.command = ["/bin/true"]
        let bytes = try plan.serialized()
        #expect(bytes.last == 0 && bytes.dropLast().last == 0)
    }
}

/// H10 and H13 with real sandboxes: the agent plants links and risky settings; cagent reports them,
/// never follows a link while doing so, and `revert` puts everything back.
@Suite(.serialized) struct RiskyChangesSandboxTests {
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["git"]), "needs root and git: real sandboxes"))
    func h13RiskyChangesAreReportedAndReverted() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let initRepo = TestProcess()
        initRepo.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        initRepo.arguments = ["init", "-q", world.workspace]
        try initRepo.run(); initRepo.waitUntilExit()
        try world.write(world.workspace + "/.git/config", "[core]\n\trepositoryformatversion = 0\n\tbare = false\n[remote \"origin\"]\n\turl = https://example.test/r.git\n")
        let chown = TestProcess()
        chown.executableURL = URL(fileURLWithPath: "/bin/chown")
        chown.arguments = ["-R", "\(SandboxFixture.agentUID):\(SandboxFixture.agentUID)", world.workspace]
        try chown.run(); chown.waitUntilExit()
        try world.write(world.workspace + "/.npmrc", "registry=https://registry.example.test/\n")
        let before = RiskyChanges.snapshot(workspace: world.workspace)
        let result = try world.sh("""
        git config core.hooksPath /tmp/hooks && git config core.fsmonitor 'touch /tmp/pwned' && git config filter.x.smudge evil
        git config core.sshCommand 'ssh -o ProxyCommand=evil' && git config diff.external evil && git config user.name agent
        echo 'export PATH=/tmp/evil:$PATH' > .envrc
        mkdir -p .vscode .cargo && echo '{"tasks":[]}' > .vscode/tasks.json && echo '[build]' > .cargo/config.toml
        echo '//registry.example.test/:_authToken=stolen' >> .npmrc
        echo '#!/bin/sh' > .git/hooks/post-checkout 2>/dev/null || echo hooks-read-only
        echo done
        """)
        #expect(result.output.contains("done"), "\(result.error)")
        #expect(result.output.contains("hooks-read-only"))
        let after = RiskyChanges.snapshot(workspace: world.workspace)
        let changes = RiskyChanges.compare(before: before, after: after)
        let summaries = changes.map(\.summary)
        for expected in ["core.hookspath", "core.fsmonitor", "filter.x.smudge", "core.sshcommand", "diff.external"] {
            #expect(summaries.contains { $0.contains(expected) }, "\(expected) not reported: \(summaries)")
        }
        for file in [".envrc", ".vscode/tasks.json", ".cargo/config.toml", ".npmrc"] {
            #expect(summaries.contains { $0.hasSuffix(file) }, "\(file) not reported: \(summaries)")
        }
        #expect(!summaries.contains { $0.contains("user.name") })

        try RiskyChanges.revert(changes, workspace: world.workspace, before: before, owner: world.user)
        let reverted = RiskyChanges.snapshot(workspace: world.workspace)
        #expect(RiskyChanges.compare(before: before, after: reverted).isEmpty)
        #expect(!FileSystem.exists(world.workspace + "/.envrc"))
        #expect(world.read(world.workspace + "/.npmrc") == "registry=https://registry.example.test/\n")
        let config = world.read(world.workspace + "/.git/config") ?? ""
        #expect(config.contains("name = agent"), "benign edits stay: \(config)")
        #expect(config.contains("url = https://example.test/r.git"))
        var info = stat()
        #expect(stat(world.workspace + "/.git/config", &info) == 0 && info.st_uid == SandboxFixture.agentUID)
    }

    /// H10: links the agent planted are reported as links and removed; their targets are never read or
    /// written by cagent.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func h10PlantedSymlinksAreNeverFollowed() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let secret = world.home + "/.ssh/id_rsa"
        try world.makeDirectory(world.workspace + "/.vscode")
        try world.write(world.workspace + "/.vscode/tasks.json", "{}\n")
        let before = RiskyChanges.snapshot(workspace: world.workspace)
        // The agent cannot see the real home, but it can still write a link naming any host path.
        let result = try world.sh("ln -s \(secret) .envrc; rm -rf .vscode; ln -s \(world.home)/.ssh .vscode; ln -s \(world.home) .git; echo ok")
        #expect(result.output == "ok\n")
        let after = RiskyChanges.snapshot(workspace: world.workspace)
        #expect(after.files[".envrc"] == .symlink(secret), "reported as a link, not as the secret's content")
        #expect(after.files[".vscode/tasks.json"] == nil, "a linked directory is not followed")
        let changes = RiskyChanges.compare(before: before, after: after)
        #expect(!RiskyChanges.report(changes, reverted: false).contains(SandboxFixture.secretText))
        try RiskyChanges.revert(changes, workspace: world.workspace, before: before, owner: world.user)
        #expect(world.read(secret) == SandboxFixture.secretText, "the link's target is untouched")
        #expect(!FileSystem.exists(world.workspace + "/.envrc"))
        #expect(!FileSystem.exists(world.home + "/.ssh/tasks.json"), "revert wrote through a planted link")
    }
}
