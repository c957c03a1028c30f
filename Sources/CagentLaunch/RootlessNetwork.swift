import CShim
import CagentCapture
import CagentCore
import CagentDNS
import CagentNetwork
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// Rootless mode's network (issue #18): no veth into the host's namespace (a plain user cannot make one).
/// Instead, inside the sandbox's own network namespace, which cagent may program as the owner of the
/// sandbox's user namespace and the agent may not (it holds no capability there):
/// - the allowlist: `Firewall.sandboxBatch` on the output hook, the same sets and rules as a root session;
/// - the DNS gate on 127.0.0.1 of the sandbox (every port-53 packet redirected to it), its upstream queries
///   sent from cagent's own sockets in the host's namespace; answers pinned into the sandbox's sets;
/// - the uplink: slirp4netns (a user-mode TCP/IP stack; RootlessUplink), with its host-loopback mapping and
///   its DNS forwarder off, and its network dropped by the ruleset besides.
/// Sockets in the sandbox's namespace come from a forked helper that joins it (cg_netns_sockets).
/// Live lines as today: the gate's refusals, and the ruleset's drops read from its nflog group in the
/// sandbox's namespace (NflogReader on a socket made there).
/// `--proxy`: the filtering proxy listens on 127.0.0.1 of the sandbox (its socket made there like the gate's),
/// chains allowed requests to the upstream proxy from cagent's own sockets; the gate then answers no name.
// @unchecked: the firewall, gate, uplink and denials are set by start() and cleared by stop() on the owner's thread.
final class RootlessNetwork: @unchecked Sendable {
    let rules: ProfileNetworkRules
    let book = AddressBook()
    let reporter: DenialReporter
    let asker: GateAsker?
    static let nflogGroup: UInt16 = 1

    private var firewall: SessionFirewall?
    private var gate: Gate?
    private var uplink: RootlessUplink?
    private var denials: NflogReader?
    private var proxy: FilteringProxy?
    /// `--proxy`: the upstream proxy (nil: no proxy mode), the proxy's refusal lines and its port in the sandbox.
    let upstreamProxy: SocketAddress?
    let proxyLines: ProxyDenialLines
    private(set) var proxyPort: UInt16?
    /// `--fail-at-stage` (SetupStage): fail right after that part started, so the teardown is exercised.
    var failAt: SetupStage?

    init(profile: NetworkPolicy, upstreamOverride: [String], allowHint: String?, asker: GateAsker?,
         upstreamProxy: SocketAddress? = nil, output: @escaping @Sendable (String) -> Void) throws {
        self.asker = asker
        self.upstreamProxy = upstreamProxy
        proxyLines = ProxyDenialLines(output: output)
        rules = try ProfileNetworkRules(profile: profile, upstreamOverride: upstreamOverride,
                                        resolverHint: "the host's resolver (/etc/resolv.conf)")
        reporter = DenialReporter(book: book, allowHint: allowHint, output: output)
    }

    /// The sandbox's resolver: the gate on its own loopback.
    var nameservers: [String] { ["127.0.0.1"] }

    /// `--proxy`: what the agent's HTTP_PROXY/HTTPS_PROXY name, once the proxy listens.
    var proxyURL: String? { upstreamProxy == nil ? nil : proxyPort.map { "http://127.0.0.1:\($0)" } }

    /// Sockets of the sandbox's namespace (lo brought up there first: the gate binds 127.0.0.1).
    static func sockets(pid: Int32, _ specs: [(domain: Int32, type: Int32, proto: Int32)]) throws -> [Int32] {
        var fds = [Int32](repeating: -1, count: specs.count)
        var stage: UnsafePointer<CChar>?
        let domains = specs.map(\.domain), types = specs.map(\.type), protos = specs.map(\.proto)
        guard cg_netns_sockets(pid, domains, types, protos, Int32(specs.count), 1, &fds, &stage) == 0 else {
            throw CagentError.system("rootless network: " + (stage.map { String(cString: $0) } ?? "netns-sockets"),
                                     "cannot make a socket in the sandbox's network namespace",
                                     hint: "unprivileged user namespaces must be allowed: see `cagent doctor`")
        }
        return fds
    }

    /// Ruleset, gate, uplink for the sandbox whose init is `pid` (frozen until the plan is sent).
    func start(pid: Int32) throws {
        do {
            let netlink = try Self.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 12 /* NETLINK_NETFILTER */)])[0]
            let firewall = try SessionFirewall(interface: Firewall.sandboxInterface, nflogGroup: Self.nflogGroup,
                                               netlinkDescriptor: netlink)
            self.firewall = firewall
            try SetupStage.inject(at: .network, asked: failAt)
            // IPv6 when the host has an IPv6 default route (as in root mode), else IPv4 only.
            let ipv6 = SandboxIPv6.hostHasDefaultRoute()
            let policy = try rules.gatePolicy(ipv6: ipv6)
            // Proxy mode: the profile's names are reached only through the filtering proxy; the gate answers
            // no name (nothing is pinned, no direct connection to a web host opens), and asks about none.
            var configuration = Gate.Configuration(listen: [IPAddress("127.0.0.1")!] + (ipv6 ? [IPAddress("::1")!] : []), port: 0,
                                                   policy: upstreamProxy == nil ? policy : GatePolicy(rules: [], ipv6: ipv6),
                                                   upstream: rules.upstream)
            configuration.asker = upstreamProxy == nil ? asker : nil
            configuration.listenSocket = { family, type in
                try Self.sockets(pid: pid, [(family, type | Int32(SOCK_NONBLOCK.rawValue), 0)])[0]
            }
            let reporter = reporter
            let gate = Gate(configuration: configuration, pinner: firewall, book: book) { reporter.record($0) }
            let port = try gate.start()
            self.gate = gate
            try SetupStage.inject(at: .dnsGate, asked: failAt)
            if let upstreamProxy {
                var proxyConfiguration = FilteringProxy.Configuration(listen: [IPAddress("127.0.0.1")!], port: 0, policy: policy,
                                                                      upstream: upstreamProxy)
                proxyConfiguration.listenSocket = { family, type in
                    try Self.sockets(pid: pid, [(family, type | Int32(SOCK_NONBLOCK.rawValue), 0)])[0]
                }
                let lines = proxyLines
                let proxy = FilteringProxy(configuration: proxyConfiguration) { lines.record($0) }
                self.proxy = proxy
                proxyPort = try proxy.start()
                try SetupStage.inject(at: .proxy, asked: failAt)
            }
            try firewall.run(Firewall.sandboxBatch(gatePort: port, nflogGroup: Self.nflogGroup, entries: rules.entries,
                                                   uplinkNetwork: RootlessUplink.network, uplinkNetwork6: ipv6 ? RootlessUplink.network6 : nil,
                                                   hostAddresses: RootlessUplink.hostAddresses()))
            // The drops, live (before the uplink: nothing is lost between the two).
            let nflog = try Self.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 12 /* NETLINK_NETFILTER */)])[0]
            let denials = NflogReader(group: Self.nflogGroup, descriptor: nflog) { reporter.record($0) }
            try denials.start()
            self.denials = denials
            try SetupStage.inject(at: .nflog, asked: failAt)
            uplink = try RootlessUplink.start(pid: pid, ipv6: ipv6)
            guard ipv6 else { return }
            // IPv6 now, not by SLAAC a second later (SandboxIPv6).
            let v6 = try Self.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0 /* NETLINK_ROUTE */), (AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)])
            defer { close(v6[1]) }
            try SandboxIPv6.configure(routeDescriptor: v6[0], probe: v6[1], interface: "tap0", address: RootlessUplink.address6,
                                      prefixLength: RootlessUplink.network6.prefixLength, gateway: RootlessUplink.gateway6)
        } catch {
            stop()
            throw error
        }
    }

    /// Stops the gate and the uplink; the ruleset goes with the sandbox's namespace. Idempotent.
    func stop() {
        denials?.stop(); denials = nil
        proxy?.stop(); proxy = nil
        gate?.stop(); gate = nil
        uplink?.stop(); uplink = nil
        firewall = nil
    }
}

/// slirp4netns as the sandbox's uplink: a tap device `tap0` in the sandbox's namespace, configured by
/// slirp4netns (10.0.2.100/24, default route via 10.0.2.2), its traffic carried by ordinary sockets of the
/// user's in the host's namespace. `--disable-host-loopback` (10.0.2.2 does not reach the host's 127.0.0.1)
/// and `--disable-dns` (10.0.2.3 forwards nothing): the gate is the only resolver, the host's loopback
/// services stay out of reach. Why slirp4netns and not pasta: docs/benchmarks.md "Rootless uplink".
// @unchecked: slirp4netns's exit-pipe fd (C), closed once by the owner.
final class RootlessUplink: @unchecked Sendable {
    /// The addresses of cagent's own namespace (the host's), each as a /32 or /128: slirp4netns connects from
    /// there, so these would be the host's own services.
    static func hostAddresses() -> [IPNetwork] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var found: [IPNetwork] = []
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr else { continue }
            var bytes: [UInt8] = []
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    var raw = $0.pointee.sin_addr
                    bytes = withUnsafeBytes(of: &raw) { Array($0) }
                }
            case AF_INET6:
                address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var raw = $0.pointee.sin6_addr
                    bytes = withUnsafeBytes(of: &raw) { Array($0) }
                }
            default: continue
            }
            if let ip = IPAddress(bytes: bytes), let network = IPNetwork(address: ip, prefixLength: bytes.count * 8),
               !found.contains(network) {
                found.append(network)
            }
        }
        return found
    }

    static let network = IPNetwork("10.0.2.0/24")!
    /// `--enable-ipv6`: tap0 gets fd00::100/64, the default route goes via fd00::2 (dropped like 10.0.2.2).
    static let network6 = IPNetwork("fd00::/64")!
    static let address6 = IPAddress("fd00::100")!
    static let gateway6 = IPAddress("fd00::2")!
    /// What keeps the host out: no mapping of 10.0.2.2 to the host's loopback, no forwarding resolver at
    /// 10.0.2.3 (RootlessUplinkTests runs slirp4netns with exactly these, and without the first as control).
    /// slirp4netns parses every packet the agent sends, outside the sandbox and as the user: its seccomp
    /// filter confines it, at no measurable cost (docs/benchmarks.md). Not `--enable-sandbox`: it joins the
    /// target's user namespace and takes uid 0 there, which the sandbox's (`U U 1`) does not map (setegid fails).
    static let options = ["--configure", "--mtu=65520", "--disable-host-loopback", "--disable-dns",
                          "--enable-seccomp"]
    static let candidates = ["/usr/bin/slirp4netns", "/bin/slirp4netns"]
    let pid: pid_t
    private var exitFD: Int32

    private init(pid: pid_t, exitFD: Int32) { self.pid = pid; self.exitFD = exitFD }

    /// `ipv6`: with `--enable-ipv6` (network6; the caller configures the sandbox's address and route).
    static func start(pid sandbox: Int32, ipv6: Bool = false) throws -> RootlessUplink {
        guard let binary = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw CagentError(stage: "rootless network", "slirp4netns is not installed",
                              hint: "apt-get install slirp4netns (or run with --offline)")
        }
        var ready: [Int32] = [-1, -1], exit: [Int32] = [-1, -1]
        guard pipe(&ready) == 0, pipe(&exit) == 0 else { throw CagentError.system("rootless network", "pipe") }
        // Our ends close on exec; slirp4netns gets the write end of `ready` and the read end of `exit` as 3 and 4.
        _ = fcntl(ready[0], F_SETFD, FD_CLOEXEC); _ = fcntl(exit[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Its chatter ("sent tapfd=...") would land between the agent's lines: both streams to /dev/null.
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ready[1], 3)
        posix_spawn_file_actions_adddup2(&actions, exit[0], 4)
        let arguments = [binary] + options + (ipv6 ? ["--enable-ipv6"] : []) + ["--ready-fd=3", "--exit-fd=4", String(sandbox), "tap0"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, binary, &actions, nil, argv, [nil])
        close(ready[1]); close(exit[0])
        guard spawned == 0 else {
            close(ready[0]); close(exit[1])
            throw CagentError(stage: "rootless network", "cannot start slirp4netns", errno: spawned)
        }
        let uplink = RootlessUplink(pid: child, exitFD: exit[1])
        // Ready: one byte once tap0 is configured; EOF means slirp4netns failed (its stderr said why).
        var byte: UInt8 = 0
        var count = 0
        repeat { count = read(ready[0], &byte, 1) } while count < 0 && errno == EINTR
        close(ready[0])
        guard count == 1 else {
            uplink.stop()
            throw CagentError(stage: "rootless network", "slirp4netns did not configure the sandbox's uplink",
                              hint: "try `slirp4netns --configure PID tap0` by hand for its message; --offline starts without a network")
        }
        return uplink
    }

    /// Closing the exit fd ends slirp4netns; reaped here.
    func stop() {
        guard exitFD >= 0 else { return }
        close(exitFD); exitFD = -1
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(5_000)
        }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

