import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Pure logic: git's `-z` listing and the inert-key list (no root needed).
@Suite struct GitConfigTests {
    @Test func parsesGitsListing() {
        let bytes = Array("local\u{0}file:/w/.git/config\u{0}core.bare\nfalse\u{0}local\u{0}file:/w/x.cfg\u{0}alias.st\n!touch a\nb\u{0}local\u{0}file:/w/.git/config\u{0}core.flag\u{0}".utf8)
        let entries = GitConfigView.parse(bytes)
        #expect(entries.map(\.key) == ["core.bare", "alias.st", "core.flag"])
        #expect(entries[1].value == "!touch a\nb" && entries[1].origin == "file:/w/x.cfg" && entries[1].scope == "local")
        #expect(entries[2].value == "")
    }

    @Test func onlyPlainKeysAreInert() {
        for (key, value) in [("user.name", "x"), ("remote.origin.url", "https://example.test/r.git"), ("remote.o.fetch", "+refs/heads/*:refs/remotes/o/*"),
                             ("branch.main.merge", "refs/heads/main"), ("core.repositoryformatversion", "0"), ("core.bare", "false")] {
            #expect(GitConfigView.isInert(key: key, value: value), "\(key)")
        }
        for (key, value) in [("core.pager", "less"), ("alias.st", "!x"), ("credential.helper", "x"), ("diff.x.textconv", "x"),
                             ("remote.origin.url", "ext::sh -c x"), ("remote.origin.url", "--upload-pack=x"), ("remote.o.uploadpack", "x"),
                             ("include.path", "x"), ("includeif.gitdir:/w/.path", "x"), ("extensions.worktreeconfig", "true"),
                             ("core.hookspath", "x"), ("core.fsmonitor", "x"), ("core.editor", "x"), ("gpg.program", "x")] {
            #expect(!GitConfigView.isInert(key: key, value: value), "\(key) = \(value)")
        }
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
        let configBefore = world.read(world.workspace + "/.git/config")
        let before = RiskyChanges.snapshot(workspace: world.workspace, user: world.user)
        #expect(before.git != nil, "positive control: git's view was read")
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
        let after = RiskyChanges.snapshot(workspace: world.workspace, user: world.user, alsoWalk: before.roots)
        let changes = RiskyChanges.compare(before: before, after: after)
        let summaries = changes.map(\.summary)
        for expected in ["core.hookspath", "core.fsmonitor", "filter.x.smudge", "core.sshcommand", "diff.external"] {
            #expect(summaries.contains { $0.contains(expected) }, "\(expected) not reported: \(summaries)")
        }
        for file in [".envrc", ".vscode/tasks.json", ".cargo/config.toml", ".npmrc"] {
            #expect(summaries.contains { $0.hasSuffix(file) }, "\(file) not reported: \(summaries)")
        }
        #expect(!summaries.contains { $0.contains("user.name") })

        let errors = RiskyChanges.revert(changes, workspace: world.workspace, before: before, after: after, owner: world.user)
        #expect(errors.isEmpty, "\(errors)")
        let reverted = RiskyChanges.snapshot(workspace: world.workspace, user: world.user, alsoWalk: before.roots)
        #expect(RiskyChanges.compare(before: before, after: reverted).isEmpty)
        #expect(!FileSystem.exists(world.workspace + "/.envrc"))
        #expect(world.read(world.workspace + "/.npmrc") == "registry=https://registry.example.test/\n")
        #expect(world.read(world.workspace + "/.git/config") == configBefore, "the control files are back to their start state")
        var info = stat()
        #expect(stat(world.workspace + "/.git/config", &info) == 0 && info.st_uid == SandboxFixture.agentUID)
    }

    /// git's view runs nothing while computing the configuration, runs as the user (a root-only include
    /// stays unread), and a FIFO planted as an include cannot hang cagent.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["git"]), "needs root and git"))
    func gitViewExecutesNothingAndRunsAsTheUser() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let canary = world.root + "/canaries/view"
        try world.makeDirectory(world.root + "/canaries")
        let rootOnly = world.root + "/root-only.cfg"
        try world.write(rootOnly, "[secret]\n\tvalue = ROOT-ONLY\n", owner: 0)
        chmod(rootOnly, 0o600)
        let touch = "touch \(canary)"
        try world.write(world.workspace + "/.git/HEAD", "ref: refs/heads/main\n")
        try world.makeDirectory(world.workspace + "/.git/objects")
        try world.makeDirectory(world.workspace + "/.git/refs")
        try world.write(world.workspace + "/.git/config", """
        [core]
        \trepositoryformatversion = 0
        \tfsmonitor = \(touch)
        \tpager = \(touch)
        \teditor = \(touch)
        \tsshCommand = \(touch)
        [alias]
        \tconfig = !\(touch)
        [credential]
        \thelper = !\(touch)
        [includeIf "onbranch:main"]
        \tpath = inc.cfg
        [include]
        \tpath = \(world.workspace)/team.cfg

        """)
        try world.write(world.workspace + "/.git/inc.cfg", "[user]\n\tname = from-onbranch\n")
        try world.write(world.workspace + "/team.cfg", "[user]\n\temail = team@example.test\n")
        guard case let .entries(entries) = GitConfigView.read(workspace: world.workspace, user: world.user) else {
            Issue.record("git's view failed"); return
        }
        #expect(entries.contains { $0.key == "user.name" && $0.value == "from-onbranch" }, "positive control: includes are followed")
        #expect(entries.contains { $0.key == "user.email" && $0.origin.hasSuffix("/team.cfg") })
        #expect(entries.contains { $0.key == "core.fsmonitor" })
        #expect(!FileSystem.exists(canary), "git config ran a configured program")
        // Positive control for the canary: the same repository's `git status` as the user does run it.
        let status = TestProcess()
        status.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        status.arguments = ["--reuid", "1000", "--regid", "1000", "--clear-groups", "/usr/bin/git", "-C", world.workspace, "status"]
        status.environment = ["HOME": world.home, "PATH": "/usr/bin:/bin"]
        try status.run(); status.waitUntilExit()
        #expect(FileSystem.exists(canary), "positive control: core.fsmonitor runs on git status")
        unlink(canary)
        // As the user: a root-only include cannot be read (git fails: a finding), its content never shows.
        try world.write(world.workspace + "/team.cfg", "[include]\n\tpath = \(rootOnly)\n")
        let denied = GitConfigView.read(workspace: world.workspace, user: world.user)
        guard case let .failed(reason) = denied else { Issue.record("read with root's rights: \(denied)"); return }
        #expect(reason.contains("Permission denied") && !reason.contains("ROOT-ONLY"), "\(reason)")
        #expect(!FileSystem.exists(canary), "git config ran a configured program")
        // A FIFO as an include: bounded by the timeout, a failure (a finding), never a hang.
        unlink(world.workspace + "/team.cfg")
        mkfifo(world.workspace + "/team.cfg", 0o644)
        chown(world.workspace + "/team.cfg", 1000, 1000)
        let started = Date()
        guard case let .failed(message) = GitConfigView.read(workspace: world.workspace, user: world.user, timeoutMilliseconds: 1000) else {
            Issue.record("a FIFO include did not fail"); return
        }
        #expect(message.contains("did not finish") && Date().timeIntervalSince(started) < 5, "\(message)")
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
        let before = RiskyChanges.snapshot(workspace: world.workspace, user: world.user)
        // The agent cannot see the real home, but it can still write a link naming any host path.
        let result = try world.sh("ln -s \(secret) .envrc; rm -rf .vscode; ln -s \(world.home)/.ssh .vscode; ln -s \(world.home) .git; echo ok")
        #expect(result.output == "ok\n")
        let after = RiskyChanges.snapshot(workspace: world.workspace, user: world.user, alsoWalk: before.roots)
        #expect(after.nodes[".envrc"] == .symlink(secret), "reported as a link, not as the secret's content")
        #expect(after.nodes[".vscode"] == .symlink(world.home + "/.ssh"), "the linked directory is a finding")
        #expect(after.nodes[".vscode/tasks.json"] == nil, "a linked directory is not followed")
        let changes = RiskyChanges.compare(before: before, after: after)
        #expect(!RiskyChanges.report(changes, reverted: false).contains(SandboxFixture.secretText))
        let errors = RiskyChanges.revert(changes, workspace: world.workspace, before: before, after: after, owner: world.user)
        #expect(errors.isEmpty, "\(errors)")
        #expect(world.read(world.workspace + "/.vscode/tasks.json") == "{}\n", "the directory is back")
        #expect(world.read(secret) == SandboxFixture.secretText, "the link's target is untouched")
        #expect(!FileSystem.exists(world.workspace + "/.envrc"))
        #expect(!FileSystem.exists(world.home + "/.ssh/tasks.json"), "revert wrote through a planted link")
    }
}
