import CagentCapture
import CagentCore
import CagentDNS
import CagentNetwork
#if canImport(Glibc)
import Glibc
#endif

/// Rootless learn's network (issue #18): rootless enforce's arrangement (RootlessNetwork) with learn's policy.
/// Inside the sandbox's own namespace, made there by cagent as the owner of the sandbox's user namespace:
/// - the learn ruleset (`Firewall.sandboxLearnBatch`): every new flow logged and accepted, metadata, the LAN,
///   the user-mode stack's network and the host's own addresses dropped;
/// - the DNS gate on the sandbox's 127.0.0.1, observing (every name forwarded, every exchange told to
///   `observer`): the session's DNS comes from the gate's own log;
/// - the flow log: the ruleset's nflog group read on a NETLINK_NETFILTER socket made in that namespace
///   (RootlessDenials' reader; `FlowLog.observation` sorts the records);
/// - slirp4netns as the uplink (RootlessUplink, host loopback and DNS forwarder off).
package final class RootlessLearnNetwork: @unchecked Sendable {
    let upstream: UpstreamConfig
    private var firewall: SessionFirewall?
    private var gate: Gate?
    private var flows: RootlessDenials?
    private var uplink: RootlessUplink?

    package init(upstream: UpstreamConfig) { self.upstream = upstream }

    /// The sandbox's resolver: the gate on its own loopback (every port-53 packet is redirected to it anyway).
    package var nameservers: [String] { ["127.0.0.1"] }

    /// Ruleset, gate, flow log and uplink for the sandbox whose init is `pid` (held until the plan is sent).
    package func start(pid: Int32, observer: any GateObserver, onFlow: @escaping @Sendable (FlowSeen) -> Void) throws {
        do {
            let group = RootlessNetwork.nflogGroup
            let netlink = try RootlessNetwork.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 12 /* NETLINK_NETFILTER */)])[0]
            let firewall = try SessionFirewall(interface: Firewall.sandboxInterface, nflogGroup: group, netlinkDescriptor: netlink)
            self.firewall = firewall
            var configuration = Gate.Configuration(listen: [IPAddress("127.0.0.1")!], port: 0, policy: .observing(ipv6: false),
                                                   upstream: upstream)
            configuration.listenSocket = { family, type in
                try RootlessNetwork.sockets(pid: pid, [(family, type | Int32(SOCK_NONBLOCK.rawValue), 0)])[0]
            }
            let gate = Gate(configuration: configuration, pinner: firewall, observer: observer)
            let port = try gate.start()
            self.gate = gate
            try firewall.run(Firewall.sandboxLearnBatch(gatePort: port, nflogGroup: group, uplinkNetwork: RootlessUplink.network,
                                                        hostAddresses: Self.hostAddresses()))
            // The flow log before the uplink: no flow leaves unlogged.
            let flows = RootlessDenials { packet in if let flow = FlowLog.observation(packet) { onFlow(flow) } }
            let nflog = try RootlessNetwork.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 12 /* NETLINK_NETFILTER */)])[0]
            try flows.start(descriptor: nflog, group: group)
            self.flows = flows
            uplink = try RootlessUplink.start(pid: pid)
        } catch {
            stop()
            throw error
        }
    }

    /// Stops the gate and the flow log (each drains what is pending); the uplink stays until `stop`.
    package func stopObserving() {
        flows?.stop(); flows = nil
        gate?.stop(); gate = nil
    }

    /// Everything; the ruleset goes with the sandbox's namespace. Idempotent.
    package func stop() {
        stopObserving()
        uplink?.stop(); uplink = nil
        firewall = nil
    }

    /// The addresses of cagent's own namespace (the host's), each as a /32 or /128: slirp4netns connects from
    /// there, so these would be the host's own services.
    static func hostAddresses() -> [IPNetwork] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var found: [IPNetwork] = []
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr else { continue }
            var bytes: [UInt8] = []
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    var raw = $0.pointee.sin_addr
                    bytes = withUnsafeBytes(of: &raw) { Array($0) }
                }
            case AF_INET6:
                address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var raw = $0.pointee.sin6_addr
                    bytes = withUnsafeBytes(of: &raw) { Array($0) }
                }
            default: continue
            }
            if let ip = IPAddress(bytes: bytes), let network = IPNetwork(address: ip, prefixLength: bytes.count * 8),
               !found.contains(network) {
                found.append(network)
            }
        }
        return found
    }
}
