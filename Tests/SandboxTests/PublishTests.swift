import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent enforce --publish PORT` (issue #15 item 5): an OAuth callback to localhost:PORT. The agent listens
/// on its own localhost on PORT and on PORT+1; from the host (the netlab's host namespace, where cagent runs),
/// 127.0.0.1:PORT reaches the agent's listener and PORT+1 does not. Controls: inside the sandbox PORT+1 is
/// open (the agent reaches it), and without --publish PORT itself is unreachable from the host.
@Suite(.serialized) struct PublishTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "tcpdump", "python3"]
    static let port = 8085

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root and the netlab's tools"))
    func onlyThePublishedPortReachesTheSandbox() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/p.yaml"
        try world.write(profile, "cagent: 1\nagent: test\n", owner: 0)
        let agent = """
            import os, socket, time
            P = \(Self.port)
            listeners = []
            for port in (P, P + 1):
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", port)); s.listen(4)
                listeners.append(s)
            c = socket.create_connection(("127.0.0.1", P + 1), 3); print("inside-other-open", flush=True); c.close()
            open("ready", "w").close()
            listeners[0].settimeout(0.1)
            deadline = time.time() + 30
            while not os.path.exists("done") and time.time() < deadline:
                try:
                    conn, _ = listeners[0].accept()
                except socket.timeout:
                    continue
                request = conn.recv(4096).decode()
                conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\ngot " + request.split()[1].encode())
                conn.close()
                print("served", flush=True)
            print("agent-done", flush=True)
            """
        try world.write(world.workspace + "/agent.py", agent)

        func session(publish: Bool, probe: () throws -> Void) throws -> (status: Int32, out: String, err: String) {
            for name in ["ready", "done"] { unlink(world.workspace + "/" + name) }
            let out = world.root + "/out-\(publish)", err = world.root + "/err-\(publish)"
            let process = try SpawnedProcess.start(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4] + (publish ? ["--publish", String(Self.port)] : [])
                    + ["--", "/usr/bin/python3", "agent.py"],
                stdout: out, stderr: err,
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home, "CAGENT_RUNTIME_DIR": world.root + "/run"])
            let deadline = Date().addingTimeInterval(30)
            while !FileManager.default.fileExists(atPath: world.workspace + "/ready") && Date() < deadline { usleep(50_000) }
            try probe()
            _ = FileManager.default.createFile(atPath: world.workspace + "/done", contents: nil)
            let status = process.wait(timeout: 60)
            return (status, world.read(out) ?? "", world.read(err) ?? "")
        }
        func curl(_ port: Int) throws -> Netlab.Output {
            try lab.run(in: .host, ["curl", "-sS", "-m", "3", "http://127.0.0.1:\(port)/callback?code=abc"])
        }

        var callback: Netlab.Output?, other: Netlab.Output?
        let published = try session(publish: true) {
            callback = try curl(Self.port)
            other = try curl(Self.port + 1)
        }
        #expect(published.status == 0, "\(published.out) \(published.err)")
        #expect(published.err.contains("cagent: --publish: 127.0.0.1:\(Self.port) on this host reaches the sandbox's localhost:\(Self.port)"), "\(published.err)")
        #expect(published.out.contains("inside-other-open") && published.out.contains("served"), "\(published.out) \(published.err)")
        #expect(callback?.stdout == "got /callback?code=abc", "\(String(describing: callback))")
        // The other port the agent listens on stays unreachable from the host (curl 7: connection refused).
        #expect(other?.status == 7 && other?.stdout == "", "\(String(describing: other))")

        // Control: without --publish the callback port is unreachable from the host too.
        var unpublished: Netlab.Output?
        let plain = try session(publish: false) { unpublished = try curl(Self.port) }
        #expect(plain.out.contains("inside-other-open") && plain.out.contains("agent-done") && !plain.out.contains("served"), "\(plain.out) \(plain.err)")
        #expect(unpublished?.status == 7, "\(String(describing: unpublished))")
    }

    /// A port already in use on the host stops the start (exit 125) before a sandbox exists, with a hint.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root and the netlab's tools"))
    func aBusyPortStopsTheStart() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/p.yaml"
        try world.write(profile, "cagent: 1\nagent: test\n", owner: 0)
        try lab.spawn(in: .host, ["python3", "-u", "-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', \(Self.port))); s.listen(); print('bound', flush=True); time.sleep(60)"], readyOnStdout: "bound")
        let run = try Netlab.execute(
            ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
             "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
             "--upstream-dns", NetlabAddresses.dns4, "--publish", String(Self.port), "--", "/bin/echo", "agent-ran"],
            timeout: 60, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": world.home, "CAGENT_RUNTIME_DIR": world.root + "/run"])
        #expect(run.status == 125, "\(run.stdout) \(run.stderr)")
        #expect(!run.stdout.contains("agent-ran"))
        #expect(run.stderr.contains("cannot listen on 127.0.0.1:\(Self.port)") && run.stderr.contains("hint:"), "\(run.stderr)")
    }
}
