import CNftnl
import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Network configuration that is host policy, never profile content.
package struct NetworkConfig: Sendable {
    package var pool: AddressPool = .standard
    /// nflog groups are allocated from here upwards (one per session).
    package var nflogBase: UInt16 = 40000
    /// The DNS gate listens on the gateway addresses at `gatePortBase + slot`.
    package var gatePortBase: UInt16 = 15353
    /// The filtering proxy (`cagent enforce --proxy`) listens on the gateway addresses at `proxyPortBase + slot`.
    package var proxyPortBase: UInt16 = 13128
    /// The sandbox-side interface name.
    package var sandboxInterface = "eth0"

    package init() {}
}

/// One session's uplink and host-side firewall, from setup to teardown.
///
/// Setup in two parts: `prepare`, under the machine-wide SetupLock and before the sandbox need exist — a lease
/// recording what the session will create, the session's chains (the table's permanent part first if absent)
/// — then `attach`, once the sandbox's namespace exists: the veth (the chain exists before the interface
/// does), addresses, forwarding, and the sandbox side. `setUp` does both. Any failure undoes what was done
/// and throws: the agent does not run. Teardown runs on every exit path (call `tearDown()`; a dead cagent's objects are removed by
/// the next setup's clean-up or `cagent doctor --clean`).
///
/// Threads: setns is per thread. Call `setUp`/`tearDown` on a thread you own, never across an `await`.
/// `firewall` can be used from any thread.
// @unchecked: the lease, ended once by tearDown() on the owner's thread; `installFirewall` and `attach` may run on
// two threads at once (EnforceNetwork) and write different fields, read by the owner after joining both.
package final class NetworkSession: @unchecked Sendable {
    /// Steps of setup, for crash tests (`crashAfter` raises SIGKILL right after the step).
    package enum Step: String, Sendable, CaseIterable {
        case leased, firewall, link, hostAddressed, sandboxConfigured
    }

    package let sessionID: String
    package let interface: String
    package let addresses: SessionAddresses
    package let nflogGroup: UInt16
    package let gatePort: UInt16
    /// The filtering proxy's port when the session has one (its input chain accepts it).
    package let proxyPort: UInt16?
    /// Enforce (the profile decides) or learn (every new flow leaves and is logged with `Firewall.flowPrefix`).
    package let mode: Firewall.Mode
    package let firewall: SessionFirewall
    /// Things the user should know (another firewall in the way, no IPv6 uplink, ...).
    package private(set) var warnings: [String]
    /// Pre-existing host settings cagent changed (also in `<runtime>/host-changes.log`); set by `attach`.
    package private(set) var hostChanges: [String] = []

    private let paths: CagentPaths
    private let host: NetworkNamespace?
    private let config: NetworkConfig
    private var lease: SessionLease?
    /// The host's default-route interfaces forwarding is enabled on (per family used), for `attach`.
    private let uplinks: (v4: [String], v6: [String])
    private var attached = false
    /// The session's part of the ruleset (`installFirewall`).
    private let spec: Firewall.SessionSpec
    private var firewallInstalled = false

    private init(sessionID: String, interface: String, addresses: SessionAddresses, nflogGroup: UInt16, gatePort: UInt16,
                 proxyPort: UInt16?, mode: Firewall.Mode, firewall: SessionFirewall, warnings: [String], paths: CagentPaths,
                 host: NetworkNamespace?, config: NetworkConfig, lease: SessionLease, spec: Firewall.SessionSpec,
                 uplinks: (v4: [String], v6: [String])) {
        self.sessionID = sessionID; self.interface = interface; self.addresses = addresses
        self.nflogGroup = nflogGroup; self.gatePort = gatePort; self.proxyPort = proxyPort; self.mode = mode; self.firewall = firewall
        self.warnings = warnings; self.paths = paths; self.host = host; self.lease = lease
        self.config = config; self.uplinks = uplinks; self.spec = spec
    }

    /// Lease file name for a session's network part.
    static func leaseID(_ sessionID: String) -> String { "net-" + sessionID }

    /// Sets up the network of a sandbox whose network namespace is `sandbox` (open it with
    /// `NetworkNamespace(pid:)` from the launcher's pid). `host` is where cagent's side lives: nil for the
    /// calling thread's namespace (the real host), a netlab host namespace in tests. `mode: .learn` (cagent learn)
    /// accepts and logs every new flow except metadata and the LAN; `entries` are then irrelevant.
    /// The same as `prepare` then `attach`.
    package static func setUp(sessionID: String, sandbox: NetworkNamespace, entries: [AllowEntry], paths: CagentPaths,
                             config: NetworkConfig = NetworkConfig(), host: NetworkNamespace? = nil,
                             mode: Firewall.Mode = .enforce, filteringProxy: Bool = false,
                             crashAfter: Step? = nil) throws -> NetworkSession {
        let session = try prepare(sessionID: sessionID, entries: entries, paths: paths, config: config, host: host,
                                  mode: mode, filteringProxy: filteringProxy, crashAfter: crashAfter)
        do {
            try session.attach(sandbox: sandbox, crashAfter: crashAfter)
        } catch {
            try? session.tearDown()
            throw error
        }
        return session
    }

    /// The host's part of a session that needs no sandbox yet (so that it can overlap with the rest of the
    /// start): `reserve` then `installFirewall`. Any failure undoes what was done and throws; a crash leaves the
    /// lease to the next setup's clean-up.
    package static func prepare(sessionID: String, entries: [AllowEntry], paths: CagentPaths,
                               config: NetworkConfig = NetworkConfig(), host: NetworkNamespace? = nil,
                               mode: Firewall.Mode = .enforce, filteringProxy: Bool = false,
                               crashAfter: Step? = nil) throws -> NetworkSession {
        let session = try reserve(sessionID: sessionID, entries: entries, paths: paths, config: config, host: host,
                                  mode: mode, filteringProxy: filteringProxy)
        if crashAfter == .leased { kill(getpid(), SIGKILL) }
        do {
            try session.installFirewall()
        } catch {
            session.lease?.end()
            session.lease = nil
            throw error
        }
        if crashAfter == .firewall { kill(getpid(), SIGKILL) }
        return session
    }

    /// Under the setup lock: dead sessions' leftovers removed, the host's routes read, the slot (addresses,
    /// gate and proxy ports) and nflog group chosen and claimed by the lease. Names, addresses and group are
    /// known from here on; nothing is in the kernel yet. Then `installFirewall` — and `attach` may run beside
    /// it (EnforceNetwork): the chains need not come before the interface, as the permanent part drops every
    /// `cgs*` interface without a session's map entry.
    package static func reserve(sessionID: String, entries: [AllowEntry], paths: CagentPaths,
                               config: NetworkConfig = NetworkConfig(), host: NetworkNamespace? = nil,
                               mode: Firewall.Mode = .enforce, filteringProxy: Bool = false) throws -> NetworkSession {
        guard !sessionID.isEmpty, sessionID.utf8.count <= 12,
              sessionID.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) }) else {
            throw CagentError(stage: "network setup", "session id \(sessionID) must be 1-12 characters of [a-z0-9]")
        }
        let interface = Firewall.interfacePrefix + sessionID

        return try inNamespace(host) {
            let lock = try SetupLock(paths: paths)
            defer { lock.release() }
            Timing.mark("net: lock")
            var warnings: [String] = []
            let live = SessionLease.all(paths: paths).filter(\.live)
            let heldLines = live.flatMap { $0.contents.split(separator: "\n") }
            let takenSlots = Set(heldLines.compactMap { $0.hasPrefix("slot ") ? Int($0.dropFirst(5)) : nil })
            let takenGroups = Set(heldLines.compactMap { $0.hasPrefix("nflog ") ? UInt16($0.dropFirst(6)) : nil })
            if heldLines.contains("link \(interface)") {
                throw CagentError(stage: "network setup", "session \(sessionID) already has a network")
            }

            // Dead sessions' leftovers first, so their names and addresses are free again.
            _ = try? NetworkLeftovers.cleanLocked(paths: paths, thorough: false)
            Timing.mark("net: leftovers")

            let routing = try Rtnetlink(stage: "read host routes")
            let routes4 = try routing.routes(family: .v4), routes6 = try routing.routes(family: .v6)
            let uplinks4 = Set(routes4.filter(\.isDefault).compactMap { $0.outputInterface.flatMap(interfaceName) }).sorted()
            let uplinks6 = Set(routes6.filter(\.isDefault).compactMap { $0.outputInterface.flatMap(interfaceName) }).sorted()
            var useV4 = !uplinks4.isEmpty, useV6 = !uplinks6.isEmpty
            if !useV4 && !useV6 {
                useV4 = true; useV6 = true
                warnings.append("the host has no default route: the sandbox's traffic can only reach networks the host routes")
            } else if !useV6 {
                warnings.append("the host has no IPv6 default route: the sandbox gets IPv4 only (IPv6 stays filtered)")
            } else if !useV4 {
                warnings.append("the host has no IPv4 default route: the sandbox gets IPv6 only (IPv4 stays filtered)")
            }
            let slot = try config.pool.firstFree(taken: takenSlots, occupied: (routes4 + routes6).map(\.destination))
            let addresses = config.pool.addresses(slot: slot, ipv4: useV4, ipv6: useV6)
            let group = try allocateGroup(base: config.nflogBase, taken: takenGroups)
            let gatePort = config.gatePortBase &+ UInt16(truncatingIfNeeded: slot)
            let proxyPort = filteringProxy ? config.proxyPortBase &+ UInt16(truncatingIfNeeded: slot) : nil

            let lease = try SessionLease(paths: paths, sessionID: leaseID(sessionID), contents:
                "link \(interface)\nnft-chain \(interface)\nslot \(slot)\nnflog \(group)\n")
            Timing.mark("net: routes, slot, lease")
            do {
                let spec = Firewall.SessionSpec(interface: interface, gateway4: addresses.gateway4, gateway6: addresses.gateway6,
                                                gatePort: gatePort, nflogGroup: group, entries: entries, mode: mode,
                                                pool: [config.pool.pool4, config.pool.pool6], proxyPort: proxyPort)
                let firewall = try SessionFirewall(interface: interface, nflogGroup: group, namespace: nil)
                return NetworkSession(sessionID: sessionID, interface: interface, addresses: addresses, nflogGroup: group,
                                      gatePort: gatePort, proxyPort: proxyPort, mode: mode, firewall: firewall, warnings: warnings,
                                      paths: paths, host: host, config: config, lease: lease, spec: spec,
                                      uplinks: (useV4 ? uplinks4 : [], useV6 ? uplinks6 : []))
            } catch {
                lease.end()
                throw error
            }
        }
    }

    /// The session's chains, sets and map entries in one batch (the table's permanent part first if absent or
    /// out of date), under the setup lock again: two starts never both create the table. Once; a failure
    /// removes what the batch left and throws (the caller ends the session: `tearDown`).
    package func installFirewall() throws {
        guard !firewallInstalled else { return }
        let interface = interface, paths = paths, spec = spec
        try inNamespace(host) {
            let lock = try SetupLock(paths: paths)
            defer { lock.release() }
            var batch = Firewall.sessionBatch(spec)
            // One dump of the chains serves the table's checks and the foreign-firewall check below.
            let chains = try NetfilterInventory.chains()
            if !Firewall.tableExists(chains: chains) {
                var permanent = Firewall.permanentBatch()
                permanent.operations += batch.operations
                batch = permanent
            } else if Firewall.tableNeedsUpgrade(chains: chains) {
                var upgrade = Firewall.permanentUpgradeBatch()
                upgrade.operations += batch.operations
                batch = upgrade
            }
            do {
                try NftApplier.apply(batch, stage: "install the firewall of \(interface)")
            } catch {
                _ = try? NetworkSession.removeFirewall(interface: interface, paths: paths, ownLease: NetworkSession.leaseID(sessionID))
                throw error
            }
            Timing.mark("net: nft batch")
            warnings += ForeignFirewall.warnings(chains: chains)
        }
        firewallInstalled = true
    }

    /// The veth — its peer created directly in `sandbox` as `eth0` (moving a link between namespaces later
    /// costs a grace period, ~10x the creation) — the host end's addresses and forwarding, then the sandbox's
    /// side: loopback, addresses, default routes. Once. Not under the setup lock: the lease has claimed the
    /// name, slot and group, and the session's chains keep the table. On failure the caller tears the session
    /// down (`setUp` does), which removes the link as well.
    package func attach(sandbox: NetworkNamespace, crashAfter: Step? = nil) throws {
        guard !attached else { return }
        attached = true
        func checkpoint(_ step: Step) { if crashAfter == step { kill(getpid(), SIGKILL) } }
        let addresses = addresses, config = config, interface = interface
        try inNamespace(host) {
            let link = try Rtnetlink(stage: "create the uplink \(interface)")
            try link.createVeth(hostName: interface, peerName: config.sandboxInterface, peerNetns: sandbox.fd)
            checkpoint(.link)
            Timing.mark("net: veth")
            let index = try interfaceIndex(interface)
            if let gateway = addresses.gateway4 { try link.addAddress(gateway, prefixLength: config.pool.prefix4, interface: index) }
            if let gateway = addresses.gateway6 { try link.addAddress(gateway, prefixLength: config.pool.prefix6, interface: index) }
            try link.setUp(interface)
            hostChanges = try HostForwarding.enable(session: interface, uplinks4: uplinks.v4, uplinks6: uplinks.v6)
            HostForwarding.record(hostChanges, session: sessionID, paths: paths)
            checkpoint(.hostAddressed)
            Timing.mark("net: host side")
        }
        try sandbox.run {
            let inside = try Rtnetlink(stage: "configure the sandbox side of \(interface)")
            try inside.setUp("lo")
            let index = try interfaceIndex(config.sandboxInterface)
            if let address = addresses.sandbox4 { try inside.addAddress(address, prefixLength: config.pool.prefix4, interface: index) }
            if let address = addresses.sandbox6 { try inside.addAddress(address, prefixLength: config.pool.prefix6, interface: index) }
            try inside.setUp(config.sandboxInterface)
            if let gateway = addresses.gateway4 { try inside.addDefaultRoute(via: gateway, interface: index) }
            if let gateway = addresses.gateway6 { try inside.addDefaultRoute(via: gateway, interface: index) }
        }
        checkpoint(.sandboxConfigured)
        Timing.mark("net: sandbox side")
    }

    /// Removes the session's chains and sets (the table stays: `removeFirewall`), the link, and the lease.
    /// The chains go first, on a socket held open while the link is deleted: both are kernel work that waits
    /// for an RCU grace period (the chains' at the socket's close, NftApplier.applyHolding), and this way the
    /// two waits overlap instead of adding up. In between, the interface has no entry in the table's maps, so
    /// the permanent part's drops on `cgs*` close it (fail closed). The setup lock is held for the batch only
    /// (a concurrent start may upgrade the table's permanent part): the grace periods, ~20 ms, happen outside
    /// it, so that a start beside this end does not wait for them. The lease, held to the last step, keeps
    /// every clean-up away from what is being removed.
    package func tearDown() throws {
        guard let lease else { return }
        try inNamespace(host) {
            var failure: Error?
            var removal: NetlinkSocket?
            do {
                let lock = try SetupLock(paths: paths)
                defer { lock.release() }
                removal = try NetworkSession.removeFirewall(interface: interface, paths: paths, ownLease: lease.sessionID)
            } catch { failure = error }
            Timing.mark("net: firewall removed")
            withExtendedLifetime(removal) {
                do {
                    try Rtnetlink(stage: "remove the uplink \(interface)").deleteLink(interface)
                } catch let error as CagentError where error.errno == ENODEV {
                    // Gone with the sandbox's namespace already.
                } catch { failure = failure ?? error }
                Timing.mark("net: link removed")
            }
            removal = nil   // the close: what is left of the chains' grace period
            Timing.mark("net: firewall socket closed")
            self.lease = nil
            if let failure {
                lease.abandon()   // the file, unheld, names what is left for the next start's clean-up
                throw failure
            }
            lease.end()
        }
    }

    /// `tearDown` in a child process that outlives this one (cg_detach), so that the agent's exit is reported
    /// without waiting for the kernel's grace periods of the link's and the chains' removal (~20-30 ms here,
    /// docs/benchmarks.md "Networked start"). The child takes the lease with it: the session stays live for
    /// every other cagent (its slot, group and names stay taken, no clean-up touches them) until the child has
    /// removed everything and ends the lease. A failure is appended to `<runtime>/teardown.log` and leaves the
    /// lease unheld, naming what is left for the next start's clean-up or `cagent doctor --clean`, as a
    /// crashed session's. Returns false when nothing was forked (another thread of this process runs, or fork
    /// failed): the caller tears down itself.
    package func tearDownDetached() -> Bool {
        guard let lease else { return true }
        let pid = cg_detach(lease.descriptor, NetworkSession.teardownProcessName)
        if pid < 0 { return false }
        if pid > 0 {
            // The child's copy of the descriptor keeps the lock: this one only closes.
            lease.abandon()
            self.lease = nil
            return true
        }
        var status: Int32 = 0
        do {
            try tearDown()
        } catch {
            Self.logTeardownFailure("\(error)", session: sessionID, paths: paths)
            status = 1
        }
        _exit(status)
    }

    /// The detached child's name (`ps -o comm`), by which tests wait for it (Netlab's DetachedTeardowns).
    package static let teardownProcessName = "cagent-teardown"

    static func logTeardownFailure(_ message: String, session: String, paths: CagentPaths) {
        let fd = open(paths.runtime + "/teardown.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let line = "\(time(nil)) \(session) \(message)\n"
        _ = line.withCString { write(fd, $0, strlen($0)) }
    }

    /// Removes one session's part (map entries, chains, sets) in one batch. The table and its base chains stay
    /// for the next session, as Docker keeps its chains: deleting a base chain unregisters its netfilter hook,
    /// which waits for an RCU grace period (~12 ms at the end of every last session here, docs/benchmarks.md),
    /// and creating it again costs the next start. With no session in it, every rule of the kept table matches
    /// only `cgs*` interfaces, so host traffic passes it untouched (docs/network.md "The kept table").
    /// Returns the batch's socket, still open (NftApplier.applyHolding: its close waits for the kernel to free
    /// what the batch deleted).
    @discardableResult
    static func removeFirewall(interface: String, paths: CagentPaths, ownLease: String) throws -> NetlinkSocket? {
        let chains = (try? NetfilterInventory.chains()) ?? []
        // Already gone (removed by a clean-up that took it for a dead session's): nothing to do.
        guard chains.isEmpty || Firewall.sessionInterfaces(in: chains).contains(interface) else { return nil }
        return try NftApplier.applyHolding(Firewall.removeSessionBatch(interface: interface), stage: "remove the firewall of \(interface)")
    }

    /// The first nflog group at or above `base` that no live session holds and no process listens on here.
    static func allocateGroup(base: UInt16, taken: Set<UInt16>) throws -> UInt16 {
        // /proc/net/netfilter/nfnetlink_log: one line per bound group, the group number first.
        let bound = Set((FileSystem.readText("/proc/thread-self/net/netfilter/nfnetlink_log") ?? "")
            .split(separator: "\n").compactMap { UInt16($0.split(separator: " ").first ?? "") })
        var group = base
        while taken.contains(group) || bound.contains(group) {
            if group == UInt16.max { throw CagentError(stage: "nflog group", "no free nflog group above \(base)") }
            group += 1
        }
        return group
    }
}

/// Removes what dead sessions left in the current namespace: their links, chains and sets. The table itself is
/// kept (NetworkSession.removeFirewall says why); only `cagent doctor --clean` removes it, when no session is
/// live. Used by setup (under its lock) and by tests.
package enum NetworkLeftovers {
    /// Interfaces of dead sessions that still have chains in the table.
    package static func deadSessionChains(paths: CagentPaths, held: Set<String>? = nil) -> [String] {
        guard let chains = try? NetfilterInventory.chains() else { return [] }
        let held = held ?? heldInterfaces(paths: paths)
        return Firewall.sessionInterfaces(in: chains).filter { !held.contains($0) }
    }

    static func heldInterfaces(paths: CagentPaths) -> Set<String> {
        Set(SessionLease.all(paths: paths).filter(\.live).flatMap { $0.contents.split(separator: "\n") }
            .compactMap { $0.hasPrefix("link ") ? String($0.dropFirst(5)) : nil })
    }

    /// Removes one dead session's chains and sets.
    package static func removeSession(interface: String) throws {
        try NftApplier.apply(Firewall.removeSessionBatch(interface: interface), stage: "remove the chains of \(interface)")
    }

    /// Takes the setup lock and cleans; returns what was removed.
    package static func clean(paths: CagentPaths, namespace: NetworkNamespace? = nil) throws -> [String] {
        try inNamespace(namespace) {
            let lock = try SetupLock(paths: paths)
            defer { lock.release() }
            return try cleanLocked(paths: paths)
        }
    }

    /// `thorough: false` (every start): the table is searched for dead sessions' chains only when a dead
    /// session's lease is on disk — a session takes its lease before its chains and ends it only after they are
    /// gone (an unfinished teardown leaves the file), so without one there is nothing to find, and a start saves
    /// the table's dump. `cagent doctor --clean` searches always.
    static func cleanLocked(paths: CagentPaths, thorough: Bool = true) throws -> [String] {
        var removed: [String] = []
        let leases = SessionLease.all(paths: paths)
        let held = Set(leases.filter(\.live).flatMap { $0.contents.split(separator: "\n") }
            .compactMap { $0.hasPrefix("link ") ? String($0.dropFirst(5)) : nil })
        let deadLeases = leases.filter { !$0.live && $0.sessionID.hasPrefix("net-") }
        let strays = linkNames().filter { $0.hasPrefix(Firewall.interfacePrefix) && !held.contains($0) }
        if !strays.isEmpty {
            let routing = try Rtnetlink(stage: "remove leftover links")
            for name in strays {
                try? routing.deleteLink(name)
                removed.append("link \(name)")
            }
        }
        guard thorough || !deadLeases.isEmpty else { return removed }
        for interface in deadSessionChains(paths: paths, held: held) {
            try removeSession(interface: interface)
            removed.append("nft-chain \(interface)")
        }
        for lease in deadLeases { unlink(lease.path) }
        return removed
    }

    /// Interface names in the calling thread's namespace (if_nameindex uses a socket made there).
    package static func linkNames() -> [String] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var names: [String] = []
        var entry = list
        while entry.pointee.if_index != 0 {
            names.append(String(cString: entry.pointee.if_name))
            entry += 1
        }
        return names
    }
}
