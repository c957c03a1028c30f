import CagentCore
import CagentNetwork
#if canImport(Glibc)
import Glibc
#endif

/// Learn mode's reading of the session's nflog group: `cagent-flow ` records are accepted new flows,
/// `cagent-deny ` records are what learn mode still drops (metadata, LAN), `cagent-deny-host ` the host's own
/// services. One group has one reader per netns, so this is the NflogReader's callback, not a second reader.
package enum FlowLog {
    package static let flowPrefix = Array(Firewall.flowPrefix.utf8)
    package static let denyPrefixes = [Array(Firewall.denyPrefix.utf8), Array(Firewall.hostDenyPrefix.utf8)]

    /// The flow observation for one nflog record, or nil for a record of another prefix.
    package static func observation(_ packet: DeniedPacket, time: Double = FlowLog.now()) -> FlowSeen? {
        let verdict: FlowSeen.Verdict
        if packet.prefix == flowPrefix { verdict = .accepted }
        else if denyPrefixes.contains(packet.prefix) { verdict = .dropped }
        else { return nil }
        return FlowSeen(time: time, proto: packet.proto, destination: packet.destination, port: packet.port, verdict: verdict)
    }

    /// A reader of the session's group (in the namespace holding cagent's table: nil for the host) that turns each
    /// record into a flow observation.
    package static func reader(group: UInt16, netnsPath: String? = nil,
                              onFlow: @escaping @Sendable (FlowSeen) -> Void) -> NflogReader {
        NflogReader(group: group, netnsPath: netnsPath) { packet in
            if let flow = observation(packet) { onFlow(flow) }
        }
    }

    package static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
