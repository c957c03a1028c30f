import CNftnl
#if canImport(Glibc)
import Glibc
#endif

/// Rootless learn's ruleset, inside the sandbox's own namespace like rootless enforce's (`sandboxBatch`): the
/// root learn session's forward chain moved onto the output hook. Every new flow is logged (`flowPrefix`, the
/// flow log) and accepted, except what learn keeps out of reach in both modes: metadata, the LAN, the user-mode
/// stack's own network, and the host's own addresses (`hostAddresses`: the user-mode stack connects from the
/// host's namespace, so a flow to one of them would reach the host's services, which a root session's input
/// chain closes).
extension Firewall {
    package static func sandboxLearnBatch(gatePort: UInt16, nflogGroup: UInt16, uplinkNetwork: IPNetwork,
                                         hostAddresses: [IPNetwork]) -> NftBatch {
        var batch = NftBatch(table: table)
        batch.operations.append(.addTable)
        // The sets the gate's pinner writes into (learn's gate observes; it pins nothing that matters here).
        let sets = setNames(sandboxInterface)
        batch.operations += [.addSet(allowSet(sets.allow4, .v4)), .addSet(allowSet(sets.allow6, .v6)),
                             .addSet(networkSet(sets.nets4, .v4)), .addSet(networkSet(sets.nets6, .v6))]
        var rules: [NftRule] = []
        batch.operations.append(.addChain(NftChain(name: "dns", hook: hook("nat", NF_INET_LOCAL_OUT, -100, "output"))))
        for proto in [L4.udp, L4.tcp] {
            rules.append((Match.l4proto(proto) + Match.destinationPort(53) + Statement.redirect(to: gatePort)).rule(in: "dns"))
        }
        batch.operations.append(.addChain(NftChain(name: "output", hook: hook("filter", NF_INET_LOCAL_OUT, 0, "output"))))
        let log = Statement.log(group: nflogGroup, prefix: denyPrefix)
        rules.append((Match.interfacePrefix("lo", output: true) + Statement.verdict(.accept)).rule(in: "output"))
        for proto in [L4.udp, L4.tcp] {
            rules.append((Match.destination(IPAddress("127.0.0.1")!) + Match.l4proto(proto) + Match.destinationPort(gatePort)
                          + Statement.verdict(.accept)).rule(in: "output"))
        }
        rules.append((Match.established() + Statement.verdict(.accept)).rule(in: "output"))
        // The sandbox's own link chatter on the uplink's device (MLD reports, router and neighbour solicitations
        // to link-local multicast): no flow of the agent's, dropped without a line.
        rules.append((Match.destination(in: IPNetwork("ff02::/16")!) + Statement.verdict(.drop)).rule(in: "output"))
        // One rule per block: a block inside another one of the list (10.0.2.0/24 in 10.0.0.0/8) adds nothing.
        let blocks = neverReachable + [uplinkNetwork] + learnUnreachable + hostAddresses
        let dropped = blocks.indices.filter { index in
            !blocks.indices.contains { other in
                other != index && blocks[other].contains(blocks[index]) && (blocks[other] != blocks[index] || other < index)
            }
        }.map { blocks[$0] }
        for network in dropped {
            rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: "output"))
        }
        rules.append((Match.ctStateNew() + Statement.log(group: nflogGroup, prefix: flowPrefix) + Statement.verdict(.accept))
            .rule(in: "output"))
        // Invalid or untracked: not a flow anyone needs.
        rules.append((log + Statement.verdict(.drop)).rule(in: "output"))
        batch.operations += rules.map { .addRule($0) }
        return batch
    }
}
