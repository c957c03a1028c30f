import Foundation
import Synchronization
import Testing
import CagentCore
import CagentCapture
import CagentNetwork
import Netlab
@testable import CagentDNS

/// Collects what a learn session observes (gate, capture, flow log), from their threads.
final class LearnCollector: GateObserver, @unchecked Sendable {
    let gateSeen = Mutex<[DNSMessageSeen]>([])
    let captured = Mutex<[CaptureEvent]>([])
    let flows = Mutex<[FlowSeen]>([])
    /// Makes each observation slow (a loaded machine): the client must still not get its answer before it.
    let observeDelayMicroseconds: UInt32
    init(observeDelayMicroseconds: UInt32 = 0) { self.observeDelayMicroseconds = observeDelayMicroseconds }
    func observe(_ observation: DNSMessageSeen) {
        if observeDelayMicroseconds > 0 { usleep(observeDelayMicroseconds) }
        gateSeen.withLock { $0.append(observation) }
    }
    func capture(_ event: CaptureEvent) { captured.withLock { $0.append(event) } }
    func flow(_ flow: FlowSeen) { flows.withLock { $0.append(flow) } }

    var pcapDNS: [DNSMessageSeen] { captured.withLock { $0 }.compactMap { if case .dns(let o) = $0 { o } else { nil } } }
    var hellos: [ServerNameSeen] { captured.withLock { $0 }.compactMap { if case .tls(let o) = $0 { o } else { nil } } }
}

/// Learn mode end to end on the netlab: NetworkSession(mode: .learn) on the simulated host, the gate with the
/// observing policy, the flow log on the session's nflog group and the capture on its veth, driven from a
/// sandbox namespace standing in for the launcher's.
@Suite(.serialized) struct LearnNetworkTests {
    static let tools = ["ip", "nft", "dnsmasq", "dig", "curl", "python3", "tcpdump"]
    static let ready = Requirements.mayRun(root: true, tools: tools)

    static let lanAddress = "10.203.0.10"       // a LAN server: a /32 on the internet's loopback
    static let metadata = "169.254.169.254"
    static let servicePort = 8081               // listened on by the LAN and metadata stand-ins
    static let hostServicePort = 2222           // a service on the simulated host, all addresses

    @Test("Learn: names (with a CNAME chain), a bare IP, a bypassing query and an SNI are observed; metadata, LAN and host stay unreachable",
          .enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, curl, python3, tcpdump"))
    func learnObservesAndStillBlocksTheLAN() throws {
        try Requirements.root()
        let lab = try Netlab()
        defer { lab.shutdown() }
        let hostPath = "/run/netns/\(lab.hostNamespace)"
        let sandbox = "cgt-\(lab.id)-ls"
        let dir = "/tmp/cgt-learn-\(lab.id)"
        #expect(sh("ip netns add \(sandbox)").status == 0)
        defer {
            sh("ip netns del \(sandbox)")
            sh("rm -rf /etc/netns/\(sandbox) \(dir)")
        }
        let paths = CagentPaths(runtime: dir + "/run", data: dir + "/data", config: dir + "/config")
        #expect(sh("mkdir -p \(paths.runtime) \(paths.data) \(paths.config)").status == 0)

        // LAN and metadata stand-ins in the internet (with a packet counter), a service on the simulated host.
        for address in [Self.lanAddress, Self.metadata] {
            #expect(sh("ip -n \(lab.internetNamespace) addr add \(address)/32 dev lo").status == 0)
        }
        #expect(sh("""
            ip netns exec \(lab.internetNamespace) nft -f - <<'EOF'
            table inet cgtlearn {
              chain pre { type filter hook prerouting priority -300; policy accept;
                ip daddr { \(Self.lanAddress), \(Self.metadata) } counter
              }
            }
            EOF
            """).status == 0)
        let listener = "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            + "s.bind(('0.0.0.0', int(__import__('sys').argv[1]))); s.listen(16); print('ready', flush=True)\n"
            + "while True:\n  c,_=s.accept(); c.close()\n"
        try listener.write(toFile: lab.directory + "/listen.py", atomically: true, encoding: .utf8)
        try lab.spawn(in: .internet, ["python3", lab.directory + "/listen.py", "\(Self.servicePort)"], readyOnStdout: "ready")
        try lab.spawn(in: .host, ["python3", lab.directory + "/listen.py", "\(Self.hostServicePort)"], readyOnStdout: "ready")

        // The session, in learn mode.
        let session = try NamespaceThread.run(netnsPath: hostPath) {
            try NetworkSession.setUp(sessionID: "l" + String(lab.id.prefix(11)).lowercased(),
                                     sandbox: NetworkNamespace(path: "/run/netns/\(sandbox)"), entries: [], paths: paths, mode: .learn)
        }
        defer { _ = try? NamespaceThread.run(netnsPath: hostPath) { try session.tearDown() } }
        #expect(session.mode == .learn)
        let gateway4 = session.addresses.gateway4!.description
        #expect(sh("mkdir -p /etc/netns/\(sandbox)").status == 0)
        try "nameserver \(gateway4)\n".write(toFile: "/etc/netns/\(sandbox)/resolv.conf", atomically: true, encoding: .utf8)

        let collector = LearnCollector(observeDelayMicroseconds: 100_000)
        let gate = Gate(configuration: .init(listen: [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 },
                                             port: session.gatePort, netnsPath: hostPath,
                                             policy: .observing(ipv6: session.addresses.gateway6 != nil),
                                             upstream: try UpstreamConfig(override: [NetlabAddresses.dns4], timeoutMilliseconds: 1000)),
                        pinner: session.firewall, observer: collector)
        try gate.start()
        defer { gate.stop() }
        let flowLog = FlowLog.reader(group: session.nflogGroup, netnsPath: hostPath) { collector.flow($0) }
        try flowLog.start()
        defer { flowLog.stop() }
        let capture = DNSCapture(interface: session.interface, netnsPath: hostPath) { collector.capture($0) }
        try capture.start()
        defer { capture.stop() }

        func inSandbox(_ command: String) -> (status: Int32, output: String) { sh("ip netns exec \(sandbox) \(command)") }
        // Three names through the gate (one a CNAME chain), each connected to.
        for name in ["www.allowed.test", "assets.allowed.test", "api.allowed.test"] {
            let answer = inSandbox("dig +short +time=2 +tries=1 \(name)").output
            #expect(!answer.isEmpty, "\(name): \(answer)")
            // The observation is delivered before the client gets its answer, so before any connect it leads
            // to: a flow log reader never attributes that connect before the answer naming it (a live
            // "direct-ip" for a named flow under load).
            #expect(collector.gateSeen.withLock { $0 }.contains { $0.name == name },
                    "\(name): answered before the observation was delivered")
            let fetched = inSandbox("curl -4 -s -m 3 http://\(name)/")
            #expect(fetched.status == 0, "\(name): \(fetched.output)")
        }
        // A bare IP, a query straight to another resolver, TLS ClientHellos (one to an address no answer named).
        #expect(inSandbox("curl -s -m 3 http://\(NetlabAddresses.web4)/").status == 0)
        let bypass = inSandbox("dig +time=2 +tries=1 @\(NetlabAddresses.publicResolver4) x.allowed.test")
        // x.allowed.test is an empty non-terminal upstream (deep.x.allowed.test exists): NOERROR, no data.
        #expect(bypass.output.contains("status: NOERROR") && bypass.output.contains("SERVER: \(NetlabAddresses.publicResolver4)"), "\(bypass.output)")
        // Over TCP too, and a type enforce mode never forwards: learn mode forwards it (fresh) and records it.
        let tcpBypass = inSandbox("dig +tcp +time=2 +tries=1 @\(NetlabAddresses.publicResolver4) TXT txt.attacker.test")
        #expect(tcpBypass.output.contains("exfil-channel"), "\(tcpBypass.output)")
        // MX data holds a (compressible) name: recorded by the gate, answered NODATA rather than relayed raw.
        let mx = inSandbox("dig +time=2 +tries=1 MX attacker.test")
        #expect(mx.output.contains("status: NOERROR") && mx.output.contains("ANSWER: 0"), "\(mx.output)")
        let hello = "import socket,ssl,sys\nc=ssl.create_default_context()\ns=socket.create_connection((sys.argv[1],443),timeout=3)\n"
            + "try: c.wrap_socket(s, server_hostname=sys.argv[2])\nexcept Exception as e: print(type(e).__name__)\n"
        try hello.write(toFile: lab.directory + "/hello.py", atomically: true, encoding: .utf8)
        #expect(inSandbox("python3 \(lab.directory)/hello.py \(NetlabAddresses.web2) api.allowed.test").status == 0)
        #expect(inSandbox("python3 \(lab.directory)/hello.py \(NetlabAddresses.attacker4) sni-only.test").status == 0)

        // A ClientHello larger than one segment (as post-quantum key shares make them), in one write.
        let bigHello = #"""
        import socket, ssl, sys
        i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_bio(i, o, server_hostname=sys.argv[2])
        try: t.do_handshake()
        except ssl.SSLWantReadError: pass
        h = bytearray(o.read())
        at = 5 + 4 + 2 + 32; at += 1 + h[at]; at += 2 + int.from_bytes(h[at:at+2], "big"); at += 1 + h[at]
        ext = int.from_bytes(h[at:at+2], "big"); pad = 2500
        h[at:at+2] = (ext + 4 + pad).to_bytes(2, "big")
        h += bytes([0, 21]) + pad.to_bytes(2, "big") + bytes(pad)
        h[3:5] = (len(h) - 5).to_bytes(2, "big"); h[6:9] = (len(h) - 9).to_bytes(3, "big")
        s = socket.create_connection((sys.argv[1], 443), timeout=3); s.sendall(bytes(h)); s.close()
        """#
        try bigHello.write(toFile: lab.directory + "/bighello.py", atomically: true, encoding: .utf8)
        #expect(inSandbox("python3 \(lab.directory)/bighello.py \(NetlabAddresses.web4) split-hello.test").status == 0)

        // Still unreachable in learn mode: metadata, the LAN, the host's own addresses (uplink and gateway).
        // Says "closed" when the connect failed: a probe that died says neither, and fails the check.
        let probe = "python3 -c \"import socket,sys\ns=socket.socket(); s.settimeout(2)\ntry: s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\nexcept OSError as e: print('closed', e)\""
        for (address, port) in [(Self.metadata, Self.servicePort), (Self.lanAddress, Self.servicePort),
                                (NetlabAddresses.host4, Self.hostServicePort), (gateway4, Self.hostServicePort)] {
            let result = inSandbox("\(probe) \(address) \(port)")
            #expect(result.output.contains("closed") && !result.output.contains("open"), "\(address):\(port) reachable from learn mode (or the probe died): \(result.output)")
        }
        #expect(packetsAtLANAndMetadata(lab) == 0, "a packet reached the LAN or metadata stand-in")

        // The flow log's records come in batches of up to 1 s, the capture's in 100 ms blocks (later under load):
        // wait for the last events the steps above made, not for a fixed time.
        let arrived = waitUntil(seconds: 20) {
            let flows = collector.flows.withLock { $0 }
            let hellos = collector.hellos.map(\.serverName), pcap = collector.pcapDNS
            return [Self.metadata, Self.lanAddress].allSatisfy { address in
                flows.contains { $0.destination.description == address && $0.verdict == .dropped } }
                && [NetlabAddresses.web4, NetlabAddresses.attacker4].allSatisfy { address in
                    flows.contains { $0.destination.description == address && $0.port == 443 } }
                && ["split-hello.test", "sni-only.test", "api.allowed.test"].allSatisfy(hellos.contains)
                && pcap.contains { $0.isResponse && $0.transport == "tcp" && $0.name == "txt.attacker.test" }
        }
        #expect(arrived, "the flow log or the capture did not deliver within 20 s")
        capture.stop()
        flowLog.stop()
        gate.stop()

        // Gate: every name with its answers, the CNAME chain as answers, the bypassing query forwarded too.
        let gateSeen = collector.gateSeen.withLock { $0 }
        func gateAnswer(_ name: String) -> DNSMessageSeen? { gateSeen.first { $0.name == name && $0.type == DNSType.a } }
        #expect(gateAnswer("www.allowed.test")?.answers.compactMap(\.address).map(\.description) == [NetlabAddresses.web1])
        #expect(gateAnswer("api.allowed.test")?.answers.compactMap(\.address).map(\.description) == [NetlabAddresses.web2])
        let assets = try #require(gateAnswer("assets.allowed.test"), "\(gateSeen)")
        #expect(assets.answers.map(\.value) == ["edge.cdn.test", "node7.edge.cdn.test", NetlabAddresses.web3], "\(assets.answers)")
        #expect(assets.answers.first?.ttl == 5 && assets.rcode == 0 && assets.source == .gate)
        #expect(assets.resolver?.description == NetlabAddresses.dns4)
        #expect(gateSeen.contains { $0.name == "x.allowed.test" && $0.rcode == DNSRcode.noError && $0.answers.isEmpty })

        // Capture: the query to the other resolver, with its original destination, and its answer from there.
        let pcap = collector.pcapDNS
        #expect(pcap.contains { !$0.isResponse && $0.name == "x.allowed.test" && $0.resolver?.description == NetlabAddresses.publicResolver4 },
                "\(pcap.map { "\($0.name) \($0.resolver.map(\.description) ?? "-")" })")
        #expect(pcap.contains { $0.isResponse && $0.name == "x.allowed.test" && $0.resolver?.description == NetlabAddresses.publicResolver4 && $0.rcode == 0 })
        #expect(pcap.contains { !$0.isResponse && $0.name == "www.allowed.test" && $0.resolver?.description == gateway4 })
        let gateways = [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 }
        #expect(Set(pcap.filter { $0.bypassedGate(gateways: gateways) }.map(\.name)) == ["x.allowed.test", "txt.attacker.test"])
        #expect(pcap.contains { $0.isResponse && $0.name == "assets.allowed.test" && $0.answers.count == 3 })
        #expect(pcap.contains { !$0.isResponse && $0.transport == "tcp" && $0.name == "txt.attacker.test" && $0.type == DNSType.txt
                                && $0.resolver?.description == NetlabAddresses.publicResolver4 })
        #expect(pcap.contains { $0.isResponse && $0.transport == "tcp" && $0.name == "txt.attacker.test" && $0.answers.count == 1 })
        #expect(gateSeen.contains { $0.name == "txt.attacker.test" && $0.type == DNSType.txt && $0.transport == "tcp" && $0.answers.count == 1 })
        #expect(gateSeen.contains { $0.name == "attacker.test" && $0.type == DNSType.mx && $0.answers.count == 1 })
        // The bypassing query went to the gate, not out: the public resolver (an attacker sink) saw nothing.
        #expect(lab.sinkRecords().filter { $0.contains(NetlabAddresses.publicResolver4) }.isEmpty)

        // SNI.
        let hellos = collector.hellos
        #expect(hellos.contains { $0.serverName == "api.allowed.test" && $0.destination.description == NetlabAddresses.web2 && $0.port == 443 },
                "\(hellos)")

        // Flows: attributed through DNS answers, SNI, or direct-IP findings; the blocked ones dropped.
        var attributor = FlowAttributor()
        for observation in gateSeen { attributor.add(observation) }
        for event in collector.captured.withLock({ $0 }) { attributor.add(event) }
        for flow in collector.flows.withLock({ $0 }) { attributor.add(flow) }
        let findings = attributor.findings()
        func finding(_ address: String, _ port: UInt16) -> FlowAttributor.Finding? {
            findings.first { $0.flow.destination.description == address && $0.flow.port == port && $0.flow.verdict == .accepted }
        }
        let summary = findings.map { "\($0.flow.destination):\($0.flow.port ?? 0) \($0.flow.verdict) \($0.basis) \($0.name ?? "-")" }
        #expect(finding(NetlabAddresses.web1, 80)?.name == "www.allowed.test", "\(summary)")
        #expect(finding(NetlabAddresses.web3, 80)?.name == "assets.allowed.test", "\(summary)")
        #expect(finding(NetlabAddresses.web3, 80)?.chain == ["edge.cdn.test", "node7.edge.cdn.test"])
        #expect(finding(NetlabAddresses.web2, 443)?.basis == .dns)
        #expect(finding(NetlabAddresses.web2, 443)?.serverName == "api.allowed.test")
        #expect(finding(NetlabAddresses.web4, 80)?.basis == .directIP, "\(summary)")
        #expect(hellos.contains { $0.serverName == "split-hello.test" && $0.destination.description == NetlabAddresses.web4 }, "\(hellos)")
        #expect(finding(NetlabAddresses.web4, 443)?.basis == .sni && finding(NetlabAddresses.web4, 443)?.name == "split-hello.test")
        #expect(finding(NetlabAddresses.attacker4, 443)?.basis == .sni)
        #expect(finding(NetlabAddresses.attacker4, 443)?.name == "sni-only.test")
        for address in [Self.metadata, Self.lanAddress] {
            #expect(findings.contains { $0.flow.destination.description == address && $0.flow.verdict == .dropped }, "\(summary)")
            #expect(!findings.contains { $0.flow.destination.description == address && $0.flow.verdict == .accepted })
        }
        #expect(capture.dropped == 0)

        // Positive control: from the simulated host (no cagent in the path) the same three are reachable.
        for (address, port) in [(Self.metadata, Self.servicePort), (Self.lanAddress, Self.servicePort),
                                (NetlabAddresses.host4, Self.hostServicePort)] {
            let result = sh("ip netns exec \(lab.hostNamespace) \(probe) \(address) \(port)")
            #expect(result.output.contains("open"), "control: \(address):\(port) \(result.output)")
        }
        #expect(packetsAtLANAndMetadata(lab) >= 2, "the positive control did not reach the LAN and metadata stand-ins")
    }

    @Test("Learn capture: a burst of 3,000 queries to another resolver is captured whole (buffered mode, no drops)",
          .enabled(if: ready, "needs root, ip, nft, dnsmasq, dig, curl, python3, tcpdump"))
    func aBurstIsCapturedWithoutDrops() throws {
        try Requirements.root()
        let lab = try Netlab()
        defer { lab.shutdown() }
        let hostPath = "/run/netns/\(lab.hostNamespace)"
        let sandbox = "cgt-\(lab.id)-lb"
        let dir = "/tmp/cgt-learn-\(lab.id)"
        #expect(sh("ip netns add \(sandbox)").status == 0)
        defer { sh("ip netns del \(sandbox)"); sh("rm -rf \(dir)") }
        let paths = CagentPaths(runtime: dir + "/run", data: dir + "/data", config: dir + "/config")
        #expect(sh("mkdir -p \(paths.runtime) \(paths.data) \(paths.config)").status == 0)
        let session = try NamespaceThread.run(netnsPath: hostPath) {
            try NetworkSession.setUp(sessionID: "b" + String(lab.id.prefix(11)).lowercased(),
                                     sandbox: NetworkNamespace(path: "/run/netns/\(sandbox)"), entries: [], paths: paths, mode: .learn)
        }
        defer { _ = try? NamespaceThread.run(netnsPath: hostPath) { try session.tearDown() } }
        let count = Mutex(0)
        let capture = DNSCapture(interface: session.interface, netnsPath: hostPath) { event in
            if case .dns(let seen) = event, !seen.isResponse, seen.name.hasSuffix(".burst.test") { count.withLock { $0 += 1 } }
        }
        try capture.start()
        defer { capture.stop() }
        // No gate runs: the redirected queries find no listener, which does not matter to the capture.
        let burst = "import socket,struct\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            + "for i in range(3000):\n  q=struct.pack('>HHHHHH',i,0x100,1,0,0,0)+bytes([len('q%d'%i)])+b'q%d'%i+b'\\x05burst\\x04test\\x00'+struct.pack('>HH',1,1)\n"
            + "  s.sendto(q,('\(NetlabAddresses.publicResolver4)',53))\n"
        try burst.write(toFile: dir + "/burst.py", atomically: true, encoding: .utf8)
        #expect(sh("ip netns exec \(sandbox) python3 \(dir)/burst.py").status == 0)
        // Until all arrived or the capture stops receiving (a drop would leave the count short for good).
        _ = waitUntil(seconds: 20) { count.withLock { $0 } >= 3000 }
        capture.stop()
        #expect(count.withLock { $0 } == 3000, "captured \(count.withLock { $0 }) of 3000 (kernel: \(capture.received) received, \(capture.dropped) dropped)")
        #expect(capture.dropped == 0)
    }

    func packetsAtLANAndMetadata(_ lab: Netlab) -> Int {
        sh("ip netns exec \(lab.internetNamespace) nft list table inet cgtlearn").output
            .components(separatedBy: "counter packets ").dropFirst()
            .reduce(0) { $0 + (Int($1.prefix(while: \.isNumber)) ?? 0) }
    }
}

/// Polls `condition` every 50 ms until it holds (true) or `seconds` passed (false): waiting for an event
/// that comes later under load, instead of a fixed sleep.
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    var now = timespec(); clock_gettime(CLOCK_MONOTONIC, &now)
    let deadline = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + seconds
    while true {
        if condition() { return true }
        clock_gettime(CLOCK_MONOTONIC, &now)
        if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 > deadline { return false }
        usleep(50_000)
    }
}
