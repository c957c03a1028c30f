import Foundation
import CagentCore
import CagentNetwork
import Netlab

/// The netlab (Tests/Netlab) plus what the uplink tests add: sandbox namespaces `cgt-<lab>-sN` created by the
/// test (standing in for the launcher's), a service listening on the simulated host, metadata addresses in the
/// simulated internet with a packet counter (the netlab sink covers the attacker's addresses), and a probe
/// script run inside a sandbox. `destroy()` removes the sandboxes and shuts the lab down.
final class UplinkLab {
    let lab: Netlab
    let script: String
    private(set) var sandboxes: [String] = []

    // Profile entries against the netlab's internet.
    static let allowedNet4 = "203.0.113.10/31"      // web1 (.10) and web2 (.11)
    static let allowedInNet4 = NetlabAddresses.web1
    static let allowedInNet4b = NetlabAddresses.web2
    static let endpoint4 = NetlabAddresses.web3     // 203.0.113.12:443/tcp only
    static let notAllowed4 = NetlabAddresses.web4   // a web server the profile does not name
    static let allowedNet6 = "2001:db8:10::10/128"  // web1v6
    static let allowedInNet6 = NetlabAddresses.web1v6
    static let notAllowed6 = NetlabAddresses.web2v6
    static let attacker4 = NetlabAddresses.attacker4
    static let attacker6 = NetlabAddresses.attacker6
    static let metadata = ["169.254.169.254", "168.63.129.16", "100.100.100.200", "fd00:ec2::254"]
    static let hostUplink4 = NetlabAddresses.host4
    static let hostUplink6 = NetlabAddresses.host6
    static let hostServicePort = 2222

    static var profileEntries: [AllowEntry] {
        [.network(IPNetwork(allowedNet4)!), .network(IPNetwork(allowedNet6)!),
         .endpoint(IPAddress(endpoint4)!, .tcp, 443)]
    }

    var host: String { lab.hostNamespace }
    var inet: String { lab.internetNamespace }

    init() throws {
        lab = try Netlab()
        script = lab.directory + "/uplink-probe.py"
        do { try build() } catch { destroy(); throw error }
    }

    private func build() throws {
        try Self.labScript.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        chmod(lab.directory, 0o755)
        for address in Self.metadata {
            try sh("ip -n \(inet) addr add \(address)/\(address.contains(":") ? 128 : 32) dev lo" + (address.contains(":") ? " nodad" : ""), check: true)
        }
        // Metadata sink: counts every packet reaching the metadata addresses.
        try sh("""
            ip netns exec \(inet) nft -f - <<'EOF'
            table inet cgtmeta {
              chain pre {
                type filter hook prerouting priority -300; policy accept;
                ip daddr { \(Self.metadata.filter { !$0.contains(":") }.joined(separator: ", ")) } counter
                ip6 daddr fd00:ec2::254 counter
              }
            }
            EOF
            """, check: true)
        try lab.spawn(in: .host, ["/usr/bin/python3", script, "serve", "\(Self.hostServicePort)", "\(Self.hostServicePort)", "host"],
                      readyOnStdout: "ready")
    }

    func newSandbox() throws -> String {
        let name = "\(host.dropLast(5))-s\(sandboxes.count)"
        try sh("ip netns add \(name)", check: true)
        sandboxes.append(name)
        return name
    }

    /// Packets that reached the metadata addresses.
    func metadataCount() throws -> Int {
        let output = try sh("ip netns exec \(inet) nft list table inet cgtmeta", check: true).output
        return output.components(separatedBy: "counter packets ").dropFirst()
            .reduce(0) { $0 + (Int($1.prefix(while: \.isNumber)) ?? 0) }
    }

    /// Runs probes in a namespace; each target is `tcp ADDR PORT`, `udp ADDR PORT`, `icmp ADDR`, `curl URL` or
    /// `cmd SHELL`. Returns one result per target: "open", "reply", "ok" mean something came back.
    /// Throws when a target has no result: the probe script died (or never ran), and a missing key must not
    /// read as "not open" (`probe[t] != "open"` is true for nil).
    func probe(in namespace: String, _ targets: [String], asUser: Bool = false) throws -> [String: String] {
        let prefix = asUser ? ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"] : []
        let run = try Netlab.execute(["ip", "netns", "exec", namespace] + prefix + ["/usr/bin/python3", script, "probe"] + targets,
                                     timeout: 30)
        var results: [String: String] = [:]
        for line in run.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { results[String(parts[0])] = String(parts[1]) }
        }
        let missing = targets.filter { results[$0] == nil }
        guard missing.isEmpty, !targets.isEmpty else {
            throw CagentError(stage: "probe", "the probe in \(namespace) gave no result for \(missing) (exit \(run.status)): \(run.stderr.suffix(500))",
                              hint: "the probe script died or never ran: its silence proves nothing")
        }
        return results
    }

    func nftRuleset(in namespace: String? = nil) throws -> String {
        try sh("ip netns exec \(namespace ?? host) nft list ruleset", check: true).output
    }

    func destroy() {
        for name in sandboxes { _ = try? sh("ip netns del \(name)") }
        lab.shutdown()
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
    print("ready", flush=True)
    while True: time.sleep(3600)

def record(port, path):
    # Every TCP connection's first bytes and every datagram, one line each: what reached this listener.
    out = open(path, "a")
    lock = threading.Lock()
    def note(kind, peer, data):
        with lock:
            out.write("%s %s %r\n" % (kind, peer[0], data)); out.flush()
    def tcp():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port)); s.listen(64)
        while True:
            c, peer = s.accept()
            c.settimeout(1.0)
            try: data = c.recv(256)
            except OSError: data = b""
            note("tcp", peer, data)
            try: c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            except OSError: pass
            c.close()
    def udp():
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        while True:
            data, peer = s.recvfrom(2048)
            note("udp", peer, data)
            s.sendto(b"ok", peer)
    threading.Thread(target=tcp, daemon=True).start()
    threading.Thread(target=udp, daemon=True).start()
    print("ready", flush=True)
    while True: time.sleep(3600)

def probe(target):
    kind, rest = target.split(" ", 1)
    try:
        if kind == "tcp":
            addr, port = rest.rsplit(" ", 1)
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(1.5)
            s.connect((addr, int(port)))
            try: s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            except OSError: pass
            s.close()
            return "open"
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
        if kind == "ra":
            # A router advertisement with one SLAAC prefix, sent to all nodes on an interface.
            iface, prefix = rest.split(" ")
            addr = socket.inet_pton(socket.AF_INET6, prefix)
            ra = bytes([134, 0, 0, 0, 64, 0]) + (1800).to_bytes(2, "big") + bytes(8)
            pio = bytes([3, 4, 64, 0xc0]) + (86400).to_bytes(4, "big") + (14400).to_bytes(4, "big") + bytes(4) + addr
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            index = socket.if_nametoindex(iface)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            s.sendto(ra + pio, ("ff02::1", 0, 0, index))
            return "ok"
        if kind == "cmd":
            r = subprocess.run(rest, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return "ok" if r.returncode == 0 else "fail%d" % r.returncode
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error%d" % (e.errno or 0)
    return "unknown"

if sys.argv[1] == "record":
    record(int(sys.argv[2]), sys.argv[3])
elif sys.argv[1] == "serve":
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
