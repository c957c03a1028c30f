import CNftnl
import CagentCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One session's allow sets, for the DNS gate (part 2) and for static entries: each call is one atomic batch
/// on a netlink socket bound in the host's namespace when the session was set up, so callers need no setns.
/// Thread-safe.
///
/// Domain entries without a port: the gate pins each answer for tcp/443 and tcp/80 (`Ports.webDefaults`);
/// endpoints name their own port. Nothing here opens "any port" for a name: the profile decides.
package final class SessionFirewall: Sendable {
    package enum Ports {
        /// What a `domains:` entry opens for each address its name resolves to.
        package static let webDefaults: [(AllowProto, UInt16)] = [(.tcp, 443), (.tcp, 80)]
    }

    package let interface: String
    package let nflogGroup: UInt16
    /// One batch at a time on the netlink socket.
    private let socket: Mutex<NetlinkSocket>
    /// When each element this session added runs out (monotonic seconds; infinity: never).
    private let deadlines = Mutex<[[UInt8]: Double]>([:])

    init(interface: String, nflogGroup: UInt16, namespace: NetworkNamespace?) throws {
        self.interface = interface
        self.nflogGroup = nflogGroup
        let socket = try inNamespace(namespace) { try NetlinkSocket(NETLINK_NETFILTER, stage: "session firewall \(interface)") }
        self.socket = Mutex(socket)
    }

    /// Rootless mode: the sets live in the sandbox's own namespace, reached through a NETLINK_NETFILTER socket
    /// created there (cg_netns_sockets); this object owns the descriptor.
    package init(interface: String, nflogGroup: UInt16, netlinkDescriptor: Int32) throws {
        self.interface = interface
        self.nflogGroup = nflogGroup
        socket = Mutex(try NetlinkSocket(descriptor: netlinkDescriptor, stage: "session firewall \(interface)"))
    }

    /// One batch on this firewall's socket (rootless mode: the sandbox namespace's whole ruleset).
    package func run(_ batch: NftBatch) throws { try apply(batch) }

    /// Allows `address` on `proto`/`port` for `timeout` seconds (nil: for the session's life). When the entry
    /// exists already, its timeout becomes max(remaining, timeout): a short TTL never cuts a longer pin.
    package func allow(_ address: IPAddress, proto: AllowProto, port: UInt16, timeout: UInt32?) throws {
        try allow([(address, proto, port)], timeout: timeout)
    }

    /// The gate's call: pins `address` on each of `ports` (a domain entry: `Ports.webDefaults`) for `ttl`
    /// seconds, returning once the kernel holds the elements.
    package func pin(_ address: IPAddress, ports: [(AllowProto, UInt16)] = Ports.webDefaults, ttl: UInt32) throws {
        try allow(ports.map { (address, $0.0, $0.1) }, timeout: ttl)
    }

    /// Many entries in one batch (a DNS answer with several addresses).
    package func allow(_ entries: [(IPAddress, AllowProto, UInt16)], timeout: UInt32?) throws {
        let sets = Firewall.setNames(interface)
        var batch = NftBatch(table: Firewall.table)
        let now = SessionFirewall.monotonicSeconds()
        let elements = deadlines.withLock { deadlines in
            if deadlines.count > 4096 { deadlines = deadlines.filter { $0.value > now } }   // expired pins are gone
            var elements: [IPAddress.Family: [NftElement]] = [:]
            for (address, proto, port) in entries {
                let key = Firewall.key(address, proto.number, port)
                var milliseconds: UInt64?
                if let timeout {
                    // The kernel sets the timeout of a re-added element to the new value: keep the later deadline.
                    let deadline = max(now + Double(max(timeout, 1)), deadlines[key] ?? 0)
                    if deadlines[key] != .infinity { deadlines[key] = deadline }
                    milliseconds = deadlines[key] == .infinity ? nil : UInt64(((deadline - now) * 1000).rounded(.up))
                } else {
                    deadlines[key] = .infinity
                }
                elements[address.family, default: []].append(Firewall.element(address, proto, port, timeout: milliseconds))
            }
            return elements
        }
        for family in [IPAddress.Family.v4, .v6] {
            guard let list = elements[family], !list.isEmpty else { continue }
            batch.operations.append(.addElements(set: family == .v4 ? sets.allow4 : sets.allow6, list))
        }
        try apply(batch)
    }

    static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Allows one of the profile's entries (a block or an endpoint) for the session's life.
    package func allow(_ entry: AllowEntry) throws {
        let spec = Firewall.SessionSpec(interface: interface, gateway4: nil, gateway6: nil, gatePort: 0,
                                        nflogGroup: nflogGroup, entries: [entry])
        var batch = NftBatch(table: Firewall.table)
        for (set, elements) in Firewall.staticElements(spec) { batch.operations.append(.addElements(set: set, elements)) }
        try apply(batch)
    }

    /// Withdraws an address entry (e.g. when the gate learns a pin is wrong).
    package func revoke(_ address: IPAddress, proto: AllowProto, port: UInt16) throws {
        let sets = Firewall.setNames(interface)
        var batch = NftBatch(table: Firewall.table)
        batch.operations.append(.deleteElements(set: address.family == .v4 ? sets.allow4 : sets.allow6,
                                                [Firewall.element(address, proto, port, timeout: nil)]))
        try apply(batch)
        _ = deadlines.withLock { $0.removeValue(forKey: Firewall.key(address, proto.number, port)) }
    }

    private func apply(_ batch: NftBatch) throws {
        try socket.withLock { socket in
            let (bytes, acks, meaning) = try batch.encode(firstSequence: socket.sequences(batch.operations.count + 64))
            try socket.transact(bytes, acks: acks, meaning: meaning)
        }
    }
}
