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
///   (an NflogReader on a socket made there; `FlowLog.observation` sorts the records);
/// - the TLS server names: an AF_PACKET capture in that namespace (RootlessHelloCapture);
/// - slirp4netns as the uplink (RootlessUplink, host loopback and DNS forwarder off).
package final class RootlessLearnNetwork: @unchecked Sendable {
    let upstream: UpstreamConfig
    private var firewall: SessionFirewall?
    private var gate: Gate?
    private var flows: NflogReader?
    private var hellos: RootlessHelloCapture?
    private var uplink: RootlessUplink?

    package init(upstream: UpstreamConfig) { self.upstream = upstream }

    /// The sandbox's resolver: the gate on its own loopback (every port-53 packet is redirected to it anyway).
    package var nameservers: [String] { ["127.0.0.1"] }

    /// Ruleset, gate, flow log and uplink for the sandbox whose init is `pid` (held until the plan is sent).
    package func start(pid: Int32, observer: any GateObserver, onFlow: @escaping @Sendable (FlowSeen) -> Void,
                       onCapture: @escaping @Sendable (CaptureEvent) -> Void) throws {
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
                                                        hostAddresses: RootlessUplink.hostAddresses()))
            // The flow log before the uplink: no flow leaves unlogged.
            let nflog = try RootlessNetwork.sockets(pid: pid, [(AF_NETLINK, Int32(SOCK_RAW.rawValue), 12 /* NETLINK_NETFILTER */)])[0]
            let flows = NflogReader(group: group, descriptor: nflog) { packet in if let flow = FlowLog.observation(packet) { onFlow(flow) } }
            try flows.start()
            self.flows = flows
            // TLS server names (the capture's part of root learn): an AF_PACKET socket of the sandbox's namespace.
            let hellos = RootlessHelloCapture(onEvent: onCapture)
            let packet = try RootlessNetwork.sockets(pid: pid, [(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(UInt16(0x0003 /* ETH_P_ALL */).bigEndian))])[0]
            try hellos.start(descriptor: packet)
            self.hellos = hellos
            uplink = try RootlessUplink.start(pid: pid)
        } catch {
            stop()
            throw error
        }
    }

    /// Stops the gate and the flow log (each drains what is pending); the uplink stays until `stop`.
    package func stopObserving() {
        flows?.stop(); flows = nil
        hellos?.stop(); hellos = nil
        gate?.stop(); gate = nil
    }

    /// Everything; the ruleset goes with the sandbox's namespace. Idempotent.
    package func stop() {
        stopObserving()
        uplink?.stop(); uplink = nil
        firewall = nil
    }

}

/// Rootless learn's capture: the first data of each TLS connection the sandbox opens (its ClientHello's server
/// name), read on an AF_PACKET socket made in the sandbox's namespace (cg_netns_sockets: libpcap cannot open a
/// descriptor made elsewhere). ETH_P_ALL: a socket of one protocol gets only incoming packets, the sandbox's
/// are outgoing. SOCK_DGRAM, so a packet starts at its IP header; a classic BPF filter keeps only
/// unfragmented IPv4 TCP segments to port 443 (the sandbox is IPv4 only), and the loopback's are skipped. No DNS
/// here: every port-53 packet goes to the gate over the loopback, and the gate records it.
final class RootlessHelloCapture: @unchecked Sendable {
    private let service = ServiceThread(name: "cagent-tls-capture")
    private let onEvent: @Sendable (CaptureEvent) -> Void

    init(onEvent: @escaping @Sendable (CaptureEvent) -> Void) { self.onEvent = onEvent }

    /// ldb [0]; and #0xf0; jeq #0x40 (IPv4); ldb [9]; jeq #6 (tcp); ldh [6]; jset #0x1fff (a fragment: out);
    /// ldxb 4*([0]&0xf); ldh [x+2]; jeq #443; ret 4096 | ret 0.
    static let filter: [(code: UInt16, jt: UInt8, jf: UInt8, k: UInt32)] = [
        (0x30, 0, 0, 0), (0x54, 0, 0, 0xf0), (0x15, 0, 8, 0x40), (0x30, 0, 0, 9), (0x15, 0, 6, 6),
        (0x28, 0, 0, 6), (0x45, 4, 0, 0x1fff), (0xb1, 0, 0, 0), (0x48, 0, 0, 2), (0x15, 0, 1, 443),
        (0x06, 0, 0, 4096), (0x06, 0, 0, 0),
    ]

    /// Attaches the filter to `fd` (an AF_PACKET socket of the sandbox's namespace; owned from here) and reads it.
    func start(descriptor fd: Int32) throws {
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, struct sock_fprog { u16 len; struct sock_filter *filter; }
        var instructions = [UInt8]()
        for (code, jt, jf, k) in Self.filter {
            instructions += [UInt8(code & 0xff), UInt8(code >> 8), jt, jf]
            instructions += (0..<4).map { UInt8((k >> (8 * UInt32($0))) & 0xff) }
        }
        let attached = instructions.withUnsafeBytes { code -> Int32 in
            var program = [UInt8](repeating: 0, count: 16)
            program[0] = UInt8(Self.filter.count)
            var pointer = UInt(bitPattern: code.baseAddress)
            withUnsafeBytes(of: &pointer) { for index in 0..<8 { program[8 + index] = $0[index] } }
            return program.withUnsafeBytes { setsockopt(fd, SOL_SOCKET, 26 /* SO_ATTACH_FILTER */, $0.baseAddress, 16) }
        }
        guard attached == 0 else {
            close(fd)
            throw CagentError.system("tls capture", "attach the capture's filter in the sandbox's namespace")
        }
        let onEvent = onEvent
        try service.start(setup: { fd }, run: { [service] fd in
            var state = StreamState()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                var fds = [pollfd(fd: service.wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
                if poll(&fds, 2, 200) < 0 && errno != EINTR { break }
                while true {
                    // struct sockaddr_ll { u16 family; u16 protocol; int ifindex; u16 hatype; u8 pkttype, halen; u8 addr[8]; }
                    var from = [UInt8](repeating: 0, count: 20)
                    var length = socklen_t(20)
                    let count = from.withUnsafeMutableBytes { address in
                        recvfrom(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), address.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
                    }
                    if count <= 0 { break }
                    let ifindex = Int32(from[4]) | Int32(from[5]) << 8 | Int32(from[6]) << 16 | Int32(from[7]) << 24
                    // The loopback (ifindex 1 in every namespace) and anything but IPv4 (ETH_P_IP, big-endian).
                    if ifindex == 1 || from[2] != 0x08 || from[3] != 0x00 { continue }
                    guard let segment = PacketDecoder.ip(Array(buffer[0..<count])) else { continue }
                    for event in state.handle(segment, time: FlowLog.now()) { onEvent(event) }
                }
                if fds[0].revents != 0 { break }
            }
            close(fd)
        })
    }

    func stop() { service.stop() }
}
