import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Transport protocols an allow entry may name.
package enum AllowProto: String, Sendable, Hashable, CaseIterable {
    case tcp, udp
    var number: UInt8 { self == .tcp ? L4.tcp : L4.udp }
}

/// What the profile's static entries open: one address, protocol and port, or a whole block (TCP, any port).
package enum AllowEntry: Sendable, Hashable, CustomStringConvertible {
    case endpoint(IPAddress, AllowProto, UInt16)
    case network(IPNetwork)

    package var description: String {
        switch self {
        case .endpoint(let address, let proto, let port):
            return (address.family == .v6 ? "[\(address)]" : "\(address)") + ":\(port)/\(proto.rawValue)"
        case .network(let network): return network.description
        }
    }

    /// Parses one literal entry: a CIDR or address (`203.0.113.0/24`, `2001:db8::1`) or an endpoint
    /// (`203.0.113.5:443/tcp`, `[2001:db8::5]:22/tcp`; the protocol defaults to tcp).
    package static func parse(_ text: String) throws -> AllowEntry {
        if let network = IPNetwork(text) { return .network(network) }
        var rest = Substring(text)
        var proto = AllowProto.tcp
        if let slash = rest.lastIndex(of: "/"), let parsed = AllowProto(rawValue: rest[rest.index(after: slash)...].lowercased()) {
            proto = parsed
            rest = rest[..<slash]
        }
        if let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]), port > 0,
           let address = IPAddress(String(rest[..<colon])) {
            return .endpoint(address, proto, port)
        }
        throw CagentError(stage: "network entry", "\(text) is neither an address, a CIDR block nor ADDRESS:PORT/PROTO",
                          hint: "names belong in the profile's domains; here only literal addresses")
    }

    /// Parses the profile's literal entries: `cidrs` (`10.0.0.0/8`, `2001:db8::1`) and endpoints whose host is a
    /// literal address. Endpoints naming a host by name are returned in `named` for the DNS gate (part 2).
    package static func parse(cidrs: [String], endpoints: [(host: String, port: UInt16, proto: String)]) throws
        -> (entries: [AllowEntry], named: [(host: String, port: UInt16, proto: AllowProto)]) {
        var entries: [AllowEntry] = []
        var named: [(String, UInt16, AllowProto)] = []
        for text in cidrs {
            guard let network = IPNetwork(text) else {
                throw CagentError(stage: "profile network", "\(text) is not an IP address or CIDR block",
                                  hint: "write cidrs as 203.0.113.0/24 or 2001:db8::/32; names belong in domains")
            }
            entries.append(.network(network))
        }
        for endpoint in endpoints {
            guard let proto = AllowProto(rawValue: endpoint.proto.lowercased()) else {
                throw CagentError(stage: "profile network", "endpoint \(endpoint.host):\(endpoint.port): protocol \(endpoint.proto) is not tcp or udp")
            }
            if let address = IPAddress(endpoint.host) {
                entries.append(.endpoint(address, proto, endpoint.port))
            } else {
                named.append((endpoint.host, endpoint.port, proto))
            }
        }
        return (entries, named)
    }
}

/// cagent's host-side ruleset: one `inet cagent` table, a permanent part shared by every session, and one set of
/// chains and sets per session keyed by its host interface `cgs<id>`. See docs/network.md for every rule's reason.
package enum Firewall {
    package static let table = "cagent"
    package static let interfacePrefix = "cgs"
    package static let denyPrefix = "cagent-deny "
    package static let hostDenyPrefix = "cagent-deny-host "
    /// Learn mode: the prefix of the log line every new outgoing flow gets before it is accepted.
    package static let flowPrefix = "cagent-flow "

    /// Enforce: only the profile's entries and the gate's pins leave. Learn: every new flow leaves and is logged,
    /// except the never-reachable addresses and `learnUnreachable` (LAN), which stay dropped.
    package enum Mode: String, Sendable, Equatable { case enforce, learn }

    static let preMap = "sessions_pre"
    static let inputMap = "sessions_in"
    static let forwardMap = "sessions_fwd"

    /// Addresses no session reaches, whatever the profile says: link-local and cloud metadata services.
    package static let neverReachable: [IPNetwork] = ["169.254.0.0/16", "168.63.129.16/32", "100.100.100.200/32",
                                                     "fe80::/10", "fd00:ec2::254/128"].map { IPNetwork($0)! }

    /// What learn mode keeps dropped besides `neverReachable`: the LAN (RFC 1918, ULA), CGNAT 100.64.0.0/10 (carrier
    /// and Tailscale-style overlays, and cagent's own session pool, so one learning sandbox never reaches another),
    /// loopback-looking and unspecified blocks, and multicast. The host's own addresses never reach the forward chain
    /// (they are local deliveries, in the input chain, closed in both modes).
    package static let learnUnreachable: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4",
        "240.0.0.0/4", "::/128", "::1/128", "::ffff:0:0/96", "fc00::/7", "ff00::/8",
    ].map { IPNetwork($0)! }

    // MARK: permanent part

    static func hook(_ type: String, _ hook: nf_inet_hooks, _ priority: Int32, _ name: String) -> NftChain.Hook {
        NftChain.Hook(type: type, hook: hook.rawValue, priority: priority, hookName: name)
    }

    static func interfaceMap(_ name: String) -> NftSet {
        NftSet(name: name, keyType: 41, keyLength: 16, fields: [], flags: UInt32(NFT_SET_MAP.rawValue),
               verdictMap: true, typeText: "ifname : verdict")
    }

    /// The table, the base chains, the per-interface verdict maps, and the permanent drop on `cgs*`: an interface
    /// matching the pattern without a session entry in the maps is closed (its traffic never reaches a session
    /// chain and falls on the drop). Also the inbound drop: nothing but replies enters a `cgs*` interface, from
    /// another sandbox, the LAN or the host itself, ahead of every session's chain (docs/network.md).
    package static func permanentBatch() -> NftBatch {
        var batch = NftBatch(table: table)
        batch.operations.append(.addTable)
        for map in [preMap, inputMap, forwardMap] { batch.operations.append(.addSet(interfaceMap(map))) }
        let sandbox = Match.interfacePrefix(interfacePrefix)

        batch.operations.append(.addChain(NftChain(name: "prerouting", hook: hook("nat", NF_INET_PRE_ROUTING, -100, "prerouting"))))
        batch.operations.append(.addRule(Match.interfaceVerdictMap(preMap).rule(in: "prerouting")))

        batch.operations.append(.addChain(NftChain(name: "input", hook: hook("filter", NF_INET_LOCAL_IN, 0, "input"))))
        batch.operations.append(.addRule(Match.interfaceVerdictMap(inputMap).rule(in: "input")))
        batch.operations.append(.addRule((sandbox + Statement.verdict(.drop)).rule(in: "input")))

        batch.operations.append(.addChain(NftChain(name: "forward", hook: hook("filter", NF_INET_FORWARD, 0, "forward"))))
        batch.operations += forwardRules().map { .addRule($0) }
        batch.operations.append(.addChain(NftChain(name: "output", hook: hook("filter", NF_INET_LOCAL_OUT, 0, "output"))))
        batch.operations += outputRules().map { .addRule($0) }

        batch.operations.append(.addChain(NftChain(name: "postrouting", hook: hook("nat", NF_INET_POST_ROUTING, 100, "postrouting"))))
        batch.operations.append(.addRule((sandbox + Statement.masquerade()).rule(in: "postrouting")))
        return batch
    }

    /// The forward base chain's rules. Into a sandbox only replies, before the session map: no session's accept
    /// (a profile opening the pool, 0.0.0.0/0, learn mode) can let one sandbox connect into another, and sandbox
    /// to sandbox nothing at all passes, not even "related" (no such flow is ever opened, so none is a reply).
    static func forwardRules() -> [NftRule] {
        let sandbox = Match.interfacePrefix(interfacePrefix)
        let toSandbox = Match.interfacePrefix(interfacePrefix, output: true)
        return [
            (sandbox + toSandbox + Statement.verdict(.drop)).rule(in: "forward"),
            (toSandbox + Match.established() + Statement.verdict(.accept)).rule(in: "forward"),
            (toSandbox + Statement.verdict(.drop)).rule(in: "forward"),
            Match.interfaceVerdictMap(forwardMap).rule(in: "forward"),
            (sandbox + Statement.verdict(.drop)).rule(in: "forward"),
        ]
    }

    /// The host's own connections into a sandbox (output, not forward): only replies (the DNS gate's answers, the
    /// resets and ICMP errors the rules send, which conntrack marks related) and neighbour discovery.
    static func outputRules() -> [NftRule] {
        let toSandbox = Match.interfacePrefix(interfacePrefix, output: true)
        var rules = [(toSandbox + Match.established() + Statement.verdict(.accept)).rule(in: "output")]
        for (type, name) in [(UInt8(135), "nd-neighbor-solicit"), (136, "nd-neighbor-advert")] {
            rules.append((toSandbox + Match.icmpType(.v6, type, name: name) + Statement.verdict(.accept)).rule(in: "output"))
        }
        rules.append((toSandbox + Statement.verdict(.drop)).rule(in: "output"))
        return rules
    }

    /// A table made by an older cagent (sessions of it still running) has no `output` chain and drops inbound
    /// traffic only after the session map: this batch replaces its forward rules and adds the output chain, in
    /// one transaction.
    package static func permanentUpgradeBatch() -> NftBatch {
        var batch = NftBatch(table: table)
        batch.operations.append(.flushChain("forward"))
        batch.operations += forwardRules().map { .addRule($0) }
        batch.operations.append(.addChain(NftChain(name: "output", hook: hook("filter", NF_INET_LOCAL_OUT, 0, "output"))))
        batch.operations += outputRules().map { .addRule($0) }
        return batch
    }

    /// True when `inet cagent` exists without the output chain (see `permanentUpgradeBatch`).
    package static func tableNeedsUpgrade() throws -> Bool {
        tableNeedsUpgrade(chains: try NetfilterInventory.chains())
    }

    /// `tableNeedsUpgrade` from a chain inventory already read (one dump serves a whole start).
    package static func tableNeedsUpgrade(chains: [NetfilterInventory.Chain]) -> Bool {
        let ours = chains.filter { $0.table == table && $0.familyName == "inet" }
        return !ours.isEmpty && !ours.contains { $0.name == "output" }
    }

    // MARK: per session

    /// One session's part of the ruleset.
    package struct SessionSpec: Sendable, Equatable {
        package var interface: String
        package var gateway4: IPAddress?
        package var gateway6: IPAddress?
        /// The DNS gate's port on the gateway addresses; all port-53 traffic is redirected there.
        package var gatePort: UInt16
        /// `cagent enforce --proxy`: the filtering proxy's TCP port on the gateway addresses (nil: none).
        package var proxyPort: UInt16?
        package var nflogGroup: UInt16
        package var entries: [AllowEntry]
        package var mode: Mode
        /// Learn mode: more blocks to keep dropped.
        package var unreachable: [IPNetwork]
        /// The session address pool (v4 and v6): dropped in both modes whatever the profile says; sandboxes,
        /// other sessions' gateways and unused slots are never a destination (the permanent part already
        /// drops every new connection into a `cgs*` interface; this also covers unused slots, which would
        /// otherwise leave through the default route, and logs the attempt for the session).
        package var pool: [IPNetwork]

        package init(interface: String, gateway4: IPAddress?, gateway6: IPAddress?, gatePort: UInt16,
                    nflogGroup: UInt16, entries: [AllowEntry], mode: Mode = .enforce, unreachable: [IPNetwork] = [],
                    pool: [IPNetwork] = [AddressPool.standard.pool4, AddressPool.standard.pool6], proxyPort: UInt16? = nil) {
            self.interface = interface; self.gateway4 = gateway4; self.gateway6 = gateway6; self.proxyPort = proxyPort
            self.gatePort = gatePort; self.nflogGroup = nflogGroup; self.entries = entries
            self.mode = mode; self.unreachable = unreachable; self.pool = pool
        }
    }

    package static func chainNames(_ interface: String) -> (pre: String, input: String, forward: String) {
        (interface + "_pre", interface + "_in", interface + "_fwd")
    }

    /// How long a pin lives after the last new connection to it: the DNS gate's pin cap (GateAnswer.Clamp.cap),
    /// so a refresh never outlives what one DNS answer could have pinned.
    package static let pinRefreshSeconds: UInt32 = 3600

    package static func setNames(_ interface: String) -> (allow4: String, allow6: String, nets4: String, nets6: String) {
        (interface + "_allow4", interface + "_allow6", interface + "_nets4", interface + "_nets6")
    }

    static func allowSet(_ name: String, _ family: IPAddress.Family) -> NftSet {
        let v4 = family == .v4
        // ipv4_addr (7) / ipv6_addr (8) . inet_proto (12) . inet_service (13), each field padded to 4 bytes.
        // `dynamic`: the forward rule updates elements from the packet path (the pin refresh).
        return NftSet(name: name, keyType: ((v4 ? 7 : 8) << 12) | (12 << 6) | 13, keyLength: v4 ? 12 : 24,
                      fields: [], flags: UInt32(NFT_SET_TIMEOUT.rawValue) | UInt32(NFT_SET_EVAL.rawValue), verdictMap: false,
                      typeText: "\(v4 ? "ipv4_addr" : "ipv6_addr") . inet_proto . inet_service")
    }

    static func networkSet(_ name: String, _ family: IPAddress.Family) -> NftSet {
        var set = allowSet(name, family)
        set.fields = [family == .v4 ? 4 : 16, 1, 2]
        set.flags = UInt32(NFT_SET_INTERVAL.rawValue) | UInt32(NFT_SET_CONCAT.rawValue)
        return set
    }

    static func key(_ address: IPAddress, _ proto: UInt8, _ port: UInt16) -> [UInt8] {
        address.bytes + [proto, 0, 0, 0] + [UInt8(port >> 8), UInt8(port & 0xff), 0, 0]
    }

    static func element(_ address: IPAddress, _ proto: AllowProto, _ port: UInt16, timeout: UInt64?) -> NftElement {
        NftElement(key: key(address, proto.number, port), keyEnd: nil, timeoutMilliseconds: timeout, verdict: nil,
                   text: "\(address) . \(proto.rawValue) . \(port)" + (timeout.map { " timeout \($0)ms" } ?? ""))
    }

    /// A static `address:port/proto` endpoint: a one-point interval in the session's interval set, never in the
    /// pin sets (the pin refresh puts a timeout on whatever it matches there).
    static func endpointElement(_ address: IPAddress, _ proto: AllowProto, _ port: UInt16) -> NftElement {
        let point = key(address, proto.number, port)
        return NftElement(key: point, keyEnd: point, timeoutMilliseconds: nil, verdict: nil,
                          text: "\(address) . \(proto.rawValue) . \(port)")
    }

    static func networkElement(_ network: IPNetwork) -> NftElement {
        NftElement(key: key(network.address, L4.tcp, 0), keyEnd: key(network.last, L4.tcp, 65535),
                   timeoutMilliseconds: nil, verdict: nil, text: "\(network) . tcp . 0-65535")
    }

    static func interfaceKey(_ name: String) -> [UInt8] {
        Array(name.utf8.prefix(15)) + [UInt8](repeating: 0, count: 16 - min(name.utf8.count, 15))
    }

    static func mapElements(_ interface: String) -> [(map: String, element: NftElement)] {
        let chains = chainNames(interface)
        return [(preMap, chains.pre), (inputMap, chains.input), (forwardMap, chains.forward)].map { map, chain in
            (map, NftElement(key: interfaceKey(interface), keyEnd: nil, timeoutMilliseconds: nil,
                             verdict: .jump(chain), text: "\"\(interface)\" : jump \(chain)"))
        }
    }

    /// Elements for the static entries, split by set. Blocks contained in another block are dropped (the
    /// interval set refuses overlaps).
    static func staticElements(_ spec: SessionSpec) -> [(set: String, elements: [NftElement])] {
        let sets = setNames(spec.interface)
        var allow4: [NftElement] = [], allow6: [NftElement] = [], nets4: [NftElement] = [], nets6: [NftElement] = []
        let networks = spec.entries.compactMap { entry -> IPNetwork? in if case .network(let n) = entry { return n } else { return nil } }
        var kept: [IPNetwork] = []
        for network in Set(networks).sorted(by: { $0.prefixLength < $1.prefixLength || ($0.prefixLength == $1.prefixLength && $0.address < $1.address) })
        where !kept.contains(where: { $0.contains(network) }) {
            kept.append(network)
        }
        for network in kept.sorted(by: { $0.address < $1.address }) {
            if network.family == .v4 { nets4.append(networkElement(network)) } else { nets6.append(networkElement(network)) }
        }
        var seen = Set<AllowEntry>()
        for entry in spec.entries where seen.insert(entry).inserted {
            if case .endpoint(let address, let proto, let port) = entry {
                // A tcp endpoint inside an allowed block is already open (and would overlap it in the set).
                if proto == .tcp && kept.contains(where: { $0.contains(address) }) { continue }
                if address.family == .v4 { nets4.append(endpointElement(address, proto, port)) }
                else { nets6.append(endpointElement(address, proto, port)) }
            }
        }
        return [(sets.allow4, allow4), (sets.allow6, allow6), (sets.nets4, nets4), (sets.nets6, nets6)].filter { !$0.elements.isEmpty }
    }

    /// The session's sets, chains, map entries and static elements, in one batch. Applied before the session's
    /// veth exists, so the interface is never up without its chain.
    package static func sessionBatch(_ spec: SessionSpec) -> NftBatch {
        var batch = NftBatch(table: table)
        let chains = chainNames(spec.interface)
        let sets = setNames(spec.interface)
        batch.operations += [.addSet(allowSet(sets.allow4, .v4)), .addSet(allowSet(sets.allow6, .v6)),
                             .addSet(networkSet(sets.nets4, .v4)), .addSet(networkSet(sets.nets6, .v6))]
        var rules: [NftRule] = []

        // prerouting: every port-53 packet, to any address, goes to the gate.
        batch.operations.append(.addChain(NftChain(name: chains.pre, hook: nil)))
        for proto in [L4.udp, L4.tcp] {
            rules.append((Match.l4proto(proto) + Match.destinationPort(53) + Statement.redirect(to: spec.gatePort)).rule(in: chains.pre))
        }

        // input: the gate on the gateway addresses and neighbour discovery; the host's services stay closed.
        batch.operations.append(.addChain(NftChain(name: chains.input, hook: nil)))
        rules.append((Match.established() + Statement.verdict(.accept)).rule(in: chains.input))
        for gateway in [spec.gateway4, spec.gateway6].compactMap({ $0 }) {
            for proto in [L4.udp, L4.tcp] {
                rules.append((Match.destination(gateway) + Match.l4proto(proto) + Match.destinationPort(spec.gatePort)
                              + Statement.verdict(.accept)).rule(in: chains.input))
            }
            if let proxyPort = spec.proxyPort {
                rules.append((Match.destination(gateway) + Match.l4proto(L4.tcp) + Match.destinationPort(proxyPort)
                              + Statement.verdict(.accept)).rule(in: chains.input))
            }
        }
        for (type, name) in [(UInt8(135), "nd-neighbor-solicit"), (136, "nd-neighbor-advert")] {
            rules.append((Match.icmpType(.v6, type, name: name) + Statement.verdict(.accept)).rule(in: chains.input))
        }
        // Router solicitations and multicast listener reports are link chatter: dropped without a log line.
        for (type, name) in [(UInt8(133), "nd-router-solicit"), (143, "mld2-listener-report"), (131, "mld-listener-report")] {
            rules.append((Match.icmpType(.v6, type, name: name) + Statement.verdict(.drop)).rule(in: chains.input))
        }
        let hostLog = Statement.log(group: spec.nflogGroup, prefix: hostDenyPrefix)
        rules.append((Match.l4proto(L4.tcp) + hostLog + Statement.rejectTCPReset()).rule(in: chains.input))
        rules.append((hostLog + Statement.rejectAdminProhibited()).rule(in: chains.input))

        // forward: replies, then the never-reachable addresses and echo, then the allow sets, then log + reject.
        batch.operations.append(.addChain(NftChain(name: chains.forward, hook: nil)))
        let log = Statement.log(group: spec.nflogGroup, prefix: denyPrefix)
        rules.append((Match.established() + Statement.verdict(.accept)).rule(in: chains.forward))
        for network in neverReachable + spec.pool {
            rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: chains.forward))
        }
        if spec.mode == .learn {
            // Learn: the LAN stays dropped like metadata; every other new flow is logged (for the flow
            // observations) and accepted. Echo is a flow like any other here: it is logged, so it is seen.
            var extra: [IPNetwork] = []
            for network in learnUnreachable + spec.unreachable where !(neverReachable + spec.pool + extra).contains(where: { $0.contains(network) }) {
                extra.append(network)
            }
            for network in extra {
                rules.append((Match.destination(in: network) + log + Statement.verdict(.drop)).rule(in: chains.forward))
            }
            rules.append((Match.ctStateNew() + Statement.log(group: spec.nflogGroup, prefix: flowPrefix) + Statement.verdict(.accept))
                .rule(in: chains.forward))
            // Invalid or untracked: not a flow anyone needs.
            rules.append((log + Statement.verdict(.drop)).rule(in: chains.forward))
            batch.operations += rules.map { .addRule($0) }
            for (map, element) in mapElements(spec.interface) { batch.operations.append(.addElements(set: map, [element])) }
            return batch
        }
        rules.append((Match.icmpType(.v4, 8, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: chains.forward))
        rules.append((Match.icmpType(.v6, 128, name: "echo-request") + log + Statement.verdict(.drop)).rule(in: chains.forward))
        // Pins: a new connection to a pinned address refreshes its pin (clients that cache answers, the JVM,
        // connection pools, keep working); an address nobody connects to expires with its DNS lifetime.
        rules.append((Match.allowLookup(.v4, set: sets.allow4) + Match.refresh(.v4, set: sets.allow4, seconds: pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: chains.forward))
        rules.append((Match.allowLookup(.v6, set: sets.allow6) + Match.refresh(.v6, set: sets.allow6, seconds: pinRefreshSeconds)
                      + Statement.verdict(.accept)).rule(in: chains.forward))
        rules.append((Match.allowLookup(.v4, set: sets.nets4) + Statement.verdict(.accept)).rule(in: chains.forward))
        rules.append((Match.allowLookup(.v6, set: sets.nets6) + Statement.verdict(.accept)).rule(in: chains.forward))
        rules.append((Match.l4proto(L4.tcp) + log + Statement.rejectTCPReset()).rule(in: chains.forward))
        rules.append((log + Statement.rejectAdminProhibited()).rule(in: chains.forward))

        batch.operations += rules.map { .addRule($0) }
        for (set, elements) in staticElements(spec) { batch.operations.append(.addElements(set: set, elements)) }
        // Last: the map entries that send the interface's traffic into its chains.
        for (map, element) in mapElements(spec.interface) { batch.operations.append(.addElements(set: map, [element])) }
        return batch
    }

    /// Removes one session's part: map entries first (they reference the chains), then chains, then sets.
    package static func removeSessionBatch(interface: String) -> NftBatch {
        var batch = NftBatch(table: table)
        for (map, element) in mapElements(interface) { batch.operations.append(.deleteElements(set: map, [element])) }
        let chains = chainNames(interface)
        batch.operations += [.deleteChain(chains.pre), .deleteChain(chains.input), .deleteChain(chains.forward)]
        let sets = setNames(interface)
        batch.operations += [.deleteSet(sets.allow4), .deleteSet(sets.allow6), .deleteSet(sets.nets4), .deleteSet(sets.nets6)]
        return batch
    }

    /// Session interfaces that have chains in the table, read from a chain dump.
    package static func sessionInterfaces(in chains: [NetfilterInventory.Chain]) -> [String] {
        chains.filter { $0.table == table && $0.familyName == "inet" && $0.name.hasPrefix(interfacePrefix) && $0.name.hasSuffix("_fwd") }
            .map { String($0.name.dropLast(4)) }.sorted()
    }

    /// True when `inet cagent` exists in the calling thread's namespace.
    package static func tableExists() throws -> Bool {
        tableExists(chains: try NetfilterInventory.chains())
    }

    /// `tableExists` from a chain inventory already read.
    package static func tableExists(chains: [NetfilterInventory.Chain]) -> Bool {
        chains.contains { $0.table == table && $0.familyName == "inet" }
    }
}
