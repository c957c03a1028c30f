/// Proxies void the network allowlist: the sandbox's firewall sees only the connection to the proxy, and
/// whatever the proxy fetches for the agent (a CONNECT to any host) bypasses the gate. So cagent never passes
/// proxy variables unannounced: `cagent enforce` refuses a proxy variable without `--allow-proxy` (or
/// `--proxy URL`, its filtering proxy, which checks every target against the profile), and `cagent profile lint` warns about the profile entries that
/// open the way (a passed proxy variable, an endpoint on a port proxies usually listen on).
package enum ProxyRisk {
    /// Ports HTTP and SOCKS proxies usually listen on (squid 3128/3129, 8080, privoxy 8118, SOCKS 1080,
    /// 8888). A heuristic: a proxy may listen anywhere, and a service on 8080 need not be a proxy.
    package static let proxyLookingPorts: Set<UInt16> = [3128, 3129, 8080, 8118, 1080, 8888]

    /// A variable some program reads as a proxy setting (`http_proxy`, `HTTPS_PROXY`, `all_proxy`,
    /// `no_proxy`, `npm_config_proxy`, `PIP_PROXY`, `GIT_PROXY_COMMAND` ...), in any case.
    package static func isProxyVariable(_ name: String) -> Bool {
        let lower = lowercased(name)
        return lower.hasSuffix("_proxy") || lower == "proxy" || lower == "git_proxy_command"
    }

    /// A proxy variable that sends traffic somewhere (every one but the `no_proxy` exclusion lists).
    package static func routesTraffic(_ name: String) -> Bool {
        isProxyVariable(name) && lowercased(name) != "no_proxy"
    }

    /// The warnings `profile lint` (and `profile show --resolved`) print for a merged profile: each passed
    /// proxy variable and each endpoint on a proxy-looking port, at the line that wrote it.
    package static func warnings(_ lists: [ListKey: [ListEntry]]) -> [ProfileDiagnostic] {
        var out: [ProfileDiagnostic] = []
        for entry in lists[.pass] ?? [] where routesTraffic(entry.value) {
            out.append(ProfileDiagnostic(
                entry.location,
                "env.pass \(ProfileText.quote(entry.value)) hands the agent a proxy: everything the proxy fetches bypasses the network allowlist",
                hint: "remove it; where the host needs a proxy, run `cagent enforce --proxy URL` (targets checked against the profile); `cagent enforce` refuses it unless run with --allow-proxy",
                severity: .warning))
        }
        for entry in lists[.endpoints] ?? [] {
            guard let endpoint = try? ValueSyntax.endpoint(entry.value), endpoint.proto == .tcp,
                  proxyLookingPorts.contains(endpoint.port) else { continue }
            out.append(ProfileDiagnostic(
                entry.location,
                "endpoint \(ProfileText.quote(entry.value)) is on a port proxies often use (a guess from the port alone); "
                    + "if it is a proxy, the agent reaches every host through it and the allowlist is void",
                hint: "allow the hosts the agent needs under network.domains instead, and reach a proxy with `cagent enforce --proxy URL`, which filters",
                severity: .warning))
        }
        return out
    }

    private static func lowercased(_ text: String) -> String { text.lowercased() }
}
