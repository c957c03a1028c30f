import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// `cagent enforce --in-container`: the allowlist in the container's own network namespace, which the agent
/// shares. There is no veth and no host side: the rules sit on the output hook and tell cagent's own traffic
/// (uid 0: the DNS gate's upstream queries) from the agent's (any other uid; the agent never runs as root and
/// holds no capability, so it can neither become uid 0 nor change these rules: docs/security.md "Container
/// mode").
///
/// The agent's traffic: every port-53 packet is redirected to the gate on 127.0.0.1 (before Docker's own DNAT
/// of its embedded resolver, priority -150 < -100: the first NAT binding wins); Docker's resolver address
/// itself is closed; other loopback traffic passes (the agent's own local services); then the never-reachable
/// addresses, the gate's pins and the profile's literal entries, and everything else is logged and rejected,
/// as in the host-side session chain (Firewall.sessionBatch).
package enum ContainerFirewall {
    /// The set-name stem (the sets are Firewall's, named as for an interface called this).
    package static let stem = "ctr"
    /// Where the gate listens inside the container (every port-53 packet of the agent is redirected here).
    package static let gateAddress = IPAddress("127.0.0.1")!
    package static let gatePort: UInt16 = 1053
    /// The nflog group of the denial lines (the namespace is the container's own: no other session shares it).
    package static let nflogGroup: UInt16 = 1053
    /// Docker's embedded resolver on user-defined networks; reachable only through the gate.
    package static let dockerResolver = IPNetwork("127.0.0.11/32")!

    static let loopback: [IPNetwork] = [IPNetwork("127.0.0.0/8")!, IPNetwork("::1/128")!]
    static let natChain = "agent_dns"
    static let filterChain = "agent_out"

    /// Enforce: the allowlist above. Learn: the same DNS redirect (the gate observes, forwarding every name)
    /// and loopback; the never-reachable addresses and the LAN stay dropped (Firewall.learnUnreachable); every
    /// other new flow of the agent is logged with Firewall.flowPrefix and accepted.
    package static func batch(entries: [AllowEntry], mode: Firewall.Mode = .enforce) -> NftBatch {
        var batch = NftBatch(table: Firewall.table)
        batch.operations.append(.addTable)
        let sets = Firewall.setNames(stem)
        batch.operations += [.addSet(Firewall.allowSet(sets.allow4, .v4)), .addSet(Firewall.allowSet(sets.allow6, .v6)),
                             .addSet(Firewall.networkSet(sets.nets4, .v4)), .addSet(Firewall.networkSet(sets.nets6, .v6))]
        let agent = Match.socketUID(0, equal: false)
        var rules: [NftRule] = []

        batch.operations.append(.addChain(NftChain(name: natChain, hook: Firewall.hook("nat", NF_INET_LOCAL_OUT, -150, "output"))))
        for proto in [L4.udp, L4.tcp] {
            rules.append((agent + Match.l4proto(proto) + Match.destinationPort(53) + Statement.redirect(to: gatePort)).rule(in: natChain))
        }

        batch.operations.append(.addChain(NftChain(name: filterChain, hook: Firewall.hook("filter", NF_INET_LOCAL_OUT, 0, "output"))))
        let log = Statement.log(group: nflogGroup, prefix: Firewall.denyPrefix)
        rules.append((Match.socketUID(0) + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.established() + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.destination(in: dockerResolver) + log + Statement.verdict(.drop)).rule(in: filterChain))
        // Loopback by address: the output hook's oifname is the route before the redirect (eth0 for a query
        // to a remote resolver), so the redirected query to the gate would not match `oifname "lo"`.
        for network in loopback {
            rules.append((Match.destination(in: network) + Statement.verdict(.accept)).rule(in: filterChain))
        }
        for network in Firewall.neverReachable {
            rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: filterChain))
        }
        if mode == .learn {
            for network in Firewall.learnUnreachable where !Firewall.neverReachable.contains(where: { $0.contains(network) })
                && !loopback.contains(where: { $0.contains(network) || network.contains($0) }) {
                rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: filterChain))
            }
            rules.append((Match.ctStateNew() + Statement.log(group: nflogGroup, prefix: Firewall.flowPrefix) + Statement.verdict(.accept))
                .rule(in: filterChain))
            rules.append((log + Statement.verdict(.drop)).rule(in: filterChain))
            batch.operations += rules.map { .addRule($0) }
            return batch
        }
        rules.append((Match.icmpType(.v4, 8, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: filterChain))
        rules.append((Match.icmpType(.v6, 128, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: filterChain))
        // IPv6 neighbour discovery is the kernel's (no socket): it must leave, or nothing on the link resolves.
        for (type, name) in [(UInt8(133), "nd-router-solicit"), (135, "nd-neighbor-solicit"), (136, "nd-neighbor-advert"),
                             (143, "mld2-listener-report")] {
            rules.append((Match.icmpType(.v6, type, name: name) + Statement.verdict(.accept)).rule(in: filterChain))
        }
        rules.append((Match.allowLookup(.v4, set: sets.allow4) + Match.refresh(.v4, set: sets.allow4, seconds: Firewall.pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.allowLookup(.v6, set: sets.allow6) + Match.refresh(.v6, set: sets.allow6, seconds: Firewall.pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.allowLookup(.v4, set: sets.nets4) + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.allowLookup(.v6, set: sets.nets6) + Statement.verdict(.accept)).rule(in: filterChain))
        rules.append((Match.l4proto(L4.tcp) + log + Statement.rejectTCPReset()).rule(in: filterChain))
        rules.append((log + Statement.rejectAdminProhibited()).rule(in: filterChain))
        batch.operations += rules.map { .addRule($0) }

        let spec = Firewall.SessionSpec(interface: stem, gateway4: nil, gateway6: nil, gatePort: gatePort,
                                        nflogGroup: nflogGroup, entries: entries)
        for (set, elements) in Firewall.staticElements(spec) { batch.operations.append(.addElements(set: set, elements)) }
        return batch
    }

    /// Installs the ruleset in the calling thread's namespace (the container's) and returns the handle the gate
    /// pins through. Refuses when a `cagent` table exists already (another cagent in this container).
    package static func install(entries: [AllowEntry], mode: Firewall.Mode = .enforce) throws -> SessionFirewall {
        do {
            if try Firewall.tableExists() {
                throw CagentError(stage: "firewall", "this network namespace has an nftables table inet \(Firewall.table) already",
                                  hint: "is another cagent running in this container? one per container")
            }
            try NftApplier.apply(batch(entries: entries, mode: mode), stage: "firewall")
            return try SessionFirewall(interface: stem, nflogGroup: nflogGroup, namespace: nil)
        } catch let error as CagentError where error.errno == EPERM {
            throw CagentError(stage: "firewall", "nftables refused: \(error.message)", errno: error.errno,
                              hint: "the container needs CAP_NET_ADMIN to set up its firewall: docker run --cap-add NET_ADMIN (cagent gives it up before the agent starts)")
        }
    }

    /// Removes the table (the namespace dies with the container anyway; this keeps a restarted cagent working).
    package static func remove() throws {
        var batch = NftBatch(table: Firewall.table)
        batch.operations.append(.deleteTable)
        try NftApplier.apply(batch, stage: "firewall teardown")
    }
}
