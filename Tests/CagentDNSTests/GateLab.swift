import CagentNetwork
import Foundation
import Synchronization
import CagentCore
import CagentCapture
import CagentNetwork
@testable import CagentDNS

/// Spawns `/bin/sh -c command` with a clean signal mask and default dispositions (test threads block
/// most signals, and children would inherit that: SIGTERM would never reach a daemon), output to `output`.
func spawnShell(_ command: String, output: String) -> pid_t? {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv: [UnsafeMutablePointer<CChar>?] = [String](["/bin/sh", "-c", command]).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ) == 0 else { return nil }
    return pid
}

/// Runs a command and returns its exit status and combined output.
@discardableResult
func sh(_ command: String) -> (status: Int32, output: String) {
    let file = "/tmp/cgt-dns-out-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    defer { unlink(file) }
    guard let pid = spawnShell(command, output: file) else { return (127, "cannot spawn") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (code, output)
}

/// A throwaway three-namespace network for the gate (until the shared netlab lands):
///
///   sandbox (cgt-dns-<id>-s) --veth-- host (cgt-dns-<id>-h: gate, nftables, nflog) --veth-- internet (cgt-dns-<id>-i)
///
/// The internet holds a recursive-looking dnsmasq at 203.0.113.53 (the gate's upstream: allowed.test,
/// cdn.test, rebinding names; it forwards attacker.test to the attacker), the attacker's own DNS server at
/// 203.0.113.66 / 2001:db8::66 (dnsmasq logging every query), and HTTP servers at 203.0.113.80-82.
/// The host namespace redirects all port 53 from the sandbox to the gate and forwards only to pinned
/// addresses (sets allow4/allow6 with timeouts); the rest is logged to nflog group 7 and rejected.
/// Everything is removed by `close()`, which the tests call on every path.
final class GateLab: @unchecked Sendable {
    let id: String
    let dir: String
    var sandbox: String { "cgt-dns-\(id)-s" }
    var host: String { "cgt-dns-\(id)-h" }
    var internet: String { "cgt-dns-\(id)-i" }
    private var pids: [Int32] = []
    private(set) var upstreamPID: Int32 = 0
    var gate: Gate?
    var reader: NflogReader?
    let lines = LineLog()
    var reporter: DenialReporter!

    static let nflogGroup: UInt16 = 7
    /// With the product's firewall (NetworkSession) instead of the lab's own nft rules and veth.
    let productFirewall: Bool
    var session: NetworkSession?

    init(productFirewall: Bool = false) throws {
        self.productFirewall = productFirewall
        id = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        dir = "/tmp/cgt-dns-\(id)"
        do { try build() } catch { close(); throw error }
    }

    @discardableResult
    func run(_ command: String) throws -> String {
        let result = sh(command)
        guard result.status == 0 else { throw CagentError(stage: "gate lab", "\(command): \(result.output)") }
        return result.output
    }

    func inSandbox(_ command: String) -> (status: Int32, output: String) { sh("ip netns exec \(sandbox) \(command)") }
    func inHost(_ command: String) -> (status: Int32, output: String) { sh("ip netns exec \(host) \(command)") }

    private func build() throws {
        try run("mkdir -p \(dir)/www /etc/netns/\(sandbox)")
        // Inside the sandbox, names resolve through a resolver address that exists nowhere: only the
        // redirect to the gate can answer it.
        try run("echo 'nameserver 198.51.100.53' > /etc/netns/\(sandbox)/resolv.conf")
        try run("echo hello > \(dir)/www/index.html")
        for ns in [sandbox, host, internet] { try run("ip netns add \(ns) && ip -n \(ns) link set lo up") }
        if productFirewall {
            // NetworkSession creates the sandbox's veth, addresses and routes; the host needs an uplink.
            try run("""
                ip -n \(host) link add cgti type veth peer name cgti0 netns \(internet) && \
                ip -n \(host) addr add 203.0.113.2/24 dev cgti && ip -n \(host) addr add 2001:db8::2/64 dev cgti nodad && \
                ip -n \(internet) addr add 203.0.113.1/24 dev cgti0 && ip -n \(internet) addr add 2001:db8::1/64 dev cgti0 nodad && \
                for a in 53 66 80 81 82 99; do ip -n \(internet) addr add 203.0.113.$a/32 dev cgti0; done && \
                ip -n \(internet) addr add 2001:db8::66/128 dev cgti0 nodad && ip -n \(internet) addr add 2001:db8::80/128 dev cgti0 nodad && \
                ip -n \(host) link set cgti up && ip -n \(internet) link set cgti0 up && \
                ip -n \(host) route add default via 203.0.113.1 && ip -n \(host) -6 route add default via 2001:db8::1
                """)
        } else {
            try run("""
                ip -n \(host) link add cgts type veth peer name cgts0 netns \(sandbox) && \
                ip -n \(host) link add cgti type veth peer name cgti0 netns \(internet) && \
                ip -n \(host) addr add 10.99.0.1/24 dev cgts && ip -n \(host) addr add fd99::1/64 dev cgts nodad && \
                ip -n \(host) addr add 203.0.113.2/24 dev cgti && ip -n \(host) addr add 2001:db8::2/64 dev cgti nodad && \
                ip -n \(sandbox) addr add 10.99.0.2/24 dev cgts0 && ip -n \(sandbox) addr add fd99::2/64 dev cgts0 nodad && \
                ip -n \(internet) addr add 203.0.113.1/24 dev cgti0 && ip -n \(internet) addr add 2001:db8::1/64 dev cgti0 nodad && \
                for a in 53 66 80 81 82 99; do ip -n \(internet) addr add 203.0.113.$a/32 dev cgti0; done && \
                ip -n \(internet) addr add 2001:db8::66/128 dev cgti0 nodad && ip -n \(internet) addr add 2001:db8::80/128 dev cgti0 nodad && \
                for ns in \(host) \(sandbox) \(internet); do for l in $(ip -n $ns -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do ip -n $ns link set $l up; done; done && \
                ip -n \(sandbox) route add default via 10.99.0.1 && ip -n \(sandbox) -6 route add default via fd99::1 && \
                ip -n \(internet) route add 10.99.0.0/24 via 203.0.113.2 && ip -n \(internet) -6 route add fd99::/64 via 2001:db8::2 && \
                ip netns exec \(host) sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
                """)
        }
        try startDaemons()
    }

    private func spawn(_ command: String) throws {
        guard let pid = spawnShell("exec " + command, output: "/dev/null") else {
            throw CagentError(stage: "gate lab", "cannot spawn \(command)")
        }
        pids.append(pid)
    }

    private func startDaemons() throws {
        let common = "dnsmasq --no-daemon -C /dev/null --no-resolv --no-hosts --pid-file= --bind-interfaces --cache-size=0 --log-queries"
        try run("echo '203.0.113.80 moving.allowed.test' > \(dir)/moving.hosts")
        // The attacker's own DNS server: every query it logs is a leak.
        try spawn("ip netns exec \(internet) \(common) --listen-address=203.0.113.66,2001:db8::66 --log-facility=\(dir)/attacker.log --address=/attacker.test/203.0.113.99 --address=/attacker.test/2001:db8::99")
        // The upstream the gate uses (and the only one it may use).
        try spawn("ip netns exec \(internet) \(common) --listen-address=203.0.113.53 --log-facility=\(dir)/upstream.log --local-ttl=1 "
            + "--host-record=www.allowed.test,203.0.113.80 --host-record=allowed.test,203.0.113.80 --host-record=a.allowed.test,203.0.113.80 "
            + "--host-record=evilallowed.test,203.0.113.81 --host-record=edge.cdn.test,203.0.113.81 "
            + "--cname=cdn-alias.allowed.test,edge.cdn.test --host-record=v6.allowed.test,2001:db8::80 "
            + "--host-record=rebind.allowed.test,127.0.0.1 --host-record=meta.allowed.test,169.254.169.254 "
            + "--host-record=private.allowed.test,10.1.2.3 --addn-hosts=\(dir)/moving.hosts --server=/attacker.test/203.0.113.66")
        upstreamPID = pids.last!
        for address in ["203.0.113.80", "203.0.113.81", "203.0.113.82", "[2001:db8::80]"] {
            try spawn("ip netns exec \(internet) busybox httpd -f -p \(address):80 -h \(dir)/www")
        }
        // Wait until both DNS servers answer and the web servers listen.
        for _ in 0..<50 {
            let up = sh("ip netns exec \(internet) dig +short +time=1 +tries=1 @203.0.113.53 www.allowed.test").output
            let attacker = sh("ip netns exec \(internet) dig +short +time=1 +tries=1 @203.0.113.66 ready.attacker.test").output
            let web = sh("ip netns exec \(internet) ss -ltn | grep -c ':80 '").output
            if up.contains("203.0.113.80") && attacker.contains("203.0.113.99") && (Int(web.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 4 { return }
            usleep(100_000)
        }
        throw CagentError(stage: "gate lab", "dnsmasq/httpd did not come up")
    }

    /// An upstream at 203.0.113.54 that answers every UDP query with TC set and no records, and over
    /// TCP with `name A 203.0.113.81` (TTL 60): the gate must retry over TCP.
    func startTruncatingUpstream() throws {
        let script = #"""
        import socket, struct, threading
        def answer(q, tc):
            qid, = struct.unpack('>H', q[:2]); end = 12
            while q[end] != 0: end += q[end] + 1
            question = q[12:end + 5]
            if tc: return struct.pack('>HHHHHH', qid, 0x8380, 1, 0, 0, 0) + question
            rr = b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([203, 0, 113, 81])
            return struct.pack('>HHHHHH', qid, 0x8180, 1, 1, 0, 0) + question + rr
        def udp():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('203.0.113.54', 53))
            while True:
                q, a = s.recvfrom(512); s.sendto(answer(q, True), a)
        threading.Thread(target=udp, daemon=True).start()
        t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('203.0.113.54', 53)); t.listen(8)
        print('ready', flush=True)
        while True:
            c, _ = t.accept(); n, = struct.unpack('>H', c.recv(2)); q = c.recv(n); r = answer(q, False)
            c.sendall(struct.pack('>H', len(r)) + r); c.close()
        """#
        try script.write(toFile: "\(dir)/truncating.py", atomically: true, encoding: .utf8)
        try run("ip -n \(internet) addr add 203.0.113.54/32 dev cgti0")
        try spawn("ip netns exec \(internet) python3 \(dir)/truncating.py")
        for _ in 0..<300 { if sh("ip netns exec \(internet) ss -ltn").output.contains("203.0.113.54:53 ") { break }; usleep(100_000) }
    }

    /// Listeners where an encrypted resolver would be, on the attacker's address: DoT (853) and DoH (443)
    /// each answer a line naming the port, so "blocked" is told apart from "nothing listens".
    func startEncryptedDNSListeners() throws {
        try startListener(address: "203.0.113.66", port: 853)
        try startListener(address: "203.0.113.66", port: 443)
    }

    /// A TCP listener in the internet that answers "open-<port>" to every connection: the target a
    /// "blocked" check needs, so that a refused or unanswered connection cannot pass for a blocked one.
    func startListener(address: String, port: Int) throws {
        try spawn("ip netns exec \(internet) socat TCP-LISTEN:\(port),bind=\(address),reuseaddr,fork SYSTEM:'echo open-\(port)'")
        for _ in 0..<300 {
            if sh("ip netns exec \(internet) ss -ltn").output.contains("\(address):\(port) ") { return }
            usleep(100_000)
        }
        throw CagentError(stage: "gate lab", "the listener at \(address):\(port) did not come up")
    }

    /// A server at 203.0.113.80:7000 that answers "late" three seconds after a connection opens.
    func startSlowServer() throws {
        try spawn("ip netns exec \(internet) socat TCP-LISTEN:7000,bind=203.0.113.80,reuseaddr,fork SYSTEM:'sleep 3; echo late'")
        for _ in 0..<300 { if sh("ip netns exec \(internet) ss -ltn").output.contains(":7000 ") { break }; usleep(100_000) }
    }

    /// Starts the gate in the host namespace and the firewall that sends port 53 to it.
    @discardableResult
    func startGate(domains: [String], endpoints: [(host: String, port: PinPort)] = [], ipv6: Bool = true,
                   upstream: String = "203.0.113.53", clamp: GateAnswer.Clamp = .init(floor: 30, cap: 300),
                   pinner: (any AddressPinner)? = nil) throws -> Gate {
        let book = AddressBook()
        let lines = self.lines
        reporter = DenialReporter(book: book, linesPerSecond: 1000, burst: 1000) { line in lines.add(line) }
        let reporter = self.reporter!
        let policy = try GatePolicy(domains: domains, endpoints: endpoints, ipv6: ipv6)
        let configuration = Gate.Configuration(listen: [IPAddress("10.99.0.1")!, IPAddress("fd99::1")!], netnsPath: "/run/netns/\(host)",
                                               policy: policy, upstream: try UpstreamConfig(override: [upstream], timeoutMilliseconds: 1000),
                                               clamp: clamp)
        let gate = Gate(configuration: configuration, pinner: pinner ?? NftSetPinner(namespace: host), book: book) { reporter.record($0) }
        let port = try gate.start()
        self.gate = gate
        try installFirewall(gatePort: port)
        let reader = NflogReader(group: GateLab.nflogGroup, netnsPath: "/run/netns/\(host)") { reporter.record($0) }
        try reader.start()
        self.reader = reader
        return gate
    }

    /// The product's wiring: NetworkSession (veth, host-side nftables, nflog group, gate port) on the
    /// lab's host namespace, the gate on the session's gateway addresses and port with the session's
    /// SessionFirewall as its pinner, and the nflog reader on the session's group.
    func startSessionGate(domains: [String], clamp: GateAnswer.Clamp = .init(floor: 30, cap: 300)) throws {
        let paths = CagentPaths(runtime: dir + "/run", data: dir + "/data", config: dir + "/config")
        try run("mkdir -p \(paths.runtime) \(paths.data) \(paths.config)")
        let sandboxPath = "/run/netns/\(sandbox)", hostPath = "/run/netns/\(host)"
        let sessionID = "d" + String(id.prefix(11))
        let session = try NamespaceThread.run(netnsPath: hostPath) {
            try NetworkSession.setUp(sessionID: sessionID, sandbox: NetworkNamespace(path: sandboxPath), entries: [], paths: paths)
        }
        self.session = session
        let book = AddressBook()
        let lines = self.lines
        reporter = DenialReporter(book: book, linesPerSecond: 1000, burst: 1000) { line in lines.add(line) }
        let reporter = self.reporter!
        let listen = [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 }
        let configuration = Gate.Configuration(listen: listen, port: session.gatePort, netnsPath: hostPath,
                                               policy: try GatePolicy(domains: domains, ipv6: session.addresses.gateway6 != nil),
                                               upstream: try UpstreamConfig(override: ["203.0.113.53"], timeoutMilliseconds: 1000),
                                               clamp: clamp)
        let gate = Gate(configuration: configuration, pinner: session.firewall, book: book) { reporter.record($0) }
        try gate.start()
        self.gate = gate
        let reader = NflogReader(group: session.nflogGroup, netnsPath: hostPath) { reporter.record($0) }
        try reader.start()
        self.reader = reader
    }

    private func installFirewall(gatePort: UInt16) throws {
        let rules = """
            table inet cgt {
              set allow4 { type ipv4_addr; flags timeout; }
              set allow6 { type ipv6_addr; flags timeout; }
              chain dns_redirect { type nat hook prerouting priority dstnat;
                iifname "cgts" udp dport 53 redirect to :\(gatePort)
                iifname "cgts" tcp dport 53 redirect to :\(gatePort)
              }
              chain egress { type filter hook forward priority filter; policy drop;
                ct state established,related accept
                iifname "cgts" ip daddr @allow4 accept
                iifname "cgts" ip6 daddr @allow6 accept
                iifname "cgts" meta l4proto { tcp, udp } log group \(GateLab.nflogGroup) queue-threshold 1 reject
                iifname "cgts" log group \(GateLab.nflogGroup) queue-threshold 1 drop
              }
            }
            """
        try run("echo '\(rules)' > \(dir)/rules.nft && ip netns exec \(host) nft -f \(dir)/rules.nft")
    }

    /// Lines of a dnsmasq query log that asked about names under `suffix`.
    func queries(_ log: String, _ suffix: String) -> [String] {
        guard let text = try? String(contentsOfFile: "\(dir)/\(log)", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init).filter { $0.contains("query[") && $0.lowercased().contains(suffix) }
    }

    /// A last query from the host to the attacker's server, waited for in its log: dnsmasq logs queries in the
    /// order they arrive, so whatever the sandbox sent before is in the log once this is (no fixed sleep before
    /// "the attacker saw nothing"). Its name starts with "control", which the leak filters leave out.
    func attackerLogSettled() -> Bool {
        let name = "control-settled-\(UInt32.random(in: 0...UInt32.max)).attacker.test"
        _ = inHost("dig +short +time=2 +tries=1 @203.0.113.66 \(name)")
        for _ in 0..<50 {
            if !queries("attacker.log", " \(name) ").isEmpty { return true }
            usleep(100_000)
        }
        return false
    }

    var reported: [String] { lines.all }

    /// Waits up to 15 s for the reporter to print a line containing `text` (nflog records arrive
    /// asynchronously, in batches, later on a loaded machine), then returns every line containing it.
    func reported(containing text: String) -> [String] {
        for _ in 0..<150 {
            if lines.all.contains(where: { $0.contains(text) }) { break }
            usleep(100_000)
        }
        usleep(200_000)   // a duplicate would arrive by now
        return lines.all.filter { $0.contains(text) }
    }

    func setElements(_ set: String) -> String { inHost("nft list set inet cgt \(set)").output }

    func close() {
        reader?.stop(); reader = nil
        gate?.stop(); gate = nil
        if let session {
            _ = try? NamespaceThread.run(netnsPath: "/run/netns/\(host)") { try session.tearDown() }
            self.session = nil
        }
        for pid in pids { kill(pid, SIGKILL) }
        for pid in pids { var status: Int32 = 0; while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        pids = []
        for ns in [sandbox, host, internet] { sh("ip netns del \(ns) 2>/dev/null") }
        sh("rm -rf /etc/netns/\(sandbox) \(dir)")
    }
}

/// A pinner for these tests: the `nft` tool adding to the host namespace's sets (the product uses the
/// Firewall's `SessionFirewall`, keyed `address . proto . port`). Sets here are keyed by address only, and
/// `add element` does not shorten an existing timeout; good enough for these tests.
final class NftSetPinner: AddressPinner {
    let namespace: String
    init(namespace: String) { self.namespace = namespace }

    func pin(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        let set = address.isV4 ? "allow4" : "allow6"
        let result = sh("ip netns exec \(namespace) nft add element inet cgt \(set) '{ \(address) timeout \(ttl)s }'")
        guard result.status == 0 else { throw CagentError(stage: "pin", result.output) }
    }

    func refresh(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws { try pin(address, ports: ports, ttl: ttl) }
}

final class LineLog: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
