import CagentCore
import CagentExport
import CagentNetwork
import CagentProfile
import Testing

/// What each profile entry becomes in each policy kind (pure: no resolver, no files).
@Suite("profile export: mapping")
struct ExportMappingTests {
    static let profile = Profile(
        agent: "demo", description: "A demo agent.",
        network: NetworkPolicy(
            domains: ["api.example.com", "*.cdn.example.com", "**.deep.example.com", "github.com"],
            endpoints: [Endpoint(host: "github.com", port: 22), Endpoint(host: "git.example.com", port: 22),
                        Endpoint(host: "192.0.2.7", port: 8443), Endpoint(host: "2001:db8::1", port: 443, proto: .udp),
                        Endpoint(host: "169.254.169.254", port: 80)],
            cidrs: ["10.20.0.0/16", "128.0.0.0/1", "169.254.0.0/24", "198.51.100.7"]),
        filesystem: FilesystemPolicy(hide: ["~/.secret"]))

    static func target() throws -> ExportTarget { try ExportTarget(profile: profile, reference: "demo") }

    @Test("cilium: by default the DNS rule sees every lookup (matchPattern \"*\") and says a DNS tunnel stays open")
    func ciliumDNSAll() throws {
        let exported = CiliumExport.policy(Self.profile, target: try Self.target())
        let dns = try #require(exported.document["spec"]?["egress"]?.items.first)
        #expect(dns["toPorts"]?.items.first?["rules"]?["dns"] == .list([.map([("matchPattern", .string("*"))])]))
        #expect(exported.document["metadata"]?["annotations"]?["cagent/dns-lookups"]?.text == "all")
        #expect(exported.yaml.contains("a DNS tunnel stays open"))
        // Everything else is the same as with --dns-lookups profile.
        let strict = CiliumExport.policy(Self.profile, target: try Self.target(), dnsLookups: .profile)
        #expect(exported.document["spec"]?["egress"]?.items.dropFirst() == strict.document["spec"]?["egress"]?.items.dropFirst())
        // A profile with no names: still the DNS rule (lookups answered, nothing reachable), none in profile mode.
        let none = Profile(agent: "x", network: NetworkPolicy(cidrs: ["10.0.0.0/8"]))
        let target = try ExportTarget(profile: none, reference: "x")
        #expect(CiliumExport.policy(none, target: target).document["spec"]?["egress"]?.items.count == 2)
        #expect(CiliumExport.policy(none, target: target, dnsLookups: .profile).document["spec"]?["egress"]?.items.count == 1)
    }

    @Test("cilium --dns-lookups profile: names as toFQDNs, the DNS rule lets only the profile's names through, cidrs with exceptions")
    func cilium() throws {
        let exported = CiliumExport.policy(Self.profile, target: try Self.target(), dnsLookups: .profile)
        let doc = exported.document
        #expect(doc["apiVersion"]?.text == "cilium.io/v2")
        #expect(doc["kind"]?.text == "CiliumNetworkPolicy")
        #expect(doc["metadata"]?["name"]?.text == "cagent-demo")
        #expect(doc["spec"]?["endpointSelector"]?["matchLabels"]?["app"]?.text == "demo")
        #expect(doc["spec"]?["enableDefaultDeny"]?["egress"] == .bool(true))
        let egress = doc["spec"]?["egress"]?.items ?? []
        try #require(egress.count == 6, "\(exported.yaml)")

        // 1: DNS to kube-dns through Cilium's proxy, only the allowed names (the gate's NXDOMAIN for the rest).
        let dns = egress[0]
        #expect(dns["toEndpoints"]?.items.first?["matchLabels"]?["k8s:k8s-app"]?.text == "kube-dns")
        let dnsPorts = dns["toPorts"]?.items.first?["ports"]?.items.map { "\($0["port"]?.text ?? "")/\($0["protocol"]?.text ?? "")" }
        #expect(dnsPorts == ["53/UDP", "53/TCP"])
        let lookups = dns["toPorts"]?.items.first?["rules"]?["dns"]?.items.map { $0["matchName"]?.text ?? "pattern:" + ($0["matchPattern"]?.text ?? "") }
        #expect(lookups == ["pattern:**.deep.example.com", "pattern:*.cdn.example.com", "api.example.com",
                            "git.example.com", "github.com"])

        // 2: domains on TCP 80 and 443; wildcards as Cilium's patterns of the same meaning.
        let fqdns = egress[1]["toFQDNs"]?.items.map { $0["matchName"]?.text ?? "pattern:" + ($0["matchPattern"]?.text ?? "") }
        #expect(fqdns == ["api.example.com", "github.com", "pattern:**.deep.example.com", "pattern:*.cdn.example.com"])
        #expect(ports(egress[1]) == ["80/TCP", "443/TCP"])

        // 3: named endpoints sharing a port share a rule; 4-5: address endpoints as /32 and /128.
        #expect(egress[2]["toFQDNs"]?.items.compactMap { $0["matchName"]?.text } == ["git.example.com", "github.com"])
        #expect(ports(egress[2]) == ["22/TCP"])
        #expect(egress[3]["toCIDRSet"]?.items.compactMap { $0["cidr"]?.text } == ["192.0.2.7/32"])
        #expect(ports(egress[3]) == ["8443/TCP"])
        #expect(egress[4]["toCIDRSet"]?.items.compactMap { $0["cidr"]?.text } == ["2001:db8::1/128"])
        #expect(ports(egress[4]) == ["443/UDP"])

        // 6: cidrs on every TCP port, with the metadata blocks they contain excepted (the gate drops them first).
        let blocks = egress[5]["toCIDRSet"]?.items ?? []
        #expect(blocks.compactMap { $0["cidr"]?.text } == ["10.20.0.0/16", "128.0.0.0/1", "198.51.100.7/32"])
        #expect(blocks[1]["except"]?.items.compactMap(\.text) == ["168.63.129.16/32", "169.254.0.0/16"])
        #expect(blocks[0]["except"] == nil)
        #expect(ports(egress[5]) == ["0/TCP"])

        // Entries inside never-reachable blocks are left out, and said so.
        #expect(exported.notExported.count == 2, "\(exported.notExported)")
        #expect(exported.notExported.contains { $0.hasPrefix("169.254.0.0/24: inside 169.254.0.0/16") })
        #expect(exported.notExported.contains { $0.hasPrefix("169.254.169.254:80/tcp: inside 169.254.0.0/16") })
        #expect(doc["metadata"]?["annotations"]?["cagent/not-exported"]?.text?.contains("169.254.0.0/24") == true)
        #expect(doc["metadata"]?["annotations"]?["cagent/multi-level-wildcards"]?.text?.contains("**.deep.example.com") == true)

        // The YAML quotes what would read as something else, and says what does not map.
        let yaml = exported.yaml
        #expect(yaml.contains("- matchPattern: \"**.deep.example.com\"\n"), "\(yaml)")
        #expect(yaml.contains("port: \"443\"\n"))
        #expect(yaml.contains("k8s:io.kubernetes.pod.namespace\": kube-system\n"))
        #expect(yaml.contains("# Egress only: the profile's filesystem, hide, env and limits have no network-policy equivalent.\n"))
        #expect(yaml.contains("# not exported: 169.254.0.0/24"))
    }

    @Test("a host with more ports than one Cilium port rule holds gets several port rules")
    func manyPorts() throws {
        let profile = Profile(agent: "x", network: NetworkPolicy(endpoints: (1..<46).map { Endpoint(host: "many.example.com", port: UInt16($0)) }))
        let exported = CiliumExport.policy(profile, target: try ExportTarget(profile: profile, reference: "x"))
        let rule = try #require(exported.document["spec"]?["egress"]?.items.last)
        #expect(rule["toPorts"]?.items.map { $0["ports"]?.items.count ?? 0 } == [40, 5])
    }

    @Test("output is stable: the same profile in another order gives the same bytes")
    func stable() throws {
        var shuffled = Self.profile
        shuffled.network.domains.reverse()
        shuffled.network.endpoints.reverse()
        shuffled.network.cidrs.reverse()
        let target = try Self.target()
        #expect(CiliumExport.policy(Self.profile, target: target).yaml == CiliumExport.policy(shuffled, target: target).yaml)
        let resolver = TableResolver(["api.example.com": [IPAddress("203.0.113.10")!]])
        #expect(KubernetesExport.policy(Self.profile, target: target, resolver: resolver, exportedAt: "T").json
                == KubernetesExport.policy(shuffled, target: target, resolver: resolver, exportedAt: "T").json)
    }

    @Test("kubernetes: names resolved once into ipBlocks, rebinding answers refused, wildcards listed as not exported")
    func kubernetes() throws {
        let resolver = TableResolver([
            "api.example.com": [IPAddress("203.0.113.10")!, IPAddress("2001:db8:10::10")!],
            "github.com": [IPAddress("198.51.100.20")!],
            "git.example.com": [IPAddress("10.1.2.3")!, IPAddress("198.51.100.21")!],   // one private answer
        ])
        let exported = KubernetesExport.policy(Self.profile, target: try Self.target(), resolver: resolver,
                                               exportedAt: "2026-12-07T15:00:00Z")
        let doc = exported.document
        #expect(doc["apiVersion"]?.text == "networking.k8s.io/v1")
        #expect(doc["spec"]?["policyTypes"]?.items.compactMap(\.text) == ["Egress"])
        #expect(doc["spec"]?["podSelector"]?["matchLabels"]?["app"]?.text == "demo")
        let annotations = doc["metadata"]?["annotations"]
        #expect(annotations?["cagent/exported-at"]?.text == "2026-12-07T15:00:00Z")
        #expect(annotations?["cagent/snapshot"]?.text?.contains("go stale") == true)
        #expect(annotations?["cagent/dns"]?.text?.contains("every name") == true)

        let egress = doc["spec"]?["egress"]?.items ?? []
        try #require(egress.count == 6, "\(exported.yaml)")
        #expect(egress[0]["to"]?.items.first?["podSelector"]?["matchLabels"]?["k8s-app"]?.text == "kube-dns")
        // Rules ordered by their ports (TCP before UDP): 22, 80+443, 8443, 443/udp, then the cidrs on all TCP.
        let rules = egress.dropFirst().map { rule in
            (rule["ports"]?.items.map { "\($0["port"].map { "\($0)" } ?? "all")/\($0["protocol"]?.text ?? "")" } ?? [])
                .joined(separator: ",") + " -> " + (rule["to"]?.items.compactMap { $0["ipBlock"]?["cidr"]?.text } ?? []).joined(separator: ",")
        }
        #expect(rules == [
            "int(22)/TCP -> 198.51.100.20/32,198.51.100.21/32",
            "int(80)/TCP,int(443)/TCP -> 198.51.100.20/32,203.0.113.10/32,2001:db8:10::10/128",
            "int(8443)/TCP -> 192.0.2.7/32",
            "int(443)/UDP -> 2001:db8::1/128",
            "all/TCP -> 10.20.0.0/16,128.0.0.0/1,198.51.100.7/32",
        ], "\(exported.yaml)")
        #expect(egress[5]["to"]?.items[1]["ipBlock"]?["except"]?.items.compactMap(\.text) == ["168.63.129.16/32", "169.254.0.0/16"])

        #expect(exported.notExported.contains("**.deep.example.com: a wildcard cannot be resolved into addresses (the Cilium export keeps it)"))
        #expect(exported.notExported.contains("*.cdn.example.com: a wildcard cannot be resolved into addresses (the Cilium export keeps it)"))
        #expect(exported.notExported.contains("git.example.com: answer 10.1.2.3 is private, which cagent's gate refuses"))
        #expect(!exported.yaml.contains("10.1.2.3/32"))
    }

    @Test("a name that does not resolve is left out and reported, not a failure")
    func unresolved() throws {
        let profile = Profile(agent: "x", network: NetworkPolicy(domains: ["gone.example.com", "here.example.com"]))
        let exported = KubernetesExport.policy(profile, target: try ExportTarget(profile: profile, reference: "x"),
                                               resolver: TableResolver(["here.example.com": [IPAddress("203.0.113.9")!]]),
                                               exportedAt: "T")
        #expect(exported.notExported == ["gone.example.com: did not resolve (NXDOMAIN)"])
        #expect(exported.yaml.contains("cidr: \"203.0.113.9/32\""), "\(exported.yaml)")
    }

    @Test("the system resolver: localhost from /etc/hosts, and a loopback answer is refused like the gate refuses it")
    func systemResolver() throws {
        let answer = try SystemResolver().resolve("localhost").get()
        #expect(answer.contains(IPAddress("127.0.0.1")!), "\(answer)")
        let profile = Profile(agent: "x", network: NetworkPolicy(domains: ["localhost"]))
        let exported = KubernetesExport.policy(profile, target: try ExportTarget(profile: profile, reference: "x"),
                                               resolver: SystemResolver(), exportedAt: "T")
        #expect(exported.notExported.contains("localhost: answer 127.0.0.1 is loopback, which cagent's gate refuses"))
        #expect(!exported.yaml.contains("127.0.0.1/32"))
    }

    @Test("selectors, names and namespaces are checked at export time")
    func target() throws {
        let profile = Profile(agent: "claude-code")
        let derived = try ExportTarget(profile: profile, reference: "claude-code")
        #expect(derived.name == "cagent-claude-code")
        #expect(derived.selector.map { "\($0.key)=\($0.value)" } == ["app=claude-code"])
        let fromPath = try ExportTarget(profile: Profile(), reference: "./My_Agent.yaml")
        #expect(fromPath.name == "cagent-my-agent")
        let explicit = try ExportTarget(profile: profile, reference: "p", name: "egress.agents", namespace: "ci",
                                        selectors: ["team=payments", "example.com/role=agent"])
        #expect(explicit.selector.map { "\($0.key)=\($0.value)" } == ["example.com/role=agent", "team=payments"])
        for bad in ["app", "=x", "app=has space", "app=" + String(repeating: "a", count: 64), "bad key=x"] {
            #expect(throws: CagentError.self, "\(bad)") { try ExportTarget(profile: profile, reference: "p", selectors: [bad]) }
        }
        #expect(throws: CagentError.self) { try ExportTarget(profile: profile, reference: "p", name: "Bad_Name") }
        #expect(throws: CagentError.self) { try ExportTarget(profile: profile, reference: "p", namespace: "a.b") }
        #expect(throws: CagentError.self) { try ExportTarget(profile: profile, reference: "p", selectors: ["a=1", "a=2"]) }
    }

    func ports(_ rule: PolicyNode) -> [String] {
        rule["toPorts"]?.items.first?["ports"]?.items.map { "\($0["port"]?.text ?? "")/\($0["protocol"]?.text ?? "")" } ?? []
    }
}
