import CagentDNS
import CagentNetwork
import CagentProfile

/// A profile as a `networking.k8s.io/v1` NetworkPolicy. NetworkPolicy knows addresses, not names: the
/// names are resolved once, at export time, and their addresses written as `ipBlock`s. That is a snapshot:
/// it goes stale when the names move (CDNs, cloud APIs), and it cannot filter DNS, so the DNS rule lets
/// every lookup through to kube-dns. The annotations say both. Wildcards cannot be resolved at all.
package enum KubernetesExport {
    package static func policy(_ profile: Profile, target: ExportTarget, resolver: any AddressResolving,
                              exportedAt: String) -> ExportedPolicy {
        let plan = NetworkPlan(profile.network)
        var notExported = plan.notExported
        for pattern in plan.wildcardDomains {
            notExported.append("\(pattern): a wildcard cannot be resolved into addresses (the Cilium export keeps it)")
        }

        // Each name once, whatever lists it; addresses the gate would refuse (rebinding) left out.
        var resolved: [String: [IPAddress]] = [:]
        let names = Set(plan.exactDomains + plan.namedEndpoints.flatMap(\.hosts)).sorted()
        for name in names {
            switch resolver.resolve(name) {
            case .failure(let failure):
                notExported.append("\(name): did not resolve (\(failure.reason))")
            case .success(let addresses):
                var kept: [IPAddress] = []
                for address in addresses {
                    if let reason = address.specialUse {
                        notExported.append("\(name): answer \(address) is \(reason), which cagent's gate refuses")
                    } else if let outer = Firewall.neverReachable.first(where: { $0.contains(address) }) {
                        notExported.append("\(name): answer \(address) is inside \(outer), never reachable")
                    } else {
                        kept.append(address)
                    }
                }
                if !kept.isEmpty { resolved[name] = kept }
            }
        }

        var egress: [PolicyNode] = []
        egress.append(.map([
            ("to", .list([.map([
                ("namespaceSelector", .map([("matchLabels", .map([("kubernetes.io/metadata.name", .string("kube-system"))]))])),
                ("podSelector", .map([("matchLabels", .map([("k8s-app", .string("kube-dns"))]))])),
            ])])),
            ("ports", .list([port(PolicyPort(.udp, 53)), port(PolicyPort(.tcp, 53))])),
        ]))

        // Addresses grouped by the ports they open, so that one address reached through a domain and an
        // endpoint gets both rules and each rule lists its blocks sorted.
        var byPorts: [[PolicyPort]: Set<String>] = [:]
        for name in plan.exactDomains { for address in resolved[name] ?? [] { byPorts[PolicyPort.web, default: []].insert(block(address)) } }
        for group in plan.namedEndpoints {
            for name in group.hosts { for address in resolved[name] ?? [] { byPorts[group.ports, default: []].insert(block(address)) } }
        }
        for group in plan.addressEndpoints { byPorts[group.ports, default: []].formUnion(group.hosts) }
        for ports in byPorts.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let blocks = byPorts[ports]!.sorted(by: blockOrder).map { PolicyNode.map([("ipBlock", .map([("cidr", .string($0))]))]) }
            egress.append(.map([("to", .list(blocks)), ("ports", .list(ports.map(port)))]))
        }
        if !plan.cidrs.isEmpty {
            let blocks: [PolicyNode] = plan.cidrs.map { entry in
                var pairs: [(String, PolicyNode)] = [("cidr", .string(entry.cidr))]
                if !entry.except.isEmpty { pairs.append(("except", .list(entry.except.map { .string($0) }))) }
                return .map([("ipBlock", .map(pairs))])
            }
            egress.append(.map([("to", .list(blocks)), ("ports", .list(PolicyPort.allTCP.map(port)))]))
        }

        notExported.sort()
        let snapshot = "addresses resolved at \(exportedAt) through the exporting machine's resolver; they go stale "
            + "when the names move: export again regularly, or use the Cilium export (names, not addresses)"
        let dnsNote = "DNS to kube-dns is allowed for every name: NetworkPolicy cannot filter lookups as cagent's gate does"
        var annotations: [(String, PolicyNode)] = [
            ("cagent/profile", .string(target.profileReference)),
            ("cagent/exported-at", .string(exportedAt)),
            ("cagent/snapshot", .string(snapshot)),
            ("cagent/dns", .string(dnsNote)),
        ]
        if !notExported.isEmpty { annotations.append(("cagent/not-exported", .string(notExported.joined(separator: "; ")))) }

        var metadata: [(String, PolicyNode)] = [("name", .string(target.name))]
        if let namespace = target.namespace { metadata.append(("namespace", .string(namespace))) }
        metadata.append(("annotations", .map(annotations)))

        let document = PolicyNode.map([
            ("apiVersion", .string("networking.k8s.io/v1")),
            ("kind", .string("NetworkPolicy")),
            ("metadata", .map(metadata)),
            ("spec", .map([
                ("podSelector", .map([("matchLabels", .map(target.selector.map { ($0.key, .string($0.value)) }))])),
                ("policyTypes", .list([.string("Egress")])),
                ("egress", .list(egress)),
            ])),
        ])
        var comments = [
            "NetworkPolicy exported by cagent from profile \(target.profileReference).",
            "A snapshot: " + snapshot + ".",
            dnsNote + ".",
            "Egress only: the profile's filesystem, hide, env and limits have no network-policy equivalent.",
        ]
        for line in notExported { comments.append("not exported: " + line) }
        return ExportedPolicy(document: document, headerComments: comments, notExported: notExported)
    }

    static func block(_ address: IPAddress) -> String { "\(address)/\(address.bytes.count * 8)" }

    /// IPv4 before IPv6, then by address, so that 9.x sorts before 10.x.
    static func blockOrder(_ a: String, _ b: String) -> Bool {
        guard let x = IPNetwork(a), let y = IPNetwork(b) else { return a < b }
        if x.address.bytes.count != y.address.bytes.count { return x.address.bytes.count < y.address.bytes.count }
        return (x.address, x.prefixLength) < (y.address, y.prefixLength)
    }

    /// No port: every port of the protocol.
    static func port(_ port: PolicyPort) -> PolicyNode {
        var pairs: [(String, PolicyNode)] = [("protocol", .string(port.proto.rawValue))]
        if let number = port.port { pairs.append(("port", .int(Int(number)))) }
        return .map(pairs)
    }
}
