@testable import CagentLaunch
import CagentCore
import Foundation
import Netlab
import Testing

/// Rootless mode's uplink keeps the host's loopback out by its own options, whatever the sandbox's ruleset does
/// (the ruleset drops 10.0.2.0/24 besides, so the product-level test cannot tell the two apart): slirp4netns with
/// cagent's options against a listener on the (simulated) host's 127.0.0.1, and the same without
/// `--disable-host-loopback` as the control. Generous waits: under a loaded machine slirp4netns and python take seconds.
@Suite("Rootless uplink options", .serialized)
struct RootlessUplinkTests {
    /// In the lab's host namespace: a listener on 127.0.0.1:PORT, a fresh user+network namespace whose
    /// process connects to 10.0.2.2:PORT once slirp4netns has configured tap0, and slirp4netns with `options`.
    static func probe(_ lab: Netlab, options: [String]) throws -> String {
        let port = Int.random(in: 20000...29999)
        let script = """
        python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", \(port))); s.listen(); s.settimeout(40); s.accept(); print("HOST-LOOPBACK-REACHED", flush=True)' &
        listener=$!
        for i in $(seq 2000); do ss -ltn | grep -q "127.0.0.1:\(port) " && break; sleep 0.01; done
        unshare -Urn sh -c 'for i in $(seq 3000); do grep -q tap0 /proc/net/dev && ip route | grep -q default && break; sleep 0.01; done
          python3 -c "import socket; s=socket.socket(); s.settimeout(10); s.connect((\\"10.0.2.2\\", \(port))); print(\\"connected\\")" 2>/dev/null || echo "connect-failed"' &
        sandbox=$!
        sleep 0.2
        slirp4netns \(options.joined(separator: " ")) $sandbox tap0 >/dev/null 2>&1 &
        slirp=$!
        wait $sandbox
        kill $slirp $listener 2>/dev/null; wait $listener 2>/dev/null
        exit 0
        """
        return try lab.run(in: .host, ["/bin/sh", "-c", script], timeout: 90).stdout
    }

    @Test("--disable-host-loopback: 10.0.2.2 does not reach the host's 127.0.0.1 (control: without it, it does)",
          .enabled(if: Requirements.mayRun(root: true, tools: ["slirp4netns", "unshare", "python3"]), "root: the netlab"))
    func hostLoopbackOff() throws {
        try Requirements.root()
        let lab = try Netlab(services: []); defer { lab.shutdown() }
        let control = try Self.probe(lab, options: RootlessUplink.options.filter { $0 != "--disable-host-loopback" })
        #expect(control.contains("HOST-LOOPBACK-REACHED") && control.contains("connected"), "control: slirp4netns maps the host's loopback by default: \(control)")
        let cagent = try Self.probe(lab, options: RootlessUplink.options)
        #expect(cagent.contains("connect-failed") && !cagent.contains("HOST-LOOPBACK-REACHED"), "with cagent's options: \(cagent)")
    }
}
