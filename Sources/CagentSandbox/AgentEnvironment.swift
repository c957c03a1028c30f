import CagentCore
import CagentProfile

/// The agent's environment, the same in enforce and learn mode: an allowlist, never a blocklist (a
/// blocklist of credential-looking names let `DATABASE_URL`, `DOCKER_PASS`, `SENTRY_DSN` through). What
/// passes: TERM, LANG, LC_*, TZ, PATH, the profile's `env.pass`, and the names given with `--env NAME`;
/// HOME is set to the user's home path. Everything else of the host's environment stays out, and its names
/// (never its values) are announced in one line, so a user who needs one knows how to pass it.
package struct AgentEnvironment: Sendable, Equatable {
    /// Variables that always pass (besides LC_*). Never a proxy variable: a proxy voids the allowlist
    /// (`enforce --proxy` sets its own, naming cagent's filtering proxy: `withFilteringProxy`).
    package static let alwaysPassed = ["TERM", "LANG", "TZ", "PATH"]
    /// Names the announcement leaves out: the shell's own bookkeeping and HOME, which cagent sets itself.
    static let unannounced: Set<String> = ["HOME", "PWD", "OLDPWD", "SHLVL", "_"]
    /// At most this many names in the announcement; the rest are counted.
    static let announcedNames = 12

    /// `NAME=value` entries for the agent, sorted by name, HOME last.
    package var entries: [String]
    /// Host variables that were not passed, sorted (the announcement's names).
    package var dropped: [String]
    /// Passed variables that are proxy settings routing traffic (ProxyRisk.routesTraffic), sorted.
    package var passedProxies: [String]

    /// `host` is cagent's own environment; `profilePass` the profile's env.pass; `requested` the `--env` names.
    package init(host: [String: String], profilePass: [String], requested: [String], home: String) {
        let names = Set(profilePass + requested + Self.alwaysPassed).subtracting(["HOME"])
        var entries: [String] = [], dropped: [String] = [], proxies: [String] = []
        for (name, value) in host.sorted(by: { $0.key < $1.key }) where !value.isEmpty {
            if names.contains(name) || name.hasPrefix("LC_") {
                entries.append("\(name)=\(value)")
                if ProxyRisk.routesTraffic(name) { proxies.append(name) }
            } else if !Self.unannounced.contains(name) {
                dropped.append(name)
            }
        }
        if host["PATH"] == nil { entries.append("PATH=/usr/local/bin:/usr/bin:/bin") }
        entries.append("HOME=\(home)")
        self.entries = entries; self.dropped = dropped; self.passedProxies = proxies
    }

    /// The one line announcing the dropped names (escaped, sorted, truncated with a count), or nil.
    package var droppedLine: String? {
        guard !dropped.isEmpty else { return nil }
        // Proxy variables are always named (the user must learn that the host's proxy is not used); the
        // other names fill the line up to its limit, in order.
        let proxyNames = dropped.filter(ProxyRisk.isProxyVariable)
        let others = dropped.filter { !ProxyRisk.isProxyVariable($0) }
        let named = Set(proxyNames + others.prefix(max(0, Self.announcedNames - proxyNames.count)))
        var shown = dropped.filter(named.contains).map { TerminalEscape.escape($0) }.joined(separator: ", ")
        if dropped.count > named.count { shown += " and \(dropped.count - named.count) more" }
        let proxies = !proxyNames.isEmpty
        return "cagent: not passed to the agent: \(shown) (pass one with --env NAME or the profile's env.pass"
            + (proxies ? "; proxy variables also need --allow-proxy, which voids the allowlist)" : ")")
    }

    /// The refusal when a proxy variable would pass without `--allow-proxy` (enforce mode only: learn
    /// mode's network is open anyway).
    package func proxyRefusal() -> CagentError? {
        guard !passedProxies.isEmpty else { return nil }
        let names = passedProxies.map { TerminalEscape.escape($0) }.joined(separator: ", ")
        return CagentError(stage: "environment",
                           "\(names) would hand the agent a proxy: everything the proxy fetches bypasses the network allowlist, so the allowlist would be void",
                           hint: "drop it from env.pass / --env (cagent's firewall needs no proxy), use --proxy URL where the host needs a proxy (cagent's filtering proxy checks every target), or run with --allow-proxy to accept the risk")
    }

    /// The warning printed at start when `--allow-proxy` let a proxy variable pass.
    package var proxyWarning: String? {
        guard !passedProxies.isEmpty else { return nil }
        let names = passedProxies.map { TerminalEscape.escape($0) }.joined(separator: ", ")
        return "cagent: warning: --allow-proxy: \(names) passed; hosts reached through the proxy bypass the network allowlist"
    }

    /// `cagent enforce --proxy`: every proxy variable (and the `no_proxy` exclusions, which would send traffic
    /// around the proxy, straight into the firewall) replaced by HTTP(S)_PROXY naming cagent's filtering proxy.
    package static func withFilteringProxy(_ entries: [String], url: String) -> [String] {
        var kept = entries.filter { entry in
            let name = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            return !ProxyRisk.isProxyVariable(name)
        }
        let home = kept.last?.hasPrefix("HOME=") == true ? kept.removeLast() : nil
        kept += ["HTTPS_PROXY", "HTTP_PROXY", "http_proxy", "https_proxy"].map { "\($0)=\(url)" }
        if let home { kept.append(home) }
        return kept
    }
}
