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
        // The sets stay: the gate's pinner writes into them (learn's gate observes; it pins nothing that matters here).
        var (batch, rules) = sandboxPrelude(gatePort: gatePort, gates: [IPAddress("127.0.0.1")!])
        let log = Statement.log(group: nflogGroup, prefix: denyPrefix)
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
