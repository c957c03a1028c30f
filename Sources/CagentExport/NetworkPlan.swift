import CagentNetwork
import CagentProfile

/// A port the gate opens: what `SessionFirewall`/`GatePolicy` pin, in the vocabulary of both policy kinds.
package struct PolicyPort: Hashable, Sendable, Comparable {
    package enum Proto: String, Sendable { case tcp = "TCP", udp = "UDP" }
    package var proto: Proto
    /// nil: every port of the protocol (what a `cidrs:` entry opens).
    package var port: UInt16?

    package init(_ proto: Proto, _ port: UInt16?) { self.proto = proto; self.port = port }

    package static func < (lhs: PolicyPort, rhs: PolicyPort) -> Bool {
        (lhs.proto.rawValue, lhs.port ?? 0) < (rhs.proto.rawValue, rhs.port ?? 0)
    }

    /// What a `domains:` entry opens (the gate's `PinPort.webDefaults`): TCP 80 and 443.
    package static let web: [PolicyPort] = [PolicyPort(.tcp, 80), PolicyPort(.tcp, 443)]
    /// What a `cidrs:` entry opens: TCP to every port (docs/network.md "What static entries open").
    package static let allTCP: [PolicyPort] = [PolicyPort(.tcp, nil)]
}

/// A profile's network section, sorted and grouped the way both exporters need it. Pure: no resolution.
package struct NetworkPlan: Sendable, Equatable {
    /// Exact names from `domains:` (TCP 80/443).
    package var exactDomains: [String]
    /// `*.x` and `**.x` patterns from `domains:` (TCP 80/443).
    package var wildcardDomains: [String]
    /// Names from `endpoints:`, grouped by the ports they open; each group's names sorted.
    package var namedEndpoints: [PortGroup]
    /// Literal addresses from `endpoints:`, as /32 or /128 blocks, grouped by ports.
    package var addressEndpoints: [PortGroup]
    /// `cidrs:` entries (all TCP ports), with the never-reachable blocks they contain as exceptions.
    package var cidrs: [Block]
    /// Profile entries the policy leaves out, and why.
    package var notExported: [String]

    package struct PortGroup: Sendable, Equatable {
        package var ports: [PolicyPort]
        package var hosts: [String]
    }

    package struct Block: Sendable, Equatable {
        package var cidr: String
        package var except: [String]
    }

    /// Every name the agent may look up: what the DNS rule lets through.
    package var lookupNames: [String] {
        Array(Set(exactDomains + wildcardDomains + namedEndpoints.flatMap(\.hosts))).sorted()
    }

    package init(_ network: NetworkPolicy) {
        let domains = Set(network.domains)
        exactDomains = domains.filter { !$0.hasPrefix("*") }.sorted()
        wildcardDomains = domains.filter { $0.hasPrefix("*") }.sorted()
        var notExported: [String] = []

        var byName: [String: Set<PolicyPort>] = [:]
        var byAddress: [String: Set<PolicyPort>] = [:]
        for endpoint in network.endpoints {
            let port = PolicyPort(endpoint.proto == .udp ? .udp : .tcp, endpoint.port)
            if let address = IPAddress(endpoint.host) {
                let block = IPNetwork(address: address, prefixLength: address.bytes.count * 8)!
                if let reason = NetworkPlan.neverReachable(block) {
                    notExported.append("\(endpoint): \(reason)")
                    continue
                }
                byAddress[block.description, default: []].insert(port)
            } else {
                byName[endpoint.host, default: []].insert(port)
            }
        }
        namedEndpoints = NetworkPlan.group(byName)
        addressEndpoints = NetworkPlan.group(byAddress)

        var blocks: [Block] = []
        for entry in Set(network.cidrs) {
            guard let block = IPNetwork(entry) else {
                notExported.append("\(entry): not an address block")
                continue
            }
            if let reason = NetworkPlan.neverReachable(block) {
                notExported.append("\(entry): \(reason)")
                continue
            }
            let except = Firewall.neverReachable.filter { block.contains($0) }.map(\.description).sorted()
            blocks.append(Block(cidr: block.description, except: except))
        }
        cidrs = blocks.sorted { $0.cidr < $1.cidr }
        self.notExported = notExported.sorted()
    }

    /// The gate drops link-local and cloud metadata addresses whatever the profile says
    /// (`Firewall.neverReachable`); an entry inside one of them opens nothing, so the policy leaves it out.
    static func neverReachable(_ block: IPNetwork) -> String? {
        guard let outer = Firewall.neverReachable.first(where: { $0.contains(block) }) else { return nil }
        return "inside \(outer), which cagent never lets an agent reach (link-local, cloud metadata)"
    }

    /// Hosts that open the same ports share one rule; groups in order of their first host.
    static func group(_ ports: [String: Set<PolicyPort>]) -> [PortGroup] {
        var groups: [[PolicyPort]: [String]] = [:]
        for (host, set) in ports { groups[set.sorted(), default: []].append(host) }
        return groups.map { PortGroup(ports: $0.key, hosts: $0.value.sorted()) }
            .sorted { $0.hosts[0] < $1.hosts[0] }
    }
}
