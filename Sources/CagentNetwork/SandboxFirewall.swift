import CNftnl
#if canImport(Glibc)
import Glibc
#endif

/// Rootless mode's ruleset: the same allowlist as a root session's forward chain, but inside the sandbox's own
/// network namespace (its output hook), where cagent — the owner of the sandbox's user namespace — may program
/// nftables and the agent, holding no capability there, may not. The uplink is a user-mode stack
/// (RootlessUplink), so every packet the agent sends leaves through this chain first.
extension Firewall {
    /// The name the sandbox-side sets carry (SessionFirewall pins into `sandbox_allow4`, ...).
    package static let sandboxInterface = "sandbox"

    /// Table, sets, the DNS redirect to the gate (on 127.0.0.1:`gatePort` in the sandbox) and the output chain;
    /// `uplinkNetwork` is the user-mode stack's own network (its gateway maps the host's loopback when that is
    /// not disabled, and its resolver forwards to the host's): dropped like the metadata addresses.
    /// `uplinkNetwork6`: the stack's IPv6 network when it carries IPv6 (the gate then listens on ::1 too, and
    /// neighbour discovery with the stack's router is let out: without it no IPv6 packet leaves at all).
    package static func sandboxBatch(gatePort: UInt16, nflogGroup: UInt16, entries: [AllowEntry], uplinkNetwork: IPNetwork,
                                    uplinkNetwork6: IPNetwork? = nil, hostAddresses: [IPNetwork] = []) -> NftBatch {
        let gates = [IPAddress("127.0.0.1")!] + (uplinkNetwork6 == nil ? [] : [IPAddress("::1")!])
        var (batch, rules) = sandboxPrelude(gatePort: gatePort, gates: gates)
        let sets = setNames(sandboxInterface)
        let log = Statement.log(group: nflogGroup, prefix: denyPrefix)
        if uplinkNetwork6 != nil {
            // Neighbour discovery with the stack's router, and the kernel's own link-local multicast (router
            // solicitation, MLD reports): link-scope only, answered by the stack itself, never forwarded.
            rules.append((Match.destination(in: IPNetwork("ff02::/16")!) + Statement.verdict(.accept)).rule(in: "output"))
            for (type, name) in [(UInt8(135), "nd-neighbor-solicit"), (136, "nd-neighbor-advert")] {
                rules.append((Match.icmpType(.v6, type, name: name) + Statement.verdict(.accept)).rule(in: "output"))
            }
        }
        // The host's own addresses too: slirp4netns connects from the host's namespace, so an allowed block
        // covering one would open the host's services (root mode's input chain keeps them closed).
        for network in neverReachable + [uplinkNetwork] + (uplinkNetwork6.map { [$0] } ?? []) + hostAddresses {
            rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: "output"))
        }
        rules.append((Match.icmpType(.v4, 8, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: "output"))
        rules.append((Match.icmpType(.v6, 128, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: "output"))
        rules.append((Match.allowLookup(.v4, set: sets.allow4) + Match.refresh(.v4, set: sets.allow4, seconds: pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: "output"))
        rules.append((Match.allowLookup(.v6, set: sets.allow6) + Match.refresh(.v6, set: sets.allow6, seconds: pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: "output"))
        rules.append((Match.allowLookup(.v4, set: sets.nets4) + Statement.verdict(.accept)).rule(in: "output"))
        rules.append((Match.allowLookup(.v6, set: sets.nets6) + Statement.verdict(.accept)).rule(in: "output"))
        rules.append((Match.l4proto(L4.tcp) + log + Statement.rejectTCPReset()).rule(in: "output"))
        rules.append((log + Statement.rejectAdminProhibited()).rule(in: "output"))
        batch.operations += rules.map { .addRule($0) }
        let spec = SessionSpec(interface: sandboxInterface, gateway4: nil, gateway6: nil, gatePort: gatePort,
                               nflogGroup: nflogGroup, entries: entries)
        for (set, elements) in staticElements(spec) { batch.operations.append(.addElements(set: set, elements)) }
        return batch
    }

    /// What both sandbox-side rulesets (enforce's `sandboxBatch`, learn's `sandboxLearnBatch`) begin with: the
    /// table and the sets the gate pins into; nat output sending every port-53 packet, to any address, to the
    /// gate; the filter output chain letting out loopback, the gate by address (a query to another resolver was
    /// redirected, but this hook still sees the interface it was first routed to) and replies.
    static func sandboxPrelude(gatePort: UInt16, gates: [IPAddress]) -> (batch: NftBatch, rules: [NftRule]) {
        var batch = NftBatch(table: table)
        batch.operations.append(.addTable)
        let sets = setNames(sandboxInterface)
        batch.operations += [.addSet(allowSet(sets.allow4, .v4)), .addSet(allowSet(sets.allow6, .v6)),
                             .addSet(networkSet(sets.nets4, .v4)), .addSet(networkSet(sets.nets6, .v6))]
        var rules: [NftRule] = []
        batch.operations.append(.addChain(NftChain(name: "dns", hook: hook("nat", NF_INET_LOCAL_OUT, -100, "output"))))
        for proto in [L4.udp, L4.tcp] {
            rules.append((Match.l4proto(proto) + Match.destinationPort(53) + Statement.redirect(to: gatePort)).rule(in: "dns"))
        }
        batch.operations.append(.addChain(NftChain(name: "output", hook: hook("filter", NF_INET_LOCAL_OUT, 0, "output"))))
        rules.append((Match.interfacePrefix("lo", output: true) + Statement.verdict(.accept)).rule(in: "output"))
        for gate in gates {
            for proto in [L4.udp, L4.tcp] {
                rules.append((Match.destination(gate) + Match.l4proto(proto) + Match.destinationPort(gatePort)
                              + Statement.verdict(.accept)).rule(in: "output"))
            }
        }
        rules.append((Match.established() + Statement.verdict(.accept)).rule(in: "output"))
        return (batch, rules)
    }
}
