import CagentCapture
import CagentCore
import CagentDNS
import CagentNetwork
import CagentSandbox

/// One sandbox's way out, for `enforce` (EnforceNetwork) and `learn` (LearnObservation) alike: the network
/// session (lease, host-side chains, veth), the DNS gate on the gateway addresses and the nflog reader of the
/// session's group. What differs between the two modes is passed in: the firewall's mode and allowlist, the
/// gate's policy and what it tells (denials or observations), what the reader does with a packet.
///
/// Started in that order, each part only once the one before it is up; `stop` (idempotent, every exit path)
/// stops the reader and the gate, then removes the session's network. Learn stops the parts one by one
/// (`stopReader`, `stopGate`, `tearDown`) to overlap them with its own draining.
// @unchecked: the session, gate and reader are set by the owner; learn's concurrent stops each clear a different one.
package final class Uplink: @unchecked Sendable {
    package let sessionID: String
    let paths: CagentPaths
    package private(set) var session: NetworkSession?
    private var gate: Gate?
    private var reader: NflogReader?
    /// `prepare` running on a thread of its own (`prepareAhead`).
    private var preparing: ThreadWork<NetworkSession>?

    package init(sessionID: String, paths: CagentPaths) {
        self.sessionID = sessionID
        self.paths = paths
    }

    /// Sets up the network session for the sandbox whose init is `pid` (its namespaces exist, nothing inside
    /// runs yet): `prepare` (or waits for `prepareAhead`'s), then `attach`.
    @discardableResult
    package func open(pid: Int32, entries: [AllowEntry], mode: Firewall.Mode = .enforce,
                      filteringProxy: Bool = false) throws -> NetworkSession {
        try waitPrepared()
        let session = try self.session ?? prepare(entries: entries, mode: mode, filteringProxy: filteringProxy)
        try attach(pid: pid)
        return session
    }

    /// Starts `prepare` on a thread of its own before the sandbox exists, so that it overlaps with the rest of
    /// the start (the volume, the clone); `open` waits for it, `tearDown` too. No thread (resources
    /// exhausted): `open` prepares on the caller's thread.
    package func prepareAhead(entries: [AllowEntry], mode: Firewall.Mode = .enforce, filteringProxy: Bool = false) {
        guard preparing == nil, session == nil else { return }
        preparing = try? ThreadWork.start(name: "cagent-uplink") { [self] in
            try prepare(entries: entries, mode: mode, filteringProxy: filteringProxy)
        }
    }

    /// Waits for `prepareAhead`'s thread, if one runs (the session is set after it); rethrows its failure.
    private func waitPrepared() throws {
        guard let preparing else { return }
        self.preparing = nil
        if case .failure(let error)? = preparing.join() { throw error }
    }

    /// What needs no sandbox yet (NetworkSession.prepare): leftovers, routes, the lease of slot and group, the
    /// session's chains. Addresses, group and ports are known from here on. setns is per thread: the netlink
    /// work runs on a thread of its own in the process's namespace.
    @discardableResult
    package func prepare(entries: [AllowEntry], mode: Firewall.Mode = .enforce, filteringProxy: Bool = false) throws -> NetworkSession {
        let id = sessionID, paths = paths
        let session = try NamespaceThread.run(netnsPath: "/proc/self/ns/net") {
            try NetworkSession.prepare(sessionID: id, entries: entries, paths: paths, mode: mode, filteringProxy: filteringProxy)
        }
        self.session = session
        return session
    }

    /// `prepare` in two parts, for a start that installs the chains beside the veth (EnforceNetwork): the
    /// reservation (NetworkSession.reserve: lease, slot, group; nothing in the kernel yet) now, then
    /// `installFirewall` and `attachAhead`, which may run on two threads at once. These three run on the
    /// calling thread, not on a `NamespaceThread` of their own: call them from threads made for them, which
    /// are in cagent's namespace and never leave it (a thread hop each was ~0.3 ms of a loaded start).
    package func reserve(entries: [AllowEntry], mode: Firewall.Mode = .enforce, filteringProxy: Bool = false) throws {
        session = try NetworkSession.reserve(sessionID: sessionID, entries: entries, paths: paths, mode: mode,
                                             filteringProxy: filteringProxy)
    }

    /// The session's chains (NetworkSession.installFirewall), after `reserve`; on the calling thread (above).
    package func installFirewall() throws {
        guard let session else { throw CagentError(stage: "network setup", "the network session is not up") }
        try session.installFirewall()
    }

    /// The veth into the namespace of `pid`, both ends addressed, the sandbox's side configured
    /// (NetworkSession.attach). Call after `prepare`, before `startGate` (the gate binds the gateways).
    package func attach(pid: Int32) throws {
        guard let session else { throw CagentError(stage: "network setup", "the network session is not up") }
        try NamespaceThread.run(netnsPath: "/proc/self/ns/net") {
            try session.attach(sandbox: NetworkNamespace(pid: pid))
        }
    }

    /// The sandbox's network namespace when it was made ahead (`attachAhead`); nil otherwise or after teardown.
    package private(set) var sandboxNamespace: NetworkNamespace?

    /// The veth into a new network namespace made now, before the sandbox exists (NetworkNamespace.fresh), its
    /// two sides configured as `attach` does: the sandbox's init is then cloned into it (Launcher's
    /// `networkNamespace`), so that its network is complete before anything inside runs and none of this is on
    /// the start's path after the clone. The namespace belongs to cagent's user namespace, not the sandbox's:
    /// nothing inside can reconfigure it. Call after `prepare` (or `reserve`), on a thread made for it (as
    /// `reserve`), instead of `attach(pid:)` (learn's way, after the clone).
    /// `namespace`: one made meanwhile (NetworkNamespace.startFresh); nil: made now.
    @discardableResult
    package func attachAhead(namespace made: NetworkNamespace? = nil) throws -> NetworkNamespace {
        guard let session else { throw CagentError(stage: "network setup", "the network session is not up") }
        if let sandboxNamespace { return sandboxNamespace }
        let namespace = try made ?? NetworkNamespace.fresh()
        try session.attach(sandbox: namespace)
        sandboxNamespace = namespace
        return namespace
    }

    /// The gateway addresses, IPv4 first: where the gate (and `--proxy`'s filtering proxy) listens, and the
    /// sandbox's resolvers. resolv.conf lists both: glibc asks the second after a SERVFAIL; every port-53
    /// packet is redirected to the gate anyway.
    package var gateways: [IPAddress] {
        guard let session else { return [] }
        return [session.addresses.gateway4, session.addresses.gateway6].compactMap { $0 }
    }

    package var nameservers: [String] { gateways.map(\.description) }

    /// The plan with its /etc/resolv.conf naming this session's gateways (the launcher's `finalizePlan`: the
    /// addresses are allocated after the clone).
    package func resolving(_ plan: SandboxPlan) -> SandboxPlan {
        var plan = plan
        plan.setNameservers(nameservers)
        return plan
    }

    /// The gate's configuration on the session's gateways and port: the caller sets the policy's details.
    package func gateConfiguration(policy: GatePolicy, upstream: UpstreamConfig) throws -> Gate.Configuration {
        guard let session else { throw CagentError(stage: "dns gate", "the network session is not up") }
        return Gate.Configuration(listen: gateways, port: session.gatePort, policy: policy, upstream: upstream)
    }

    /// Starts the gate `make` builds with the session's firewall as its pinner (enforce: denials; learn: an observer).
    package func startGate(_ configuration: Gate.Configuration, make: (Gate.Configuration, SessionFirewall) -> Gate) throws {
        guard let session else { throw CagentError(stage: "dns gate", "the network session is not up") }
        let gate = make(configuration, session.firewall)
        try gate.start()
        self.gate = gate
    }

    /// Starts the reader of the session's nflog group that `make` builds (enforce: denied packets; learn: flows).
    package func startReader(_ make: (UInt16) -> NflogReader) throws {
        guard let session else { throw CagentError(stage: "nflog", "the network session is not up") }
        let reader = make(session.nflogGroup)
        try reader.start()
        self.reader = reader
    }

    /// Stops the reader, draining what is queued.
    package func stopReader() {
        reader?.stop(); reader = nil
    }

    /// Stops the gate; returns the queries its sockets dropped (a flood from the sandbox: counted at stop).
    @discardableResult
    package func stopGate() -> Int {
        guard let gate else { return 0 }
        gate.stop(); self.gate = nil
        return gate.droppedQueries
    }

    /// Removes the veth, the session's chains (the table with the last session) and the lease; once.
    package func tearDown() throws {
        try? waitPrepared()  // a failed prepare left nothing behind
        sandboxNamespace = nil
        guard let session else { return }
        self.session = nil
        try NamespaceThread.run(netnsPath: "/proc/self/ns/net") { try session.tearDown() }
    }

    /// The network's removal in a detached child process once the session's end no longer needs it
    /// (NetworkSession.tearDownDetached: the agent's exit is reported without waiting for the kernel). Stop the
    /// reader and the gate first: the child is forked only while this process has a single thread. Returns
    /// false when nothing was detached (call `tearDown`/`stop` then).
    package func tearDownDetached() -> Bool {
        try? waitPrepared()
        guard let session else { return true }
        guard session.tearDownDetached() else { return false }
        self.session = nil
        sandboxNamespace = nil
        return true
    }

    /// Everything, in reverse order; returns a teardown failure (the caller reports it; the other parts are
    /// still stopped). Idempotent.
    @discardableResult
    package func stop() -> CagentError? {
        stopReader()
        stopGate()
        do {
            try tearDown()
            return nil
        } catch let error as CagentError {
            return error
        } catch {
            return CagentError(stage: "network teardown", "\(error)")
        }
    }
}
