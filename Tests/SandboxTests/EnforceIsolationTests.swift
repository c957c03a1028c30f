import CagentCore
import Foundation
import Netlab
import Testing

/// Issue #12 §3 end to end: two `cagent enforce` sessions at once in the netlab's simulated host. B's agent
/// runs a listener that records every byte it gets; A's profile opens the sandbox pool (as a profile for a
/// Tailscale network would: CGNAT) or everything (two /1 blocks per family: the profile refuses /0), and A's agent connects to B's addresses and sends a marker.
/// B records nothing from A nor from the simulated host; the controls: B's own connection to its listener
/// arrives (v4 and v6), and A's allowed name answers through the gate (A's network and DNS gate are alive).
@Suite(.serialized) struct EnforceIsolationTests {
    static let port = 7070

    /// The agents' helper: `listen` (records to received.txt, writes its addresses to addrs.txt), `send ADDR
    /// MARKER` (TCP then UDP; prints one result line).
    static let helper = #"""
    import socket, sys, threading, time
    def addrs():
        found = []
        for fam, far in ((socket.AF_INET, "203.0.113.66"), (socket.AF_INET6, "2001:db8:66::66")):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                s.connect((far, 9)); found.append(s.getsockname()[0])
            except OSError: pass
        return found
    if sys.argv[1] == "listen":
        out = open("received.txt", "a")
        lock = threading.Lock()
        def note(kind, data):
            with lock: out.write("%s %s\n" % (kind, data.decode(errors="replace"))); out.flush()
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); t.bind(("::", PORT)); t.listen(16)
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); u.bind(("::", PORT))
        def tcp():
            while True:
                c, _ = t.accept(); c.settimeout(2)
                try: note("tcp", c.recv(256))
                except OSError: pass
                c.close()
        def udp():
            while True: note("udp", u.recvfrom(256)[0])
        threading.Thread(target=tcp, daemon=True).start(); threading.Thread(target=udp, daemon=True).start()
        open("addrs.txt.tmp", "w").write(" ".join(addrs()) + "\n")
        import os; os.rename("addrs.txt.tmp", "addrs.txt")
        while True: time.sleep(60)
    else:
        addr, marker = sys.argv[2], sys.argv[3]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        try:
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(3); s.connect((addr, PORT)); s.sendall(marker.encode()); s.close()
            result = "open"
        except socket.timeout: result = "timeout"
        except OSError as e: result = "error%d" % (e.errno or 0)
        try: socket.socket(fam, socket.SOCK_DGRAM).sendto((marker + "-udp").encode(), (addr, PORT))
        except OSError: pass
        print("send %s %s" % (addr, result), flush=True)
    """#.replacingOccurrences(of: "PORT", with: String(port))

    static func profile(cidrs: [String]) -> String {
        """
        cagent: 1
        agent: isotest
        extends: [base]
        network:
          domains: [www.allowed.test]
          cidrs: [\(cidrs.map { "\"\($0)\"" }.joined(separator: ", "))]

        """
    }

    func command(_ lab: Netlab, _ world: SandboxFixture, profile: String, script: String) throws -> [String] {
        let file = world.root + "/isotest.yaml"
        try profile.write(toFile: file, atomically: true, encoding: .utf8)
        try world.write(world.workspace + "/iso.py", Self.helper)
        return ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", file,
                "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c", script]
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: EnforceNetworkTests.tools), "needs root, namespaces and the netlab's tools"),
          arguments: [["100.64.0.0/10", "fd63:6167:656e::/48"], ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]])
    func noSessionConnectsIntoAnother(cidrs: [String]) throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let worldA = try SandboxFixture(); defer { worldA.remove() }
        let worldB = try SandboxFixture(); defer { worldB.remove() }
        var environment = ProcessInfo.processInfo.environment
        environment["CAGENT_RUNTIME_DIR"] = worldB.root + "/run"   // one machine: one runtime directory

        // B: the listener, then wait for the test's "stop", then the control: its own connection, v4 and v6.
        let scriptB = """
        python3 iso.py listen & 
        i=0; while [ ! -f addrs.txt ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        i=0; while [ ! -f stop ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
        for a in $(cat addrs.txt); do python3 iso.py send $a MARKER-B-SELF; done
        sleep 0.5; sed 's/^/received /' received.txt; kill %1; exit 0
        """
        environment["HOME"] = worldB.home
        let processB = try SpawnedProcess.start(try command(lab, worldB, profile: Self.profile(cidrs: []),
                                                            script: scriptB),
                                                stdout: worldB.root + "/b.out", stderr: worldB.root + "/b.err", environment: environment)
        var stopped = false
        defer { if !stopped { kill(processB.pid, SIGTERM); processB.wait(timeout: 30) } }
        var waited = 0.0
        while waited < 30, !(FileSystem.readText(worldB.workspace + "/addrs.txt") ?? "").hasSuffix("\n"), processB.isRunning {
            usleep(50_000); waited += 0.05
        }
        let addressesB = (FileSystem.readText(worldB.workspace + "/addrs.txt") ?? "").split(separator: " ")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        try #require(addressesB.count == 2 && addressesB.allSatisfy { $0.hasPrefix("100.72.") || $0.hasPrefix("fd63:6167:656e:") },
                     "B's addresses: \(addressesB) \(FileSystem.readText(worldB.root + "/b.err") ?? "")")

        // A: connects into B with its marker; its allowed name is the control.
        let scriptA = addressesB.map { "python3 iso.py send \($0) MARKER-FROM-A" }.joined(separator: "\n") + """

        curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/
        exit 0
        """
        environment["HOME"] = worldA.home
        let runA = try Netlab.execute(try command(lab, worldA, profile: Self.profile(cidrs: cidrs), script: scriptA),
                                      timeout: 90, environment: environment)
        #expect(runA.status == 0, "\(runA.stderr)")
        #expect(runA.stdout.contains("www 200"), "control: A's allowed name through its gate: \(runA.stdout) \(runA.stderr)")
        for address in addressesB { #expect(runA.stdout.contains("send \(address) "), "A's probe of \(address) did not run: \(runA.stdout)") }
        #expect(!runA.stdout.contains(" open"), "A connected into B: \(runA.stdout)")

        // The simulated host (where cagent runs) connects into B: refused too.
        let fromHost = try lab.run(in: .host, ["python3", worldB.workspace + "/iso.py", "send", addressesB[0], "MARKER-FROM-HOST"])
        #expect(fromHost.stdout.hasPrefix("send "), "the host's probe did not run: \(fromHost.stdout) \(fromHost.stderr)")
        #expect(!fromHost.stdout.contains(" open"), "the host connected into B: \(fromHost.stdout)")

        try worldB.write(worldB.workspace + "/stop", "")
        let statusB = processB.wait(timeout: 60)
        stopped = true
        let outB = FileSystem.readText(worldB.root + "/b.out") ?? ""
        #expect(statusB == 0, "B: \(FileSystem.readText(worldB.root + "/b.err") ?? "")")
        #expect(!outB.contains("MARKER-FROM-A"), "B's listener received A's marker: \(outB)")
        #expect(!outB.contains("MARKER-FROM-HOST"), "B's listener received the host's marker: \(outB)")
        // Control: the listener was alive and got B's own connections, TCP and UDP, v4 and v6.
        #expect(outB.components(separatedBy: "received tcp MARKER-B-SELF").count - 1 == 2, "control: \(outB)")
        #expect(outB.components(separatedBy: "received udp MARKER-B-SELF-udp").count - 1 == 2, "control: \(outB)")

        DetachedTeardowns.wait(runtime: worldB.root + "/run")
        let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"])
        #expect(NftLeftovers.find(ruleset: ruleset.stdout).isEmpty, "nft left: \(ruleset.stdout)")
        #expect(!(try lab.run(in: .host, ["ip", "-o", "link"])).stdout.contains("cgs"), "link left in the lab host")
    }
}
