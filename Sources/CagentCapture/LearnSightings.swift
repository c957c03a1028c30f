import CagentDNS
import CagentNetwork

/// A new outgoing flow of a learn-mode session, from the firewall's log (`cagent-flow `: accepted) or a learn-mode
/// drop (`cagent-deny `: metadata, LAN).
public struct FlowSeen: Sendable, Equatable, Hashable {
    public enum Verdict: String, Sendable { case accepted, dropped }
    public var time: Double
    /// IP protocol number: 6 tcp, 17 udp, 1 icmp, 58 icmpv6.
    public var proto: UInt8
    public var destination: IPAddress
    /// TCP/UDP destination port, nil for other protocols.
    public var port: UInt16?
    public var verdict: Verdict

    public init(time: Double, proto: UInt8, destination: IPAddress, port: UInt16?, verdict: Verdict) {
        self.time = time; self.proto = proto; self.destination = destination; self.port = port; self.verdict = verdict
    }

    public var protoName: String { DeniedPacket(proto: proto, destination: destination, port: port).protoName }
}

/// The server name a TLS client announced (ClientHello SNI), read on the session's veth.
public struct ServerNameSeen: Sendable, Equatable {
    public var time: Double
    public var client: IPAddress
    public var destination: IPAddress
    public var port: UInt16
    /// Lower case; odd bytes as `\DDD` (see `TLSClientHello.serverName`).
    public var serverName: String

    public init(time: Double, client: IPAddress, destination: IPAddress, port: UInt16, serverName: String) {
        self.time = time; self.client = client; self.destination = destination; self.port = port; self.serverName = serverName
    }
}

/// What `DNSCapture` reports.
public enum CaptureEvent: Sendable, Equatable {
    case dns(DNSMessageSeen)
    case tls(ServerNameSeen)
}
