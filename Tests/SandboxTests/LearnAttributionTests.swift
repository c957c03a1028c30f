import CagentCore
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What proposals are built from (issue #14): a learn session in the netlab whose workload
/// - resolves code.allowed.test, connects to it on 8080, then resolves 50 random names under a wildcard that
///   answer the same address, and connects again: the flow is named code.allowed.test (the answer before the
///   connect), never a random name nor a direct IP, and the proposal lists code.allowed.test and no random name;
/// - connects a UDP socket without sending (glibc's getaddrinfo probing does this): no flow; a UDP socket that
///   sends is one (the positive control);
/// - connects to a LAN address learn mode drops: one row in the store, not the tracer's plus the network's;
/// - resolves a name the upstream refuses: the gate answers SERVFAIL, glibc asks the next nameserver, the
///   gate's IPv6 address, which is no DNS bypass and no direct-IP flow.
///
/// Part of the serialized "cagent learn" suite (learn mode overlays user-writable /opt directories).
extension LearnCommandTests {
    static let attributionTools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "python3", "sqlite3", "getent"]

    static let attributionWorkload = """
        cd "$(dirname "$0")"
        getent ahostsv4 x.fail.test > /dev/null; echo "fail exit $?"
        curl -sS -m 5 -o /dev/null -w 'first %{http_code}\\n' http://code.allowed.test:8080/
        i=0
        while [ $i -lt 50 ]; do
          i=$((i+1))
          getent ahostsv4 "r$i-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \\n').spray.test" > /dev/null && echo spray
        done
        curl -sS -m 5 -o /dev/null -w 'again %{http_code}\\n' http://\(NetlabAddresses.web4):8080/
        python3 udp.py
        curl -s -m 2 -o /dev/null http://10.9.8.7:8080/; echo "lan exit $?"
        echo workload-done
        """

    static let udpScript = """
        import socket
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("\(NetlabAddresses.web3)", 9999))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.connect(("\(NetlabAddresses.web3)", 9998))
        sender.send(b"x")
        print("udp sent")
        """

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: attributionTools), "needs root, namespaces, eBPF and the netlab's tools"))
    func flowsAreNamedByTheLookupBeforeTheConnect() throws { try attribution(tracer: "ebpf") }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: attributionTools), "needs root, namespaces and the netlab's tools"))
    func flowsAreNamedByTheLookupBeforeTheConnectSeccomp() throws { try attribution(tracer: "seccomp") }

    func attribution(tracer: String) throws {
        try Requirements.root()
        for tool in Self.attributionTools { try Requirements.tool(tool) }
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        try world.write(world.workspace + "/work.sh", Self.attributionWorkload)
        try world.write(world.workspace + "/udp.py", Self.udpScript)
        let database = world.root + "/learn.db"

        let cgroupMount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"$@\""
        let learned = try lab.run(in: .host, ["/bin/sh", "-c", cgroupMount, "sh", Products.cagent, "learn", "--quiet",
                                              "--user", String(SandboxFixture.agentUID), "--home", world.home,
                                              "--state-dir", world.state, "--db", database, "--workspace", world.workspace,
                                              "--tracer", tracer, "--", "/bin/sh", world.workspace + "/work.sh"], timeout: 180)
        #expect(learned.status == 0, "\(tracer): cagent learn failed: \(learned.stderr)")
        let out = learned.stdout
        #expect(out.contains("first 200") && out.contains("again 200") && out.contains("udp sent") && out.contains("workload-done"),
                "\(out)\n\(learned.stderr)")
        #expect(out.components(separatedBy: "spray\n").count - 1 == 50, "the 50 lookups did not all answer: \(out)")
        #expect(out.contains("lan exit 28") || out.contains("lan exit 7"), "the LAN was reached: \(out)")
        #expect(!out.contains("fail exit 0"), "x.fail.test resolved: \(out)")

        func sql(_ query: String) throws -> [String] {
            let result = try Netlab.execute(["sqlite3", "-readonly", "-separator", "|", database, query], timeout: 30)
            #expect(result.status == 0, "sqlite3: \(result.stderr)")
            return result.stdout.split(separator: "\n").map(String.init)
        }
        let web4 = NetlabAddresses.web4

        // 1. The positive control: the random names were looked up and answered the flow's address.
        let sprayed = try sql("""
            SELECT count(DISTINCT d.name) FROM dns d JOIN dns_answers a ON a.dns_id = d.id
            WHERE d.name LIKE '%.spray.test' AND a.data = '\(web4)'
            """)
        #expect(Int(sprayed.first ?? "") ?? 0 >= 50, "\(sprayed)")
        // The flow's rows are named by the lookup before the first connect.
        let rows = try sql("SELECT program, coalesce(name, '<none>'), coalesce(name_source, '<none>'), verdict FROM flows "
                           + "WHERE proto = 'tcp' AND address = '\(web4)' AND port = 8080")
        #expect(!rows.isEmpty, "no row for the flow")
        for row in rows {
            #expect(row.hasSuffix("|code.allowed.test|dns|observed"), "the flow is not named by the lookup before it: \(rows)")
        }
        #expect(rows.contains { $0.hasPrefix("curl|") }, "\(rows)")
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        #expect(report.status == 0, "\(report.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any])
        let flows = json["flows"] as? [[String: Any]] ?? []
        let flow = flows.filter { $0["address"] as? String == web4 && $0["port"] as? Int == 8080 }
        #expect(flow.count == 1 && flow.first?["name"] as? String == "code.allowed.test", "\(flow)")
        let direct = json["direct_ip_flows"] as? [[String: Any]] ?? []
        #expect(!direct.contains { $0["address"] as? String == web4 }, "reported as a direct IP: \(direct)")

        // 2. The proposal: code.allowed.test, no random name.
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        let proposed = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace],
                                          timeout: 60, environment: environment)
        #expect(proposed.status == 0, "propose failed: \(proposed.stderr)")
        #expect(proposed.stdout.contains("- \"code.allowed.test:8080/tcp\""), "\(proposed.stdout)")
        let entries = proposed.stdout.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- ") }
        #expect(!entries.contains { $0.contains("spray.test") }, "a random name in the proposal:\n\(proposed.stdout)")

        // 3. A UDP connect without traffic is no flow; one that sends is (the control).
        let udp = try sql("SELECT port, program, packets FROM flows WHERE proto = 'udp' AND address = '\(NetlabAddresses.web3)' ORDER BY port")
        #expect(udp.contains { $0.hasPrefix("9998|python3|") }, "the sending UDP socket is not a flow: \(udp)")
        #expect(!udp.contains { $0.hasPrefix("9999|") }, "a UDP connect without traffic recorded as a flow: \(udp)")

        // 4. A blocked flow: one row, blocked, with the program that made it.
        let lan = try sql("SELECT program, verdict FROM flows WHERE address = '10.9.8.7' AND port = 8080")
        #expect(lan == ["curl|blocked"], "a blocked flow is not one row: \(lan)")

        // 5. The SERVFAIL: glibc asked the gate's second address (the control that the case happened)...
        let gate = try sql("SELECT gate FROM sessions").first ?? ""
        let resolvers = try sql("SELECT DISTINCT resolver FROM dns WHERE name = 'x.fail.test'")
        #expect(resolvers.contains { $0.contains(":") }, "glibc never asked the gate's IPv6 address: \(resolvers), gate \(gate)")
        // ... which is the gate: no DNS bypass, no direct IP.
        let findings = json["findings"] as? [[String: Any]] ?? []
        #expect(!findings.contains { $0["kind"] as? String == "dns-bypass" }, "the gate's IPv6 address called a bypass: \(findings)")
        let bypass = json["gate_bypass"] as? [[String: Any]] ?? []
        #expect(bypass.isEmpty, "\(bypass)")
        #expect(!direct.contains { ($0["address"] as? String ?? "").contains(":") }, "the gate's IPv6 address called a direct IP: \(direct)")
    }
}
