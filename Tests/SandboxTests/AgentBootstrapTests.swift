import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #15 item 1: agents installed in the home (a venv, pipx, uv tools, nvm) or in /tmp are hidden by the
/// shadow home and the private /tmp; enforce failed with `exec-agent failed: ENOENT` without saying why.
/// cagent now resolves the command as the user before the sandbox is built and maps the smallest tree that
/// runs it read-only.
@Suite("agent bootstrap", .serialized)
struct AgentBootstrapTests {
    static var mayRun: Bool { Requirements.mayRun(root: true, tools: ["useradd", "userdel"]) }

    /// A test user whose home holds a venv made by `python3 -m venv --without-pip` and a script whose `#!` is
    /// the venv's python.
    final class World {
        let root: String
        let home: String
        let workspace: String
        let state: String
        let user: TestUser
        let marker = "AGENT-RAN-\(UInt64.random(in: 0...UInt64.max))"

        init() throws {
            var template = Array("/tmp/cgab-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CagentError.system("test", "mkdtemp") }
            root = String(cString: made)
            chmod(root, 0o755)
            home = root + "/home"
            workspace = root + "/ws"
            state = root + "/state"
            user = try TestUser(home: home)
            for directory in [home, workspace] {
                mkdir(directory, 0o755)
                chown(directory, user.uid, user.gid)
            }
        }

        /// `~/.venvs/tool` with `bin/agent-tool` run by the venv's python.
        func makeVenv() throws -> String {
            let venv = home + "/.venvs/tool"
            let made = try Netlab.execute(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], timeout: 60)
            guard made.status == 0 else { throw CagentError(stage: "test", "venv: \(made.stderr)") }
            let script = venv + "/bin/agent-tool"
            try "#!\(venv)/bin/python\nimport sys\nprint('\(marker)', sys.prefix)\n".write(toFile: script, atomically: false, encoding: .utf8)
            chmod(script, 0o755)
            _ = try Netlab.execute(["/bin/chown", "-R", "\(user.uid):\(user.gid)", home], timeout: 30)
            return script
        }

        func enforce(_ command: [String], path: String = "/usr/bin:/bin") throws -> Netlab.Output {
            try Netlab.execute([Products.cagent, "enforce", "--profile", "default", "--user", String(user.uid),
                                "--workspace", workspace, "--state-dir", state, "--offline", "--"] + command,
                               timeout: 60, environment: ["PATH": path, "HOME": "/root"])
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The venv's script runs under enforce, by path and by name on the user's PATH; the venv is mapped
    /// read-only and the start says so.
    @Test(.enabled(if: Self.mayRun, "needs root and useradd"))
    func venvAgentRunsUnderEnforce() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        let script = try world.makeVenv()
        // Positive control: the script runs on the host.
        let host = try Netlab.execute([script], timeout: 30)
        #expect(host.stdout.contains(world.marker), "\(host.stderr)")

        let byPath = try world.enforce([script])
        #expect(byPath.status == 0, "\(byPath.stderr)")
        #expect(byPath.stdout.contains(world.marker), "\(byPath.stdout) \(byPath.stderr)")
        #expect(byPath.stderr.contains("cagent: the agent lives in ~/.venvs/tool: mapped read-only"), "\(byPath.stderr)")

        let byName = try world.enforce(["agent-tool"], path: world.home + "/.venvs/tool/bin:/usr/bin:/bin")
        #expect(byName.status == 0, "\(byName.stderr)")
        #expect(byName.stdout.contains(world.marker), "\(byName.stdout) \(byName.stderr)")
        // The venv is read-only in the sandbox.
        let write = try world.enforce(["/bin/sh", "-c", "echo x > '\(world.home)/.venvs/tool/bin/planted' && echo WROTE; "
                                       + "'\(script)'"])
        #expect(!write.stdout.contains("WROTE"), "\(write.stdout)")
    }

    /// A program under a hidden path is never mapped: the error says where it lives and what to do.
    @Test(.enabled(if: Self.mayRun, "needs root and useradd"))
    func agentUnderHiddenPathGetsAnError() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        let tool = world.home + "/.ssh/bin/tool"
        mkdir(world.home + "/.ssh", 0o700)
        mkdir(world.home + "/.ssh/bin", 0o755)
        try "#!/bin/sh\necho \(world.marker)\n".write(toFile: tool, atomically: false, encoding: .utf8)
        chmod(tool, 0o755)
        _ = try Netlab.execute(["/bin/chown", "-R", "\(world.user.uid):\(world.user.gid)", world.home], timeout: 30)
        let run = try world.enforce([tool])
        #expect(run.status != 0)
        #expect(!run.stdout.contains(world.marker))
        #expect(run.stderr.contains("~/.ssh") && run.stderr.contains("hidden"), "\(run.stderr)")
    }

    /// The layouts user installers make, resolved without a sandbox: what is mapped and what runs.
    @Test func installerLayouts() throws {
        var template = Array("/tmp/cgab-layout-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let home = root + "/home"
        func file(_ path: String, _ text: String, executable: Bool = true) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, executable ? 0o755 : 0o644)
        }
        func link(_ path: String, _ target: String) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            symlink(target, path)
        }
        func resolve(_ command: String, path: String = "/usr/bin:/bin") throws -> AgentBootstrap.Resolution {
            try AgentBootstrap.resolve(command: [command, "--flag"], path: path, home: home, view: [("/usr", true), ("/bin", true), ("/tmp", false)],
                                       hidden: [home + "/.ssh", home + "/.aws"], identity: nil)
        }

        // uv tool: ~/.local/bin/aider -> the tool's venv, whose python links into a uv-managed python.
        let tool = home + "/.local/share/uv/tools/aider-chat", python = home + "/.local/share/uv/python/cpython-3.12-linux"
        try file(python + "/bin/python3.12", "ELF")
        try FileManager.default.createDirectory(atPath: python + "/lib/python3.12", withIntermediateDirectories: true)
        try file(tool + "/pyvenv.cfg", "home = \(python)/bin\n", executable: false)
        try link(tool + "/bin/python", python + "/bin/python3.12")
        try file(tool + "/bin/aider", "#!\(tool)/bin/python\nimport aider\n")
        try link(home + "/.local/bin/aider", tool + "/bin/aider")
        let uv = try resolve("aider")   // not on PATH (sudo's secure_path): found in ~/.local/bin
        #expect(Set(uv.mapped) == [tool, python], "\(uv.mapped)")
        #expect(uv.command == [tool + "/bin/aider", "--flag"])

        // nvm: the node prefix holds node and the package; the script runs through `env node`.
        let node = home + "/.nvm/versions/node/v20.11.0"
        try file(node + "/bin/node", "ELF")
        try file(node + "/lib/node_modules/agent/cli.js", "#!/usr/bin/env node\n")
        try link(node + "/bin/agent", "../lib/node_modules/agent/cli.js")
        let nvm = try resolve("agent", path: node + "/bin:/usr/bin:/bin")
        #expect(nvm.mapped == [node] && nvm.command == ["agent", "--flag"], "\(nvm)")

        // A single binary in /tmp: the file alone.
        let binary = root + "/tmpbin/tool"
        try file(binary, "ELF")
        let single = try resolve(binary)
        #expect(single.mapped == [binary] && single.command == [binary, "--flag"], "\(single)")

        // A system program: nothing to do.
        let system = try resolve("sh")
        #expect(system.mapped.isEmpty && system.command == ["sh", "--flag"])

        // Under a hidden path, or run by an interpreter there: refused, naming the place.
        try file(home + "/.aws/bin/helper", "ELF")
        #expect(throws: CagentError.self) { try resolve(home + "/.aws/bin/helper") }
        try file(root + "/tmpbin/wrapped", "#!\(home)/.ssh/interp\n")
        try file(home + "/.ssh/interp", "ELF")
        do {
            _ = try resolve(root + "/tmpbin/wrapped")
            Issue.record("an interpreter under ~/.ssh was accepted")
        } catch let error as CagentError {
            #expect(error.message.contains("its interpreter ~/.ssh/interp lives under ~/.ssh"), "\(error)")
        }
    }

    /// A tool in /tmp (private in both modes) runs in enforce and in learn: the file is mapped read-only.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func toolInTmpRunsInBothModes() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let marker = "TMP-TOOL-\(UInt64.random(in: 0...UInt64.max))"
        let tool = world.root + "/tools/agent"
        try world.write(tool, "#!/bin/sh\necho \(marker)\n")
        chmod(tool, 0o755)
        let enforce = try world.plan([tool])
        #expect(enforce.agentMapped == [tool])
        let ran = try world.run(enforce)
        #expect(ran.status == 0 && ran.output.contains(marker), "enforce: \(ran.error)")
        let request = LearnRequest(profile: .init(agent: "t"), workspace: world.workspace, user: world.user, paths: world.paths,
                                   command: [tool], environment: ["PATH": "/usr/bin:/bin"], sessionID: "ab\(UInt32.random(in: 0...UInt32.max))")
        let learn = try LearnPlanner.plan(request)
        #expect(learn.agentMapped == [tool])
        let learned = try world.run(learn)
        #expect(learned.status == 0 && learned.output.contains(marker), "learn: \(learned.error)")
    }
}
