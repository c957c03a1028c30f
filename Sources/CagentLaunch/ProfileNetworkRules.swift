import CagentCore
import CagentDNS
import CagentNetwork
import CagentProfile

/// A profile's network section as every enforcing session reads it (the veth session, rootless mode, a
/// container): the literal entries for the ruleset, the names and named endpoints for the DNS gate, and the
/// upstream resolvers. Parsed before any sandbox exists, so a bad pattern or resolver stops the start early.
struct ProfileNetworkRules: Sendable {
    let entries: [AllowEntry]
    let domains: [String]
    let namedEndpoints: [(host: String, port: PinPort)]
    let upstream: UpstreamConfig

    /// `resolverHint`: where the upstream resolvers come from in this mode (the host's resolv.conf, docker run --dns).
    init(profile: NetworkPolicy, upstreamOverride: [String], resolverHint: String) throws {
        let parsed = try AllowEntry.parse(cidrs: profile.cidrs,
                                          endpoints: profile.endpoints.map { ($0.host, $0.port, $0.proto.rawValue) })
        entries = parsed.entries
        domains = profile.domains
        namedEndpoints = parsed.named.map { ($0.host, PinPort($0.proto == .udp ? .udp : .tcp, $0.port)) }
        do {
            _ = try GatePolicy(domains: domains, endpoints: namedEndpoints, ipv6: true)   // refuse a bad pattern now
            upstream = upstreamOverride.isEmpty ? try UpstreamConfig.system(read: FileSystem.readText)
                                                : try UpstreamConfig(override: upstreamOverride)
        } catch {
            throw CagentError(stage: "profile network", "\(error)",
                              hint: "fix the profile's network section or \(resolverHint)")
        }
    }

    /// The gate's policy for these names (`ipv6`: whether AAAA answers can be pinned in this session).
    func gatePolicy(ipv6: Bool) throws -> GatePolicy {
        do { return try GatePolicy(domains: domains, endpoints: namedEndpoints, ipv6: ipv6) }
        catch { throw CagentError(stage: "dns gate", "\(error)") }
    }
}
