import CagentCore
import CagentProfile
import Foundation
import Netlab
import Testing

/// Issue #15 item 2: keys from files named in the user's `~/.config/cagent/config.yaml` (`credentials:`),
/// read with the user's rights, passed only where the profile's env.pass (or --env) names them, never
/// printed, never in the session record, the spool or the state directory; a credential not passed is
/// named in the "not passed" line. Controls: the agent does see the passed key (the file was read), and the
/// search for the values finds them in the key files themselves (the search works).
@Suite(.serialized) struct CredentialsTests {
    static let openai = "sk-test-CANARY-openai-7f3a"
    static let anthropic = "sk-ant-CANARY-anthropic-91c2"

    final class World {
        let world: SandboxFixture
        let user: TestUser
        init() throws {
            world = try SandboxFixture()
            user = try TestUser(home: world.home)
        }
        var config: String { world.home + "/.config/cagent" }

        func enforce(_ script: String, profile: String = "cagent: 1\nagent: test\nenv:\n  pass: [OPENAI_API_KEY]\n") throws -> Netlab.Output {
            let file = world.root + "/p.yaml"
            try world.write(file, profile, owner: 0)
            _ = chown(world.workspace, user.uid, user.gid)
            return try Netlab.execute(
                [Products.cagent, "enforce", "--offline", "--profile", file, "--user", String(user.uid), "--workspace", world.workspace,
                 "--state-dir", world.state, "--", "/bin/sh", "-c", script],
                timeout: 60, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root", "CAGENT_RUNTIME_DIR": world.root + "/run"])
        }

        /// Regular files under `directory` up to 16 MiB (the shadow home's sparse image is not read: the agent wrote
        /// nothing there).
        func searchable(under directory: String) -> [String] {
            guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
            var out: [String] = []
            for case let relative as String in walker {
                let path = directory + "/" + relative
                var info = stat()
                if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= 16 << 20 { out.append(path) }
            }
            return out
        }

        /// Files under `directory` whose bytes contain `needle`.
        func files(under directory: String, containing needle: String) -> [String] {
            searchable(under: directory).filter { path in
                FileManager.default.contents(atPath: path).map { $0.range(of: Data(needle.utf8)) != nil } ?? false
            }
        }
    }

    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root (a test user, the sandbox)"))
    func keysFromTheUsersConfigPassOnlyWhereTheProfileSaysAndAreNeverStored() throws {
        try Requirements.root()
        let w = try World(); defer { w.world.remove() }
        try w.world.write(w.config + "/keys/openai", Self.openai + "\n", owner: w.user.uid)
        try w.world.write(w.config + "/keys/anthropic", Self.anthropic + "\n", owner: w.user.uid)
        try w.world.write(w.config + "/config.yaml", """
            credentials:
              OPENAI_API_KEY: {file: ~/.config/cagent/keys/openai}
              ANTHROPIC_API_KEY:
                file: \(w.config)/keys/anthropic
            """, owner: w.user.uid)
        _ = chown(w.world.home, w.user.uid, w.user.gid)
        let run = try w.enforce(#"echo "openai=$OPENAI_API_KEY"; echo "anthropic=${ANTHROPIC_API_KEY:-unset}""#)
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("openai=\(Self.openai)\n"), "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("anthropic=unset"), "\(run.stdout)")
        #expect(run.stderr.contains("cagent: from ~/.config/cagent/config.yaml: OPENAI_API_KEY\n"), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").contains { $0.hasPrefix("cagent: not passed to the agent:") && $0.contains("ANTHROPIC_API_KEY") }, "\(run.stderr)")
        for value in [Self.openai, Self.anthropic] {
            #expect(!run.stderr.contains(value), "printed: \(run.stderr)")
            // The session record, the store's spool, the shadow home's image: none holds a value.
            #expect(w.files(under: w.world.state, containing: value).isEmpty, "stored: \(w.files(under: w.world.state, containing: value))")
            #expect(w.files(under: w.world.root + "/run", containing: value).isEmpty)
            // The control: the same search finds the value in its key file.
            #expect(!w.files(under: w.config + "/keys", containing: value).isEmpty)
        }
        // The search looked at the session's record (a search over nothing would pass).
        #expect(w.searchable(under: w.world.state).contains { $0.hasSuffix(".json") }, "\(w.searchable(under: w.world.state))")
    }

    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root (a test user, the sandbox)"))
    func aKeyFileTheUserCannotReadOrInTheWorkspaceStopsTheStart() throws {
        try Requirements.root()
        let w = try World(); defer { w.world.remove() }
        // A root-only file: read with the user's rights, refused; its content never shown.
        try w.world.write(w.world.root + "/root-only", Self.openai + "\n", owner: 0)
        _ = chmod(w.world.root + "/root-only", 0o600)
        try w.world.write(w.config + "/config.yaml", "credentials:\n  OPENAI_API_KEY: {file: \(w.world.root)/root-only}\n", owner: w.user.uid)
        _ = chown(w.world.home, w.user.uid, w.user.gid)
        let denied = try w.enforce("echo agent-ran")
        #expect(denied.status == 125 && !denied.stdout.contains("agent-ran"), "\(denied.stdout) \(denied.stderr)")
        #expect(denied.stderr.contains("credentials failed: OPENAI_API_KEY: cannot read") && denied.stderr.contains("Permission denied"), "\(denied.stderr)")
        #expect(!denied.stderr.contains(Self.openai))
        // A key file in the workspace (the agent could have made it a link to anything the user can read).
        try w.world.write(w.world.workspace + "/key", Self.openai + "\n", owner: w.user.uid)
        try w.world.write(w.config + "/config.yaml", "credentials:\n  OPENAI_API_KEY: {file: \(w.world.workspace)/key}\n", owner: w.user.uid)
        let inside = try w.enforce("echo agent-ran")
        #expect(inside.status == 125 && inside.stderr.contains("is in the workspace"), "\(inside.stderr)")
        // A credential may not set a proxy variable.
        try w.world.write(w.config + "/config.yaml", "credentials:\n  HTTPS_PROXY: {file: ~/x}\n", owner: w.user.uid)
        let proxy = try w.enforce("echo agent-ran")
        #expect(proxy.status == 125 && proxy.stderr.contains("HTTPS_PROXY is not a credential"), "\(proxy.stderr)")
    }

    @Test func theConfigFormat() throws {
        let config = try UserConfig.parse("credentials:\n  A_KEY: {file: ~/k}\n  B: {file: /k}\n", file: "c.yaml")
        #expect(config.credentials == [.init(name: "A_KEY", file: "~/k"), .init(name: "B", file: "/k")])
        #expect(try UserConfig.parse("", file: "c.yaml").credentials.isEmpty)
        for bad in ["credentials:\n  A: {file: relative}\n", "credentials:\n  1A: {file: /k}\n", "keys:\n  A: {file: /k}\n",
                    "credentials:\n  A: /k\n", "credentials:\n  A: {file: /k, value: x}\n"] {
            #expect(throws: UserConfig.ConfigError.self, "\(bad)") { try UserConfig.parse(bad, file: "c.yaml") }
        }
    }
}
