import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// cagent's own surface (issue #17 §8): its state and store belong to the user alone, its policy files are never
/// writable from inside a sandbox (H22), no secret it is handed lands in its logs or store, and what the agent
/// names reaches the terminal escaped. Real sandboxes, as root, agent uid 1000.
@Suite(.serialized) struct OwnSurfaceTests {
    /// H22: a profile granting `write: [~/.config, ~/.local/share]` (tools keep their state there) must not open
    /// cagent's own places under them: the trust store, the user's profiles, the database. Control: another file
    /// in the same writable trees is written through to the host.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func h22PolicyFilesAreNotWritableFromInside() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let config = world.home + "/.config/cagent", data = world.home + "/.local/share/cagent"
        let owned = [config + "/trusted-profiles": "sha256:00 /ws/.cagent/project.yaml\n",
                     config + "/profiles/mine.yaml": "cagent: 1\nnetwork:\n  domains: [allowed.test]\n",
                     data + "/cagent.db": "not really a database\n"]
        for (path, text) in owned { try world.write(path, text) }
        try world.makeDirectory(world.home + "/.config/tool")
        try world.makeDirectory(world.home + "/.local/share/tool")
        let profile = Profile(agent: "test", filesystem: .init(write: ["~/.config", "~/.local/share"]))
        let request = EnforceRequest(profile: profile, workspace: world.workspace, user: world.user,
                                     paths: CagentPaths(runtime: world.root + "/run", data: data, config: config),
                                     command: ["/bin/sh", "-c", """
                                        for f in "$HOME/.config/cagent/trusted-profiles" "$HOME/.config/cagent/profiles/mine.yaml" \
                                                 "$HOME/.local/share/cagent/cagent.db" "$HOME/.config/cagent/profiles/new.yaml"; do
                                          echo 'network: {domains: ["**.attacker.test"]}' >> "$f" 2>/dev/null && echo "wrote $f"
                                        done
                                        echo control > "$HOME/.config/tool/state" && echo control > "$HOME/.local/share/tool/state" && echo controls-written
                                        """],
                                     environment: ProcessEnvironment.current)
        let outcome = try world.run(try EnforcePlanner.plan(request))
        // Control: the writable trees really are the host's, and the probe ran.
        #expect(outcome.output.contains("controls-written"), "the probe did not run: \(outcome.output) \(outcome.error)")
        #expect(world.read(world.home + "/.config/tool/state") == "control\n")
        #expect(world.read(world.home + "/.local/share/tool/state") == "control\n")
        // The attack: cagent's places unchanged on the host, nothing new among the profiles.
        for (path, text) in owned { #expect(world.read(path) == text, "\(path) was changed from inside the sandbox") }
        #expect(!FileManager.default.fileExists(atPath: config + "/profiles/new.yaml"), "a profile was created from inside")
        #expect(!outcome.output.contains("wrote "), "the agent wrote cagent's files: \(outcome.output)")
    }

    // MARK: the binary end to end (`cagent enforce`, then `cagent-full sessions` recording its spool)

    /// `cagent enforce --state-dir STATE` as root for uid 1000, then `sessions` under simulated sudo, which takes
    /// the session out of the spool into the database.
    func enforceThenRecord(_ world: SandboxFixture, state: String, script: String, arguments: [String] = [],
                           environment extra: [String: String] = [:]) throws -> (enforce: Netlab.Output, sessions: Netlab.Output) {
        var environment = ["PATH": "/usr/bin:/bin", "HOME": world.home, "LANG": "C.UTF-8"]
        for (name, value) in extra { environment[name] = value }
        let enforce = try Netlab.execute([Products.cagent, "enforce", "--profile", "default", "--user", String(SandboxFixture.agentUID),
                                          "--workspace", world.workspace, "--state-dir", state, "--offline"] + arguments
                                         + ["--", "/bin/sh", "-c", script], timeout: 120, environment: environment)
        let name = getpwuid(SandboxFixture.agentUID).map { String(cString: $0.pointee.pw_name) } ?? "agent"
        let sudo = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(SandboxFixture.agentUID),
                    "SUDO_GID": String(SandboxFixture.agentUID), "SUDO_USER": name, "SUDO_COMMAND": "cagent"]
        // `sessions` reads an existing store only: an (empty) import creates it, as the user.
        try world.write(world.root + "/empty.jsonl", "")
        let created = try Netlab.execute([Products.directory + "/cagent-full", "import", "tracee", world.root + "/empty.jsonl",
                                          "--db", state + "/cagent.db"], timeout: 60, environment: sudo)
        #expect(created.status == 0, "import: \(created.stderr)")
        let sessions = try Netlab.execute([Products.directory + "/cagent-full", "sessions", "--db", state + "/cagent.db"], timeout: 60,
                                          environment: sudo)
        return (enforce, sessions)
    }

    /// Every entry under `directory`, not following links, with its lstat.
    func walk(_ directory: String) -> [(path: String, info: stat)] {
        var out: [(String, stat)] = []
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return out }
        for name in entries {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            out.append((path, info))
            if info.st_mode & S_IFMT == S_IFDIR { out += walk(path) }
        }
        return out
    }

    /// The state directory and the database (with its -wal/-shm and spool) are the user's, mode 0600/0700: no
    /// other local user reads which hosts and files a session touched, or the shadow home's image.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func stateAndStoreBelongToTheUserAlone() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let state = world.root + "/state"
        let (enforce, sessions) = try enforceThenRecord(world, state: state, script: "echo hello > note.txt")
        #expect(enforce.status == 0, "enforce: \(enforce.stderr)")
        #expect(sessions.status == 0, "sessions: \(sessions.stderr)")
        var info = stat()
        #expect(lstat(state, &info) == 0 && info.st_uid == SandboxFixture.agentUID && info.st_mode & 0o077 == 0,
                "the state directory: uid \(info.st_uid) mode \(String(info.st_mode & 0o777, radix: 8))")
        let entries = walk(state)
        let names = entries.map { String($0.path.dropFirst(state.count + 1)) }
        // The walk must have found what a session leaves, or it proves nothing.
        #expect(names.contains("cagent.db"), "no database: \(names)")
        #expect(names.contains { $0.hasPrefix("sessions/") && $0.hasSuffix("-network.json") }, "no session list: \(names)")
        #expect(names.contains { $0.hasPrefix("homes/") && $0.hasSuffix(".img") }, "no shadow home: \(names)")
        #expect(sessions.stdout.contains("enforce"), "the spooled session reached the store: \(sessions.stdout)")
        for (path, info) in entries {
            // Disk images stay root's (0600): the user must not rewrite an ext4 image while the kernel has it mounted.
            let image = path.hasSuffix(".img") && info.st_mode & S_IFMT == S_IFREG
            #expect(info.st_uid == (image ? 0 : SandboxFixture.agentUID), "\(path) owned by uid \(info.st_uid)")
            #expect(info.st_mode & 0o077 == 0, "\(path) has mode \(String(info.st_mode & 0o777, radix: 8))")
        }
    }

    /// No secret cagent is handed (the host's environment, a variable passed on purpose) is written to its output,
    /// its session files or its database, even with --debug. Control: the passed variable does reach the agent.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func noSecretReachesLogsOrStore() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let state = world.root + "/state"
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let secrets = ["DATABASE_URL": "postgres://app:canary-db-\(tag)@db.internal/app", "GITHUB_TOKEN": "canary-gh-\(tag)",
                       "PASSED_TOKEN": "canary-passed-\(tag)"]
        let (enforce, sessions) = try enforceThenRecord(world, state: state,
                                                        script: #"printf %s "$PASSED_TOKEN" > passed.txt; printf %s "$GITHUB_TOKEN" > dropped.txt"#,
                                                        arguments: ["--env", "PASSED_TOKEN", "--debug"], environment: secrets)
        #expect(enforce.status == 0, "enforce: \(enforce.stderr)")
        #expect(sessions.status == 0, "sessions: \(sessions.stderr)")
        // Control: cagent held the secrets (one passed on purpose arrives; the other is dropped, named).
        #expect(world.read(world.workspace + "/passed.txt") == secrets["PASSED_TOKEN"])
        #expect(world.read(world.workspace + "/dropped.txt") == "")
        #expect(enforce.stderr.contains("GITHUB_TOKEN"), "the dropped name is announced: \(enforce.stderr)")
        var places: [(String, String)] = [("enforce output", enforce.stdout + enforce.stderr), ("sessions output", sessions.stdout + sessions.stderr)]
        let files = walk(state).filter { $0.info.st_mode & S_IFMT == S_IFREG && !$0.path.hasSuffix(".img") }
        #expect(files.contains { $0.path.hasSuffix("/cagent.db") }, "the database was not written")
        for (path, _) in files {
            places.append((path, String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)))
        }
        for (place, text) in places {
            for (name, value) in secrets { #expect(!text.contains(value), "\(name)'s value is in \(place)") }
        }
    }

    /// Names the agent chooses (files it leaves for the end-of-session report) reach the user's terminal escaped:
    /// no ESC or BEL from them in cagent's own output. Control: the report names the file.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func agentChosenNamesAreEscapedInCagentsOutput() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let state = world.root + "/state"
        // The agent prints nothing itself (its own output is the terminal's business: docs/security.md).
        let script = #"mkdir -p .vscode && : > ".vscode/$(printf 'x\033]0;PWNED\007\033[2J')tasks.json" && printf 'echo hi' > "$(printf '.envrc')""#
        let (enforce, sessions) = try enforceThenRecord(world, state: state, script: script)
        #expect(enforce.status == 0, "enforce: \(enforce.stderr)")
        #expect(enforce.stderr.contains(".vscode/x"), "the report did not name the file (control): \(enforce.stderr)")
        for (place, text) in [("enforce", enforce.stdout + enforce.stderr), ("sessions", sessions.stdout + sessions.stderr)] {
            #expect(!text.utf8.contains(0x1B) && !text.utf8.contains(0x07), "raw escape in \(place)'s output: \(text.debugDescription)")
        }
    }
}
