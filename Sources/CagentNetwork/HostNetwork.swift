import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Host settings the uplink needs: forwarding, enabled only on the interfaces that carry sandbox traffic and
/// never switched off (Docker and libvirt rely on it). Every change to a pre-existing setting is appended to
/// `<runtime>/host-changes.log` so the user can see (and undo) what cagent did.
///
/// Sysctls are read and written through /proc/sys/net, which resolves to the calling thread's network namespace.
enum HostForwarding {
    static func read(_ key: String) -> String? {
        FileSystem.readText("/proc/sys/" + key.replacingDots())?.trimmingCharacters()
    }

    static func write(_ key: String, _ value: String) throws {
        let path = "/proc/sys/" + key.replacingDots()
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd < 0 { throw CagentError.system("sysctl \(key)", "cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        if Glibc.write(fd, bytes, bytes.count) != bytes.count { throw CagentError.system("sysctl \(key)", "cannot write \(value)") }
    }

    /// Sets `key` to `value` unless it already is; returns the change made to a host setting, if any.
    static func ensure(_ key: String, _ value: String) throws -> String? {
        let old = read(key)
        if old == value { return nil }
        try write(key, value)
        return "\(key) \(old ?? "?") -> \(value)"
    }

    /// Enables forwarding for one session interface and the uplinks its traffic leaves through.
    /// IPv4 forwarding is per input interface. IPv6 uses per-interface `force_forwarding` where the kernel has it
    /// (6.17+); otherwise `all.forwarding`, and then every interface that takes router advertisements with
    /// `accept_ra=1` is moved to `accept_ra=2` first, so that a SLAAC host keeps its own IPv6 address and route.
    static func enable(session: String, uplinks4: [String], uplinks6: [String]) throws -> [String] {
        var changes: [String] = []
        if !uplinks4.isEmpty {
            _ = try ensure("net.ipv4.conf.\(session).forwarding", "1")
            for uplink in uplinks4 { if let change = try ensure("net.ipv4.conf.\(uplink).forwarding", "1") { changes.append(change) } }
        }
        if !uplinks6.isEmpty {
            if read("net.ipv6.conf.\(session).force_forwarding") != nil {
                _ = try ensure("net.ipv6.conf.\(session).force_forwarding", "1")
                for uplink in uplinks6 {
                    if let change = try ensure("net.ipv6.conf.\(uplink).force_forwarding", "1") { changes.append(change) }
                }
            } else if read("net.ipv6.conf.all.forwarding") != "1" {
                for name in FileSystem.list("/proc/sys/net/ipv6/conf") where name != "all" && name != "default" {
                    if read("net.ipv6.conf.\(name).accept_ra") == "1", let change = try ensure("net.ipv6.conf.\(name).accept_ra", "2") {
                        changes.append(change)
                    }
                }
                if let change = try ensure("net.ipv6.conf.all.forwarding", "1") { changes.append(change) }
            }
        }
        return changes
    }

    static func record(_ changes: [String], session: String, paths: CagentPaths) {
        guard !changes.isEmpty else { return }
        let path = paths.runtime + "/host-changes.log"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let text = changes.map { "\(time(nil)) \(session) \($0)\n" }.joined()
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }
}

/// Another firewall whose forward policy drops what cagent allows (Docker's or ufw's FORWARD policy).
package enum ForeignFirewall {
    /// Warnings with the fix, for the current namespace; empty when nothing is in the way.
    package static func warnings() -> [String] {
        guard let chains = try? NetfilterInventory.chains() else { return [] }
        return warnings(chains: chains)
    }

    /// The same from a chain inventory already read. A foreign chain is never created by cagent's own batch,
    /// so an inventory read just before it serves.
    package static func warnings(chains: [NetfilterInventory.Chain]) -> [String] {
        NetfilterInventory.foreignForwardDrops(in: chains).map { chain in
            let table = "\(chain.familyName) \(chain.table)"
            return "the \(table) table's chain \(chain.name) drops forwarded traffic by default: the sandbox would have no network. "
                + "Fix: `nft 'insert rule \(table) \(chain.name) iifname \"cgs*\" accept'` and "
                + "`nft 'insert rule \(table) \(chain.name) oifname \"cgs*\" ct state established,related accept'` "
                + "(Docker: `iptables -I DOCKER-USER -i cgs+ -j ACCEPT; iptables -I DOCKER-USER -o cgs+ -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`; "
                + "ufw: `ufw route allow in on cgs+`). cagent's own table still decides what a sandbox may reach."
        }
    }
}

extension String {
    fileprivate func replacingDots() -> String {
        // Interface names may contain dots (eth0.100): only the separators between known parts become slashes.
        let parts = split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 4, parts[0] == "net", parts[2] == "conf" else { return parts.joined(separator: "/") }
        let interface = parts[3..<(parts.count - 1)].joined(separator: ".")
        return ["net", parts[1], "conf", interface, parts[parts.count - 1]].joined(separator: "/")
    }

    func trimmingCharacters() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == " " { text = text.dropLast() }
        return String(text)
    }
}
