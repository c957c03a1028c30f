import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// One session's allow sets, for the DNS gate (part 2) and for static entries: each call is one atomic batch
/// on a netlink socket bound in the host's namespace when the session was set up, so callers need no setns.
/// Thread-safe.
///
/// Domain entries without a port: the gate pins each answer for tcp/443 and tcp/80 (`Ports.webDefaults`);
/// endpoints name their own port. Nothing here opens "any port" for a name: the profile decides.
public final class SessionFirewall: @unchecked Sendable {
    public enum Ports {
        /// What a `domains:` entry opens for each address its name resolves to.
        public static let webDefaults: [(AllowProto, UInt16)] = [(.tcp, 443), (.tcp, 80)]
    }

    public let interface: String
    public let nflogGroup: UInt16
    private let socket: NetlinkSocket
    private var lock = pthread_mutex_t()

    init(interface: String, nflogGroup: UInt16, namespace: NetworkNamespace?) throws {
        self.interface = interface
        self.nflogGroup = nflogGroup
        socket = try inNamespace(namespace) { try NetlinkSocket(NETLINK_NETFILTER, stage: "session firewall \(interface)") }
        pthread_mutex_init(&lock, nil)
    }

    deinit { pthread_mutex_destroy(&lock) }

    /// Allows `address` on `proto`/`port` for `timeout` seconds (nil: for the session's life). Adding an entry
    /// that exists refreshes its timeout.
    public func allow(_ address: IPAddress, proto: AllowProto, port: UInt16, timeout: UInt32?) throws {
        try allow([(address, proto, port)], timeout: timeout)
    }

    /// Many entries in one batch (a DNS answer with several addresses).
    public func allow(_ entries: [(IPAddress, AllowProto, UInt16)], timeout: UInt32?) throws {
        let sets = Firewall.setNames(interface)
        var batch = NftBatch(table: Firewall.table)
        let milliseconds = timeout.map { UInt64(max($0, 1)) * 1000 }
        for family in [IPAddress.Family.v4, .v6] {
            let elements = entries.filter { $0.0.family == family }
                .map { Firewall.element($0.0, $0.1, $0.2, timeout: milliseconds) }
            if elements.isEmpty { continue }
            batch.operations.append(.addElements(set: family == .v4 ? sets.allow4 : sets.allow6, elements))
        }
        try apply(batch)
    }

    /// Allows one of the profile's entries (a block or an endpoint) for the session's life.
    public func allow(_ entry: AllowEntry) throws {
        let spec = Firewall.SessionSpec(interface: interface, gateway4: nil, gateway6: nil, gatePort: 0,
                                        nflogGroup: nflogGroup, entries: [entry])
        var batch = NftBatch(table: Firewall.table)
        for (set, elements) in Firewall.staticElements(spec) { batch.operations.append(.addElements(set: set, elements)) }
        try apply(batch)
    }

    /// Withdraws an address entry (e.g. when the gate learns a pin is wrong).
    public func revoke(_ address: IPAddress, proto: AllowProto, port: UInt16) throws {
        let sets = Firewall.setNames(interface)
        var batch = NftBatch(table: Firewall.table)
        batch.operations.append(.deleteElements(set: address.family == .v4 ? sets.allow4 : sets.allow6,
                                                [Firewall.element(address, proto, port, timeout: nil)]))
        try apply(batch)
    }

    private func apply(_ batch: NftBatch) throws {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let (bytes, acks, meaning) = try batch.encode(firstSequence: socket.sequences(batch.operations.count + 64))
        try socket.transact(bytes, acks: acks, meaning: meaning)
    }
}
