import CagentDNS
import CagentNetwork

/// A new outgoing flow of a learn-mode session, from the firewall's log (`cagent-flow `: accepted) or a learn-mode
/// drop (`cagent-deny `: metadata, LAN).
package struct FlowSeen: Sendable, Equatable, Hashable {
    package enum Verdict: String, Sendable { case accepted, dropped }
    package var time: Double
    /// IP protocol number: 6 tcp, 17 udp, 1 icmp, 58 icmpv6.
    package var proto: UInt8
    package var destination: IPAddress
    /// TCP/UDP destination port, nil for other protocols.
    package var port: UInt16?
    package var verdict: Verdict

    package init(time: Double, proto: UInt8, destination: IPAddress, port: UInt16?, verdict: Verdict) {
        self.time = time; self.proto = proto; self.destination = destination; self.port = port; self.verdict = verdict
    }

    package var protoName: String { DeniedPacket(proto: proto, destination: destination, port: port).protoName }
}

/// The server name a TLS client announced (ClientHello SNI), read on the session's veth.
package struct ServerNameSeen: Sendable, Equatable {
    package var time: Double
    package var client: IPAddress
    package var destination: IPAddress
    package var port: UInt16
    /// Lower case; odd bytes as `\DDD` (see `TLSClientHello.serverName`).
    package var serverName: String

    package init(time: Double, client: IPAddress, destination: IPAddress, port: UInt16, serverName: String) {
        self.time = time; self.client = client; self.destination = destination; self.port = port; self.serverName = serverName
    }
}

/// What `DNSCapture` reports.
package enum CaptureEvent: Sendable, Equatable {
    case dns(DNSMessageSeen)
    case tls(ServerNameSeen)
}
