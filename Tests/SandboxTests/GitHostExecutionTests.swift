import CagentCore
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// H13 end to end, through the `cagent` binary and the user's real git afterwards: the agent plants
/// something that makes git (or another tool) run a command as the user later; the command would
/// `touch` a canary file. For every variant:
/// - positive control: the same plant made directly on the host, then the user's git command, creates
///   the canary (the plant works);
/// - `cagent enforce` without revert: the canary may appear only when the report names the plant (a
///   variant cagent prevents leaves no canary at all);
/// - `cagent enforce --revert-risky`: the canary never appears.
@Suite(.serialized) struct GitHostExecutionTests {
    struct Variant {
        var name: String
        /// Host-side, as the user, after the baseline repository exists and before the session.
        var setup = ""
        /// The agent's script in the sandbox (`$C`: the canary's path, `$W`: the workspace).
        var plant: String
        /// The user's command on the host after the session; nil: a tool cagent cannot run here (IDE,
        /// direnv), only the report and the revert are checked.
        var trigger: String?
        /// A substring of the report naming the plant.
        var reported: String
        /// cagent makes the plant impossible (the canary must be absent even without revert).
        var prevented = false
        /// The trigger needs a terminal (a pager).
        var terminal = false
        /// The workspace is not a repository at the start.
        var noRepository = false
    }

    static let fsmonitor = "printf '[core]\\n\\tfsmonitor = touch %s\\n' \"$C\""

    static let variants: [Variant] = [
        // Parser bypasses.
        Variant(name: "pager-on-section-line", plant: "printf '[core] pager = touch %s\\n' \"$C\" >> .git/config",
                trigger: "git log", reported: "core.pager", terminal: true),
        Variant(name: "fsmonitor-on-section-line", plant: "printf '[core] fsmonitor = touch %s\\n' \"$C\" >> .git/config",
                trigger: "git status", reported: "core.fsmonitor"),
        Variant(name: "huge-config", plant: "yes '# padding line of a large config' | head -c 5000000 >> .git/config && \(fsmonitor) >> .git/config",
                trigger: "git status", reported: "core.fsmonitor"),
        Variant(name: "config-symlink", plant: "cp .git/config cfg && \(fsmonitor) >> cfg && ln -sf ../cfg .git/config",
                trigger: "git status", reported: ".git/config"),
        // Other entry points.
        Variant(name: "commondir", plant: "cp -r .git common && \(fsmonitor) >> common/config && echo ../common > .git/commondir",
                trigger: "git status", reported: "commondir"),
        Variant(name: "worktree-config", plant: "git config extensions.worktreeConfig true && \(fsmonitor) > .git/config.worktree",
                trigger: "git status", reported: "core.fsmonitor"),
        Variant(name: "dotgit-symlink", plant: "mv .git real-git && ln -s real-git .git && \(fsmonitor) >> real-git/config",
                trigger: "git status", reported: ".git", prevented: true),
        Variant(name: "dotgit-gitdir-file", plant: "mv .git real-git && echo 'gitdir: real-git' > .git && \(fsmonitor) >> real-git/config",
                trigger: "git status", reported: ".git", prevented: true),
        Variant(name: "new-gitdir-file", plant: "git init -q inner && \(fsmonitor) >> inner/.git/config && echo 'gitdir: inner/.git' > .git",
                trigger: "git status", reported: ".git", noRepository: true),
        Variant(name: "include-file", setup: "git config include.path ../team.cfg && : > team.cfg",
                plant: "\(fsmonitor) >> team.cfg", trigger: "git status", reported: "core.fsmonitor"),
        Variant(name: "includeif-file", setup: "git config \"includeIf.gitdir:$W/.path\" ../cond.cfg && : > cond.cfg",
                plant: "\(fsmonitor) >> cond.cfg", trigger: "git status", reported: "core.fsmonitor"),
        // Keys the old list did not know.
        Variant(name: "alias-bang", plant: "git config alias.st \"!touch $C\"", trigger: "git st", reported: "alias.st"),
        Variant(name: "credential-helper", plant: "git config credential.helper \"!touch $C; true\"",
                trigger: "printf 'protocol=https\\nhost=example.test\\n\\n' | GIT_TERMINAL_PROMPT=0 git credential fill",
                reported: "credential.helper"),
        Variant(name: "core-pager", plant: "git config core.pager \"touch $C; cat\"", trigger: "git log", reported: "core.pager", terminal: true),
        Variant(name: "textconv", plant: "git config diff.cg.textconv \"touch $C; cat\" && echo '*.txt diff=cg' > .gitattributes && echo more >> a.txt",
                trigger: "git diff", reported: "diff.cg.textconv"),
        Variant(name: "core-editor", plant: "git config core.editor \"touch $C; true\"", trigger: "git commit -q --allow-empty",
                reported: "core.editor"),
        Variant(name: "gpg-program", plant: "printf '#!/bin/sh\\ntouch %s\\nexit 1\\n' \"$C\" > g.sh && chmod +x g.sh && git config commit.gpgsign true && git config gpg.program \"$W/g.sh\"",
                trigger: "git commit -q --allow-empty -m x", reported: "gpg.program"),
        Variant(name: "info-attributes-filter", setup: "git config filter.cg.clean cat",
                plant: "git config filter.cg.clean \"touch $C; cat\" && echo '*.txt filter=cg' > .git/info/attributes && echo more >> a.txt",
                trigger: "git add a.txt", reported: "filter.cg.clean"),
        Variant(name: "hook", plant: "printf '#!/bin/sh\\ntouch %s\\n' \"$C\" > .git/hooks/post-commit && chmod +x .git/hooks/post-commit",
                trigger: "git commit -q --allow-empty -m x", reported: "hooks/post-commit", prevented: true),
        Variant(name: "hooks-path", plant: "mkdir hk && printf '#!/bin/sh\\ntouch %s\\n' \"$C\" > hk/post-commit && chmod +x hk/post-commit && git config core.hooksPath hk",
                trigger: "git commit -q --allow-empty -m x", reported: "core.hookspath"),
        Variant(name: "hooks-path-file", setup: "mkdir hk && git config core.hooksPath hk",
                plant: "printf '#!/bin/sh\\ntouch %s\\n' \"$C\" > hk/post-commit && chmod +x hk/post-commit",
                trigger: "git commit -q --allow-empty -m x", reported: "hk/post-commit"),
        Variant(name: "submodule-config",
                setup: "git init -q ../canaries/subsrc && git -C ../canaries/subsrc commit -q --allow-empty -m s && git -c protocol.file.allow=always submodule add -q ../canaries/subsrc sub && git commit -qm sub",
                plant: "\(fsmonitor) >> .git/modules/sub/config", trigger: "cd sub && git status", reported: ".git/modules/sub/config"),
        Variant(name: "config-fifo", plant: "rm .git/config && mkfifo .git/config", trigger: nil, reported: ".git/config (not a regular file)"),
        Variant(name: "sequence-editor", plant: "git config sequence.editor \"touch $C; true\"", trigger: "git rebase -q -i --root",
                reported: "sequence.editor"),
        Variant(name: "new-repository", plant: "git init -q . && git config alias.zz \"!touch $C\"", trigger: "git zz",
                reported: "alias.zz", noRepository: true),
        // Other tools that run workspace files without being asked.
        Variant(name: "vscode-symlinked", plant: "mkdir evs && echo '{\"tasks\":[]}' > evs/tasks.json && ln -s evs .vscode",
                reported: ".vscode"),
        Variant(name: "vscode-settings", setup: "mkdir .vscode && echo '{}' > .vscode/settings.json",
                plant: "echo '{\"terminal.integrated.shell.linux\":\"/tmp/x\"}' > .vscode/settings.json", reported: ".vscode/settings.json"),
        Variant(name: "envrc", plant: "echo 'touch $C' > .envrc", reported: ".envrc"),
        Variant(name: "cargo-config", plant: "mkdir .cargo && printf '[build]\\nrustc-wrapper = \"/tmp/x\"\\n' > .cargo/config", reported: ".cargo/config"),
        Variant(name: "cargo-symlinked", plant: "mkdir cg && printf '[build]\\n' > cg/config.toml && ln -s cg .cargo", reported: ".cargo"),
        Variant(name: "idea-run-config", plant: "mkdir -p .idea/runConfigurations && echo '<component/>' > .idea/runConfigurations/x.xml",
                reported: ".idea/runConfigurations/x.xml"),
        Variant(name: "devcontainer", plant: "mkdir .devcontainer && echo '{\"postCreateCommand\":\"touch $C\"}' > .devcontainer/devcontainer.json",
                reported: ".devcontainer/devcontainer.json"),
    ]

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["git", "setpriv", "script"]), "needs root, git, setpriv, script: real sandboxes"))
    func h13HostExecutionThroughRealGit() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        try world.write(world.home + "/.gitconfig", "[user]\n\tname = Fake User\n\temail = fake@example.test\n")
        try world.makeDirectory(world.root + "/canaries")
        var failures: [String] = []
        for variant in Self.variants {
            let canary = world.root + "/canaries/" + variant.name
            // Positive control: planted directly on the host, the user's command runs it.
            try reset(world, variant)
            let planted = try asUser(world, variant.plant, canary: canary)
            if planted.status != 0 { failures.append("\(variant.name): the plant failed on the host: \(planted.output)") }
            if let trigger = variant.trigger {
                // The user's command does not know the canary: the plant carries its path.
                _ = try asUser(world, trigger, canary: "", terminal: variant.terminal)
                if !FileSystem.exists(canary) { failures.append("\(variant.name): positive control: the plant did not run") }
                unlink(canary)
            }
            for revert in [false, true] {
                try reset(world, variant)
                let session = try cagent(world, variant.plant, canary: canary, revert: revert)
                if let trigger = variant.trigger { _ = try asUser(world, trigger, canary: "", terminal: variant.terminal) }
                let ran = FileSystem.exists(canary)
                unlink(canary)
                let named = session.contains(variant.reported)
                let mode = revert ? "--revert-risky" : "no revert"
                if revert && ran { failures.append("\(variant.name) (\(mode)): the plant ran after the revert; report: \(session)") }
                if !revert && ran && !named { failures.append("\(variant.name) (\(mode)): ran unreported; report: \(session)") }
                if !variant.prevented && !named { failures.append("\(variant.name) (\(mode)): not reported (\(variant.reported)); report: \(session)") }
                if variant.prevented && ran { failures.append("\(variant.name) (\(mode)): not prevented") }
                if !revert && !variant.prevented && variant.trigger != nil && !ran {
                    failures.append("\(variant.name) (\(mode)): positive control after the session: the plant did not run")
                }
                if revert && !variant.noRepository {
                    let usable = try asUser(world, "test -f .git/config && timeout 10 git status --short", canary: "")
                    if usable.status != 0 { failures.append("\(variant.name) (\(mode)): the repository is not usable after the revert: \(usable.output)") }
                }
                if revert && variant.trigger == nil {
                    let after = try asUser(world, "ls -A", canary: canary).output
                    for name in [".vscode", ".envrc", ".cargo", ".idea", ".devcontainer"] where after.split(separator: "\n").contains(Substring(name)) {
                        if !variant.setup.contains(name) { failures.append("\(variant.name) (\(mode)): \(name) not put back: \(after)") }
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures:\n\(failures.joined(separator: "\n"))")
    }

    /// `cagent learn` leaves the workspace writable too: the same pinning, check and revert.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["git", "setpriv", "ip", "nft", "dnsmasq"]), "needs root, git, setpriv and the netlab tools"))
    func h13LearnSessionGetsTheSameCheck() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let lab = try Netlab()
        defer { lab.shutdown() }
        try world.write(world.home + "/.gitconfig", "[user]\n\tname = Fake User\n\temail = fake@example.test\n")
        try world.makeDirectory(world.root + "/canaries")
        let canary = world.root + "/canaries/learn"
        let variant = Variant(name: "learn", plant: "mv .git moved 2>&1; echo mv=$?; git config alias.st \"!touch $C\"",
                              trigger: "git st", reported: "alias.st")
        for revert in [false, true] {
            try reset(world, variant)
            let run = try lab.run(in: .host, [Products.cagent, "learn", "--quiet", "--user", String(SandboxFixture.agentUID),
                                              "--home", world.home, "--state-dir", world.state, "--db", world.root + "/learn.db",
                                              "--workspace", world.workspace, "--tracer", "seccomp"] + (revert ? ["--revert-risky"] : [])
                                              + ["--", "/bin/sh", "-c", "export C=\"$0\"; \(variant.plant)", canary], timeout: 120)
            #expect(run.stdout.contains("Device or resource busy") && !run.stdout.contains("mv=0"), ".git pinned: \(run.stdout) \(run.stderr)")
            #expect(run.stderr.contains("alias.st"), "not reported: \(run.stderr)")
            _ = try asUser(world, "git st", canary: "")
            #expect(FileSystem.exists(canary) == !revert, revert ? "ran after the revert" : "positive control: the plant runs without revert")
            unlink(canary)
        }
    }

    /// A fresh workspace: a repository with one commit (unless the variant starts without one), then the
    /// variant's setup, all as the user.
    func reset(_ world: SandboxFixture, _ variant: Variant) throws {
        var script = "rm -rf ../canaries/subsrc && find . -mindepth 1 -delete && echo hi > a.txt"
        if !variant.noRepository { script += " && git init -q . && git add a.txt && git commit -qm init" }
        if !variant.setup.isEmpty { script += " && " + variant.setup }
        let result = try asUser(world, script, canary: "")
        if result.status != 0 { throw CagentError(stage: "test", "reset \(variant.name): \(result.output)") }
    }

    /// Runs a shell script on the host as the user, in the workspace, with the test HOME (its real global
    /// git config); `terminal` runs it under script(1) so that git starts its pager.
    func asUser(_ world: SandboxFixture, _ script: String, canary: String, terminal: Bool = false) throws -> (status: Int32, output: String) {
        let outPath = world.root + "/.user-out"
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        let command = terminal ? ["/usr/bin/script", "-qec", script, "/dev/null"] : ["/bin/sh", "-c", script]
        process.arguments = ["--reuid", String(SandboxFixture.agentUID), "--regid", String(SandboxFixture.agentUID), "--clear-groups",
                             "/bin/sh", "-c", "cd \"$W\" && exec \"$@\"", "sh"] + command
        process.environment = ["HOME": world.home, "PATH": "/usr/bin:/bin", "C": canary, "W": world.workspace, "TERM": "dumb",
                               "GIT_PAGER": "", "PAGER": "cat"].filter { !$0.value.isEmpty }
        process.outputPath = outPath
        process.errorPath = outPath
        try process.run()
        process.waitUntilExit(timeout: 60)
        defer { unlink(outPath) }
        return (process.terminationStatus, world.read(outPath) ?? "")
    }

    /// One `cagent enforce` session running the plant; returns its stderr (the report).
    func cagent(_ world: SandboxFixture, _ plant: String, canary: String, revert: Bool) throws -> String {
        let errPath = world.root + "/.cagent-err"
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: Products.cagent)
        process.arguments = ["enforce", "--profile", "default", "--user", String(SandboxFixture.agentUID),
                             "--workspace", world.workspace, "--state-dir", world.state, "--offline"]
            + (revert ? ["--revert-risky"] : []) + ["--", "/bin/sh", "-c", "export C=\"$0\" W=\"$1\"; \(plant); true", canary, world.workspace]
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        process.environment = environment
        process.outputPath = world.root + "/.cagent-out"
        process.errorPath = errPath
        try process.run()
        process.waitUntilExit(timeout: 120)
        defer { unlink(errPath); unlink(world.root + "/.cagent-out") }
        return world.read(errPath) ?? ""
    }
}
