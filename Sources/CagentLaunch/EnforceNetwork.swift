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
/// Everything the profile says is parsed in `init`, before any sandbox exists; `prepareAhead()` brings up
/// all of the network on threads while the start goes on (Uplink.reserve: the lease; then the chains, the
/// reader, and a new network namespace with the veth into it, both sides configured, and the gate); the launcher
/// clones the sandbox's init into that namespace (`sandboxNamespace()`, which waits for it). `start()`
/// runs in the launcher's `beforeRelease` (nothing inside runs yet) for what is left: the warnings, the
/// `--proxy` proxy. Each either has all of it up or undoes what it did and throws: the agent never runs
/// without its network policy.
/// `stop()` is idempotent and runs on every exit path.
// @unchecked: the proxy, the prepare thread and the counts are set and cleared on the owner's thread (start, stop).
final class EnforceNetwork: @unchecked Sendable {
    let sessionID: String
    let paths: CagentPaths
    let rules: ProfileNetworkRules
    let book = AddressBook()
    let reporter: DenialReporter
    /// `--fail-at-stage` (SetupStage): the failure is raised right after that part started, so the teardown
    /// of what came before is exercised.
    var failAt: SetupStage?
    let asker: GateAsker?
    /// `--proxy`: the upstream proxy the filtering proxy chains allowed requests to (nil: no proxy mode).
    let upstreamProxy: SocketAddress?
    let output: @Sendable (String) -> Void

    /// The veth, chains, gate and nflog reader (shared with learn mode).
    let uplink: Uplink
    private var proxy: FilteringProxy?
    /// `--proxy`: the proxy's refusal lines and counts.
    let proxyLines: ProxyDenialLines
    /// Queries the gate's sockets dropped (counted at stop).
    private(set) var droppedQueries = 0

    /// The sandbox's namespace being made (NetworkNamespace.startFresh), from the start of the session.
    private let namespaceAhead: ThreadWork<NetworkNamespace>?

    init(profile: NetworkPolicy, sessionID: String, paths: CagentPaths, upstreamOverride: [String],
         allowHint: String? = nil, asker: GateAsker? = nil, upstreamProxy: SocketAddress? = nil,
         sandboxNamespace: ThreadWork<NetworkNamespace>? = nil, output: @escaping @Sendable (String) -> Void) throws {
        namespaceAhead = sandboxNamespace
        self.asker = asker
        self.upstreamProxy = upstreamProxy
        self.output = output
        proxyLines = ProxyDenialLines(output: output)
        self.sessionID = sessionID
        self.paths = paths
        uplink = Uplink(sessionID: sessionID, paths: paths)
        rules = try ProfileNetworkRules(profile: profile, upstreamOverride: upstreamOverride,
                                        resolverHint: "the host's resolver (/etc/resolv.conf)")
        reporter = DenialReporter(book: book, allowHint: allowHint, output: output)
    }

    /// The gateway's IPv4 address (the gate), kept for the session record after teardown.
    private(set) var gateAddress: String?

    /// `--proxy`: what the agent's HTTP_PROXY/HTTPS_PROXY name (the filtering proxy on the gateway), or nil.
    var proxyURL: String? {
        guard upstreamProxy != nil, let port = uplink.session?.proxyPort, let gateway = uplink.gateways.first else { return nil }
        return "http://" + SocketAddress(address: gateway, port: port).description
    }

    /// The lease, the chains and the reader coming up on a thread (`prepareAhead`) while the rest of the start goes on.
    private var preparing: ThreadWork<Void>?

    /// Starts bringing up the network — lease, slot, nflog group, the session's chains, the sandbox's
    /// namespace and veth, the gate, the denial reader — on a thread of its own, before the sandbox exists: it
    /// overlaps with the rest of the start (the cgroups, the workspace snapshot, the shadow home's volume).
    /// `sandboxNamespace()` and `start()` wait for it; `stop()` too.
    func prepareAhead() {
        guard preparing == nil else { return }
        // No thread (resources exhausted): `start` prepares on the caller's thread.
        preparing = try? ThreadWork.start(name: "cagent-uplink") { [self] in try prepareHost() }
    }

    /// The host's part and the sandbox's namespace, in parallel where nothing orders them: the namespace is
    /// made from the session's start (it needs nothing: EnforceOptions.run starts it); once the lease has
    /// named the interface, addresses and group,
    /// the chains (Uplink.installFirewall), the reader and the veth with the gate
    /// (Uplink.attachAhead) come up on three threads. The chains need not precede the interface: the table's
    /// permanent part drops every `cgs*` interface without a session's map entry.
    private func prepareHost() throws {
        let making = namespaceAhead ?? (try? NetworkNamespace.startFresh(loopbackUp: true))
        do {
            try uplink.reserve(entries: rules.entries, filteringProxy: upstreamProxy != nil)
        } catch {
            making?.join()
            throw error
        }
        Timing.mark("network: reserved")
        let reporter = reporter, uplink = uplink
        let startReader: @Sendable () throws -> Void = {
            try uplink.startReader { group in NflogReader(group: group) { reporter.record($0) } }
            Timing.mark("network: nflog reader")
        }
        let reading = try? ThreadWork.start(name: "cagent-reader", startReader)
        let installing = try? ThreadWork.start(name: "cagent-nft") { try uplink.installFirewall() }
        var failure: (any Error)?
        do {
            let namespace = try making.flatMap { try $0.join()?.get() }
            try uplink.attachAhead(namespace: namespace)
            Timing.mark("network: namespace and veth ahead")
            try startGate()
            Timing.mark("network: gate")
        } catch { failure = error }
        // Each part joined (or, without its thread, done here) before anything is reported.
        func finish(_ work: ThreadWork<Void>?, else body: () throws -> Void) {
            do {
                if let work { if case .failure(let error)? = work.join() { throw error } } else if failure == nil { try body() }
            } catch { failure = failure ?? error }
        }
        finish(installing) { try uplink.installFirewall() }
        finish(reading) { try startReader() }
        if let failure { throw failure }
    }

    /// The DNS gate on the session's gateways (the veth's host end carries them).
    private func startGate() throws {
        guard let session = uplink.session else { throw CagentError(stage: "dns gate", "the network session is not up") }
        let reporter = reporter, book = book
        let policy = try rules.gatePolicy(ipv6: session.addresses.gateway6 != nil)
        // Proxy mode: the profile's names are reached only through the filtering proxy; the gate answers
        // no name (nothing is pinned, no direct connection to a web host opens).
        var configuration = try uplink.gateConfiguration(
            policy: upstreamProxy == nil ? policy : GatePolicy(rules: [], ipv6: policy.ipv6), upstream: rules.upstream)
        configuration.asker = upstreamProxy == nil ? asker : nil   // proxy mode: no name is resolved, none asked about
        try uplink.startGate(configuration) { configuration, firewall in
            Gate(configuration: configuration, pinner: firewall, book: book) { reporter.record($0) }
        }
    }

    /// The sandbox's network namespace, wired ahead (waits for the host's part): the launcher clones the
    /// sandbox's init into it (Launcher.networkNamespace). Its descriptor stays open until the teardown.
    func sandboxNamespace() throws -> Int32 {
        do {
            try waitForHost()
            guard let namespace = uplink.sandboxNamespace else {
                throw CagentError(stage: "network setup", "the sandbox's network namespace was not made")
            }
            return namespace.fd
        } catch {
            stop()
            throw error
        }
    }

    /// Waits for the host's part (preparing it now if `prepareAhead` was not called or had no thread).
    private func waitForHost() throws {
        if let preparing {
            self.preparing = nil
            if case .failure(let error)? = preparing.join() { throw error }
        } else if uplink.session == nil {
            // On a thread of its own all the same: the caller's (the launcher's main thread) never changes namespace.
            try DedicatedThread.run(name: "cagent-uplink") { [self] in try prepareHost() }
        }
    }

    /// The rest of the network once the sandbox's init was cloned into the namespace made ahead: waits for the
    /// part prepared ahead (the clone did already), prints its warnings, starts `--proxy`'s filtering proxy.
    func start() throws {
        do {
            try waitForHost()
            guard let session = uplink.session, uplink.sandboxNamespace != nil else {
                throw CagentError(stage: "network setup", "the network session is not up")
            }
            Timing.mark("network: session")
            try SetupStage.inject(at: .network, asked: failAt)
            gateAddress = uplink.gateways.first?.description
            for warning in session.warnings {
                FileDescriptorStream.standardError.write("cagent: warning: \(TerminalEscape.escape(warning))\n")
            }
            // The gate started with the host's part (it needs only the gateways).
            try SetupStage.inject(at: .dnsGate, asked: failAt)
            if let upstreamProxy, let proxyPort = session.proxyPort {
                // The policy the gate would have used (the gate itself answers no name in proxy mode).
                let policy = try rules.gatePolicy(ipv6: session.addresses.gateway6 != nil)
                let lines = proxyLines
                let proxy = FilteringProxy(configuration: .init(listen: uplink.gateways, port: proxyPort, policy: policy,
                                                                upstream: upstreamProxy)) {
                    lines.record($0)
                }
                try proxy.start()
                self.proxy = proxy
                try SetupStage.inject(at: .proxy, asked: failAt)
            }
            // The reader started with the host's part (it needs only the group).
            try SetupStage.inject(at: .nflog, asked: failAt)
        } catch {
            stop()
            throw error
        }
    }

    /// The end of a session: the reader (draining what is queued), the proxy and the gate now — their counts
    /// are final after this — then the uplink's removal in a detached child process (Uplink.tearDownDetached),
    /// so that cagent reports the agent's exit without waiting ~20-30 ms for the kernel's grace periods. Where
    /// it cannot detach (another thread still runs), the removal runs on a thread of its own, overlapping
    /// with the rest of the end (cgroups, record, risky-change check). The returned closure waits for that
    /// removal and gives its failure; call it before exiting.
    func stopOverlapped() -> () -> CagentError? {
        preparing?.join(); preparing = nil
        uplink.stopReader()
        proxy?.stop(); proxy = nil
        stopGate()
        if uplink.tearDownDetached() {
            Timing.mark("network: removal detached")
            return { nil }
        }
        let uplink = uplink
        guard let removal = try? ThreadWork.start(name: "cagent-teardown", { uplink.stop() }) else {
            let error = uplink.stop()
            return { error }
        }
        return { (try? removal.join()?.get()) ?? nil }
    }

    /// Stops the gate; never silent about queries a flood made the kernel drop (docs/benchmarks.md "Load").
    private func stopGate() {
        droppedQueries = uplink.stopGate()
        Timing.mark("network: gate and reader stopped")
        if droppedQueries > 0 {
            output("cagent: the DNS gate could not keep up: \(droppedQueries) queries dropped unanswered (a flood from the sandbox?)")
        }
    }

    /// Stops the reader (draining what is queued), the proxy and the gate, then removes the uplink, the chains
    /// and the lease. Returns a teardown failure (the caller reports it; the other parts are still stopped).
    @discardableResult
    func stop() -> CagentError? {
        preparing?.join(); preparing = nil
        uplink.stopReader()
        proxy?.stop(); proxy = nil
        stopGate()
        return uplink.stop()
    }
}
