import Foundation
import CagentCore
import CagentNetwork

/// A small hermetic network for the uplink tests (until they move onto Tests/Netlab): a simulated host netns
/// `cgt-<id>-host` whose only route leads into a simulated internet netns `cgt-<id>-inet`, servers there, and an
/// attacker sink — nft counters in the internet netns on every packet from the host that is not one of the
/// allowed flows. Sandboxes are netns `cgt-<id>-sN` created by the test. Everything is removed by `destroy()`.
final class UplinkLab {
    let id: String
    let host: String
    let inet: String
    let script: String
    private(set) var sandboxes: [String] = []
    private var pids: [Int32] = []

    // The simulated internet.
    static let allowedNet4 = "203.0.113.8/29"       // profile cidr: 203.0.113.10 is in it
    static let allowedInNet4 = "203.0.113.10"
    static let endpoint4 = "203.0.113.20"           // profile endpoint 203.0.113.20:443/tcp
    static let allowedNet6 = "2001:db8:2::/120"
    static let allowedInNet6 = "2001:db8:2::10"
    static let attacker4 = "203.0.113.66"
    static let attacker6 = "2001:db8:2:1::66"
    static let metadata = ["169.254.169.254", "168.63.129.16", "100.100.100.200", "fd00:ec2::254"]
    static let hostUplink4 = "198.51.100.2"
    static let hostServicePort = 2222

    static var profileEntries: [AllowEntry] {
        [.network(IPNetwork(allowedNet4)!), .network(IPNetwork(allowedNet6)!),
         .endpoint(IPAddress(endpoint4)!, .tcp, 443)]
    }

    init(ipv4: Bool = true, ipv6: Bool = true) throws {
        id = randomID(5)
        host = "cgt-\(id)-host"
        inet = "cgt-\(id)-inet"
        script = "/tmp/cgt-\(id)-lab.py"
        do { try build(ipv4: ipv4, ipv6: ipv6) } catch { destroy(); throw error }
    }

    private func build(ipv4: Bool, ipv6: Bool) throws {
        try Self.labScript.write(toFile: script, atomically: true, encoding: .utf8)
        let h = "ip -n \(host)", i = "ip -n \(inet)"
        var commands = [
            "ip netns add \(host)", "ip netns add \(inet)",
            "\(h) link set lo up", "\(i) link set lo up",
            "ip link add cgtu-\(id) netns \(host) type veth peer name cgtu-i netns \(inet)",
            "\(h) link set cgtu-\(id) up", "\(i) link set cgtu-i up",
            "ip netns exec \(inet) sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1",
        ]
        if ipv4 {
            commands += ["\(h) addr add \(Self.hostUplink4)/24 dev cgtu-\(id)", "\(i) addr add 198.51.100.1/24 dev cgtu-i",
                         "\(h) route add default via 198.51.100.1"]
            for address in [Self.allowedInNet4, "203.0.113.11", Self.endpoint4, Self.attacker4, "169.254.169.254", "168.63.129.16", "100.100.100.200"] {
                commands.append("\(i) addr add \(address)/32 dev lo")
            }
        }
        if ipv6 {
            commands += ["\(h) addr add 2001:db8:ff::2/64 dev cgtu-\(id) nodad", "\(i) addr add 2001:db8:ff::1/64 dev cgtu-i nodad",
                         "\(h) -6 route add default via 2001:db8:ff::1"]
            for address in [Self.allowedInNet6, Self.attacker6, "fd00:ec2::254"] {
                commands.append("\(i) addr add \(address)/128 dev lo nodad")
            }
        }
        // The attacker sink: counts every packet from the host uplink except the profile's allowed flows.
        commands.append("""
            ip netns exec \(inet) nft -f - <<'EOF'
            table inet cgtsink {
              chain pre {
                type filter hook prerouting priority -300; policy accept;
                iifname != "cgtu-i" return
                icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, mld2-listener-report, mld-listener-report } return
                ip daddr \(Self.allowedNet4) meta l4proto tcp return
                ip daddr \(Self.endpoint4) tcp dport 443 return
                ip6 daddr \(Self.allowedNet6) meta l4proto tcp return
                ip6 saddr fe80::/10 return
                counter
              }
            }
            EOF
            """)
        for command in commands { try sh(command, check: true) }
        // Servers in the internet (tcp 80/443/8080, udp 443/5353) and a service on the simulated host.
        pids.append(try spawnBackground("ip netns exec \(inet) /usr/bin/python3 \(script) serve 80,443,8080 443,5353,53"))
        pids.append(try spawnBackground("ip netns exec \(host) /usr/bin/python3 \(script) serve \(Self.hostServicePort) \(Self.hostServicePort)"))
        usleep(300_000)
    }

    func newSandbox() throws -> String {
        let name = "cgt-\(id)-s\(sandboxes.count)"
        try sh("ip netns add \(name)", check: true)
        sandboxes.append(name)
        return name
    }

    /// Packets the attacker sink has seen.
    func sinkCount() throws -> Int {
        let output = try sh("ip netns exec \(inet) nft list table inet cgtsink", check: true).output
        guard let range = output.range(of: "counter packets ") else { return -1 }
        return Int(output[range.upperBound...].prefix(while: \.isNumber)) ?? -1
    }

    /// Runs probes in a namespace; each target is `tcp ADDR PORT`, `udp ADDR PORT`, `icmp ADDR`, or
    /// `curl URL`. Returns one result per target: "open", "reply", "ok" mean something came back.
    func probe(in namespace: String, _ targets: [String], asUser: Bool = false) throws -> [String: String] {
        let prefix = asUser ? "setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all --bounding-set=-all " : ""
        let args = targets.map { "'\($0)'" }.joined(separator: " ")
        let output = try sh("ip netns exec \(namespace) \(prefix)/usr/bin/python3 \(script) probe \(args)").output
        var results: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { results[String(parts[0])] = String(parts[1]) }
        }
        return results
    }

    func nftRuleset(in namespace: String? = nil) throws -> String {
        try sh("ip netns exec \(namespace ?? host) nft list ruleset", check: true).output
    }

    func destroy() {
        for pid in pids { kill(pid, SIGKILL) }
        for name in sandboxes + [host, inet] { _ = try? sh("ip netns del \(name)") }
        unlink(script)
    }

    static let labScript = #"""
import socket, sys, threading, subprocess, time

def serve(tcp_ports, udp_ports):
    def tcp(port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(64)
        while True:
            c, _ = s.accept()
            try: c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            except OSError: pass
            c.close()
    def udp(port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(b"ok", peer)
    for p in tcp_ports: threading.Thread(target=tcp, args=(p,), daemon=True).start()
    for p in udp_ports: threading.Thread(target=udp, args=(p,), daemon=True).start()
    while True: time.sleep(3600)

def probe(target):
    kind, rest = target.split(" ", 1)
    try:
        if kind == "tcp":
            addr, port = rest.rsplit(" ", 1)
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.5)
            s.connect((addr, int(port))); data = s.recv(64); s.close()
            return "open" if data else "empty"
        if kind == "udp":
            addr, port = rest.rsplit(" ", 1)
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1.0)
            s.sendto(b"probe", (addr, int(port)))
            data, _ = s.recvfrom(64)
            return "reply"
        if kind == "icmp":
            v6 = ":" in rest
            if v6:
                s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
                pkt = bytes([128, 0, 0, 0, 0x12, 0x34, 0, 1]) + b"cagent"
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                body = bytes([8, 0, 0, 0, 0x12, 0x34, 0, 1]) + b"cagent"
                total = sum((body[i] << 8) + body[i + 1] for i in range(0, len(body), 2))
                while total >> 16: total = (total & 0xffff) + (total >> 16)
                check = ~total & 0xffff
                pkt = body[:2] + bytes([check >> 8, check & 0xff]) + body[4:]
            s.settimeout(1.0)
            s.sendto(pkt, (rest, 0))
            deadline = time.time() + 1.0
            while time.time() < deadline:
                data, peer = s.recvfrom(256)
                icmp = data if v6 else data[(data[0] & 0x0f) * 4:]
                if icmp and icmp[0] == (129 if v6 else 0): return "reply"
            return "noreply"
        if kind == "curl":
            r = subprocess.run(["curl", "-s", "-g", "--connect-timeout", "1.5", "-m", "3", rest], capture_output=True)
            return "ok" if r.returncode == 0 and b"ok" in r.stdout else "fail%d" % r.returncode
        if kind == "cmd":
            r = subprocess.run(rest, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return "ok" if r.returncode == 0 else "fail%d" % r.returncode
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error%d" % (e.errno or 0)
    return "unknown"

if sys.argv[1] == "serve":
    ports = lambda s: [int(x) for x in s.split(",") if x]
    serve(ports(sys.argv[2]), ports(sys.argv[3]))
else:
    results = {}
    threads = []
    def run(t): results[t] = probe(t)
    for t in sys.argv[2:]:
        th = threading.Thread(target=run, args=(t,)); th.start(); threads.append(th)
    for th in threads: th.join()
    for t in sys.argv[2:]: print("%s=%s" % (t, results[t]))
"""#
}
