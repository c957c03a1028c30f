import CShim
import CagentCapture
import CagentCore
import CagentDNS
import CagentNetwork
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// `cagent enforce`'s network: the session's veth and host-side allowlist (NetworkSession), the DNS gate on
/// the gateway addresses (GatePolicy from the profile's domains and name endpoints, pinning into the
/// session's allow sets), and the live denial lines (NflogReader -> DenialReporter <- Gate).
///
/// Everything the profile says is parsed in `init`, before any sandbox exists; `start(pid:)` runs in the
/// launcher's `beforeRelease` (the sandbox's namespaces exist, nothing inside runs yet) and either brings up
/// all of it or undoes what it did and throws: the agent never runs without its network policy.
/// `stop()` is idempotent and runs on every exit path.
final class EnforceNetwork: @unchecked Sendable {
    /// Stages `--fail-at-stage` can name here (tests of the fail-closed paths): the failure is raised right
    /// after that part started, so the teardown of what came before is exercised.
    static let stages = ["network", "dns-gate", "proxy", "nflog"]

    let sessionID: String
    let paths: CagentPaths
    let entries: [AllowEntry]
    let domains: [String]
    let namedEndpoints: [(host: String, port: PinPort)]
    let upstream: UpstreamConfig
    let book = AddressBook()
    let reporter: DenialReporter
    var failAt: String?
    let asker: GateAsker?
    /// `--proxy`: the upstream proxy the filtering proxy chains allowed requests to (nil: no proxy mode).
    let upstreamProxy: SocketAddress?
    let output: @Sendable (String) -> Void

    private(set) var session: NetworkSession?
    private var gate: Gate?
    private var proxy: FilteringProxy?
    /// `--proxy`: the proxy's refusal lines and counts.
    let proxyLines: ProxyDenialLines
    private var reader: NflogReader?
    /// Queries the gate's sockets dropped (counted at stop).
    private(set) var droppedQueries = 0

    init(profile: NetworkPolicy, sessionID: String, paths: CagentPaths, upstreamOverride: [String],
         allowHint: String? = nil, asker: GateAsker? = nil, upstreamProxy: SocketAddress? = nil,
         output: @escaping @Sendable (String) -> Void) throws {
        self.asker = asker
        self.upstreamProxy = upstreamProxy
        self.output = output
        proxyLines = ProxyDenialLines(output: output)
        self.sessionID = sessionID
        self.paths = paths
        let parsed = try AllowEntry.parse(cidrs: profile.cidrs,
                                          endpoints: profile.endpoints.map { ($0.host, $0.port, $0.proto.rawValue) })
        entries = parsed.entries
        domains = profile.domains
        namedEndpoints = parsed.named.map { ($0.host, PinPort($0.proto == .udp ? .udp : .tcp, $0.port)) }
        do {
            _ = try GatePolicy(domains: domains, endpoints: namedEndpoints, ipv6: true)   // refuse a bad pattern now
            upstream = upstreamOverride.isEmpty ? try UpstreamConfig.system(read: FileSystem.readText)
                                                : try UpstreamConfig(override: upstreamOverride)
        } catch {
            throw CagentError(stage: "profile network", "\(error)",
                              hint: "fix the profile's network section or the host's resolver (/etc/resolv.conf)")
        }
        reporter = DenialReporter(book: book, allowHint: allowHint, output: output)
    }

    /// The gateway's IPv4 address (the gate), kept for the session record after teardown.
    private(set) var gateAddress: String?

    /// The gateway addresses, the sandbox's resolvers (every port-53 packet is redirected to the gate anyway).
    var nameservers: [String] {
        guard let session else { return [] }
        return [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0?.description }
    }

    /// `--proxy`: what the agent's HTTP_PROXY/HTTPS_PROXY name (the filtering proxy on the gateway), or nil.
    var proxyURL: String? {
        guard upstreamProxy != nil, let session, let port = session.proxyPort else { return nil }
        if let gateway = session.addresses.gateway4 { return "http://\(gateway):\(port)" }
        return session.addresses.gateway6.map { "http://[\($0)]:\(port)" }
    }

    /// Brings up uplink, firewall, gate and denial reader for the sandbox whose init is `pid`.
    func start(pid: Int32) throws {
        do {
            // setns is per thread: the session is set up on a thread of its own (it enters the sandbox's
            // namespace for its side of the veth), never on the launcher's main thread.
            let id = sessionID, paths = paths, entries = entries, proxied = upstreamProxy != nil
            session = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") {
                try NetworkSession.setUp(sessionID: id, sandbox: NetworkNamespace(pid: pid), entries: entries, paths: paths,
                                         filteringProxy: proxied)
            }
            try failIfAsked("network")
            guard let session else { return }
            gateAddress = (session.addresses.gateway4 ?? session.addresses.gateway6)?.description
            for warning in session.warnings {
                FileDescriptorStream.standardError.write("cagent: warning: \(TerminalEscape.escape(warning))\n")
            }
            let reporter = reporter
            let policy: GatePolicy
            do { policy = try GatePolicy(domains: domains, endpoints: namedEndpoints, ipv6: session.addresses.gateway6 != nil) }
            catch { throw CagentError(stage: "dns gate", "\(error)") }
            let listen = [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 }
            // Proxy mode: the profile's names are reached only through the filtering proxy; the gate answers
            // no name (nothing is pinned, no direct connection to a web host opens).
            var configuration = Gate.Configuration(listen: listen, port: session.gatePort,
                                                   policy: upstreamProxy == nil ? policy : GatePolicy(rules: [], ipv6: policy.ipv6),
                                                   upstream: upstream)
            configuration.asker = upstreamProxy == nil ? asker : nil   // proxy mode: no name is resolved, none asked about
            let gate = Gate(configuration: configuration,
                            pinner: session.firewall, book: book) { reporter.record($0) }
            try gate.start()
            self.gate = gate
            try failIfAsked("dns-gate")
            if let upstreamProxy, let proxyPort = session.proxyPort {
                let lines = proxyLines
                let proxy = FilteringProxy(configuration: .init(listen: listen, port: proxyPort, policy: policy, upstream: upstreamProxy)) {
                    lines.record($0)
                }
                try proxy.start()
                self.proxy = proxy
                try failIfAsked("proxy")
            }
            let reader = NflogReader(group: session.nflogGroup) { reporter.record($0) }
            try reader.start()
            self.reader = reader
            try failIfAsked("nflog")
        } catch {
            stop()
            throw error
        }
    }

    private func failIfAsked(_ stage: String) throws {
        if failAt == stage { throw CagentError(stage: stage, "failing as asked (--fail-at-stage)") }
    }

    /// Stops the reader (draining what is queued) and the gate, then removes the uplink, the chains and the lease.
    /// Returns a teardown failure (the caller reports it; the other parts are still stopped).
    @discardableResult
    func stop() -> CagentError? {
        reader?.stop(); reader = nil
        proxy?.stop(); proxy = nil
        if let gate {
            gate.stop()
            // Never silent: queries a flood made the kernel drop are counted and said (docs/benchmarks.md "Load").
            if gate.droppedQueries > 0 {
                output("cagent: the DNS gate could not keep up: \(gate.droppedQueries) queries dropped unanswered (a flood from the sandbox?)")
            }
            droppedQueries = gate.droppedQueries
        }
        gate = nil
        guard let session else { return nil }
        self.session = nil
        do {
            try NamespaceThread.run(netnsPath: "/proc/self/ns/net") { try session.tearDown() }
            return nil
        } catch let error as CagentError {
            return error
        } catch {
            return CagentError(stage: "network teardown", "\(error)")
        }
    }
}
