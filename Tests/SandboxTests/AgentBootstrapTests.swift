import CShim
import CagentCore
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
}
