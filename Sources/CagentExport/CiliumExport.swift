import CagentProfile

/// A profile as a `CiliumNetworkPolicy` (cilium.io/v2): the same model as cagent's gate. Names are
/// allowed by `toFQDNs`, whose addresses Cilium learns from the DNS answers its DNS proxy sees; the DNS
/// rule sends every lookup to kube-dns through that proxy.
package enum CiliumExport {
    /// Which lookups the DNS rule lets through to kube-dns.
    package enum DNSLookups: String, Sendable, CaseIterable {
        /// Every name (`matchPattern: "*"`, Cilium's usual DNS visibility rule): only the profile's names get
        /// reachable addresses, but lookups of any name reach the cluster's resolver (a DNS tunnel stays open).
        case all
        /// Only the profile's names, as cagent's gate (which answers NXDOMAIN for the rest and forwards
        /// nothing); Cilium's proxy answers REFUSED for the others, including the search-list candidates
        /// (`name.<ns>.svc.cluster.local`) a pod tries first with `ndots: 5`, which musl's resolver treats as
        /// a failure instead of trying the next candidate.
        case profile
    }

    /// kube-dns as Cilium's own examples select it.
    static let dnsSelector: PolicyNode = .map([("matchLabels", .map([
        ("k8s:io.kubernetes.pod.namespace", .string("kube-system")),
        ("k8s:k8s-app", .string("kube-dns")),
    ]))])

    package static func policy(_ profile: Profile, target: ExportTarget, dnsLookups: DNSLookups = .all) -> ExportedPolicy {
        let plan = NetworkPlan(profile.network)
        var egress: [PolicyNode] = []

        let lookups = plan.lookupNames
        let dnsRules: [PolicyNode] = dnsLookups == .all ? [.map([("matchPattern", .string("*"))])] : lookups.map(selector)
        if !dnsRules.isEmpty {
            egress.append(.map([
                ("toEndpoints", .list([dnsSelector])),
                ("toPorts", .list([.map([
                    ("ports", .list([port(PolicyPort(.udp, 53)), port(PolicyPort(.tcp, 53))])),
                    ("rules", .map([("dns", .list(dnsRules))])),
                ])])),
            ]))
        }
        let domains = plan.exactDomains + plan.wildcardDomains
        if !domains.isEmpty {
            egress.append(rule("toFQDNs", domains.map(selector), ports: PolicyPort.web))
        }
        for group in plan.namedEndpoints {
            egress.append(rule("toFQDNs", group.hosts.map(selector), ports: group.ports))
        }
        for group in plan.addressEndpoints {
            egress.append(rule("toCIDRSet", group.hosts.map { .map([("cidr", .string($0))]) }, ports: group.ports))
        }
        if !plan.cidrs.isEmpty {
            let blocks: [PolicyNode] = plan.cidrs.map { block in
                var pairs: [(String, PolicyNode)] = [("cidr", .string(block.cidr))]
                if !block.except.isEmpty { pairs.append(("except", .list(block.except.map { .string($0) }))) }
                return .map(pairs)
            }
            egress.append(rule("toCIDRSet", blocks, ports: PolicyPort.allTCP))
        }

        var notExported = plan.notExported
        let multiLevel = plan.wildcardDomains.filter { $0.hasPrefix("**.") }
        var comments = [
            "CiliumNetworkPolicy exported by cagent from profile \(target.profileReference).",
            "Egress only: the profile's filesystem, hide, env and limits have no network-policy equivalent.",
            "Answers with private, loopback or metadata addresses are not refused as cagent's gate refuses them.",
        ]
        if !multiLevel.isEmpty {
            comments.append("'**.' patterns (\(multiLevel.joined(separator: ", "))) match subdomains at any depth on Cilium 1.19 and later;")
            comments.append("older Cilium reads '**' as '*' (one label): narrower than the profile, never wider.")
        }
        switch dnsLookups {
        case .all:
            comments.append("DNS: every lookup goes to kube-dns through Cilium's DNS proxy (matchPattern \"*\"); only the")
            comments.append("profile's names get reachable addresses, but any name can be looked up (a DNS tunnel stays open;")
            comments.append("cagent's gate refuses it). `--dns-lookups profile` lets only the profile's names through.")
        case .profile:
            comments.append("DNS: only the profile's names are looked up (Cilium's proxy refuses the others, as cagent's gate does);")
            comments.append("search-list candidates (ndots) are refused too, which musl-based images treat as a failure.")
            if lookups.isEmpty { comments.append("The profile allows no names: no DNS rule, so every lookup is dropped.") }
        }
        notExported.sort()
        for line in notExported { comments.append("not exported: " + line) }

        var annotations: [(String, PolicyNode)] = [("cagent/profile", .string(target.profileReference)),
                                                   ("cagent/dns-lookups", .string(dnsLookups.rawValue))]
        if !notExported.isEmpty { annotations.append(("cagent/not-exported", .string(notExported.joined(separator: "; ")))) }
        if !multiLevel.isEmpty {
            annotations.append(("cagent/multi-level-wildcards", .string("needs Cilium 1.19 or later for '**.': \(multiLevel.joined(separator: ", "))")))
        }

        var spec: [(String, PolicyNode)] = []
        if let description = profile.description { spec.append(("description", .string(description))) }
        spec.append(("endpointSelector", .map([("matchLabels", .map(target.selector.map { ($0.key, .string($0.value)) }))])))
        spec.append(("enableDefaultDeny", .map([("egress", .bool(true)), ("ingress", .bool(false))])))
        spec.append(("egress", .list(egress)))

        let document = PolicyNode.map([
            ("apiVersion", .string("cilium.io/v2")),
            ("kind", .string("CiliumNetworkPolicy")),
            ("metadata", metadata(target, annotations: annotations)),
            ("spec", .map(spec)),
        ])
        return ExportedPolicy(document: document, headerComments: comments, notExported: notExported)
    }

    /// `example.com` is a literal name; `*.x` (one label) and `**.x` (one or more labels) are Cilium's own
    /// patterns with the same meaning (its matchPattern documentation: "*.cilium.io matches subdomains of
    /// cilium at that level", "**.cilium.io matches all multilevel subdomains ... but not cilium.io").
    static func selector(_ name: String) -> PolicyNode {
        name.hasPrefix("*") ? .map([("matchPattern", .string(name))]) : .map([("matchName", .string(name))])
    }

    /// One rule for peers that share ports. A port rule holds at most 40 ports (the CRD's maxItems); more
    /// are split over several port rules of the same rule, which Cilium ORs.
    static func rule(_ peerKey: String, _ peers: [PolicyNode], ports: [PolicyPort]) -> PolicyNode {
        let chunks = stride(from: 0, to: ports.count, by: 40).map { Array(ports[$0..<min($0 + 40, ports.count)]) }
        return .map([(peerKey, .list(peers)), ("toPorts", .list(chunks.map { .map([("ports", .list($0.map(port)))]) }))])
    }

    /// Port "0" is Cilium's "every port of this protocol" (its own wildcard: `PortProtocolAny = "0/ANY"` in
    /// cilium/cilium pkg/policy/api/l4.go; the datapath wildcards a zero port).
    static func port(_ port: PolicyPort) -> PolicyNode {
        .map([("port", .string(String(port.port ?? 0))), ("protocol", .string(port.proto.rawValue))])
    }

    static func metadata(_ target: ExportTarget, annotations: [(String, PolicyNode)]) -> PolicyNode {
        var pairs: [(String, PolicyNode)] = [("name", .string(target.name))]
        if let namespace = target.namespace { pairs.append(("namespace", .string(namespace))) }
        pairs.append(("annotations", .map(annotations)))
        return .map(pairs)
    }
}
