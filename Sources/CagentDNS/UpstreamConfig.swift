import CagentNetwork

/// Where the gate sends its fresh queries: the host's resolver configuration (/etc/resolv.conf, which
/// may name systemd-resolved's stub 127.0.0.53: the gate runs on the host, so the stub is reachable), or
/// cagent's own configuration. Never a profile key: a shared profile must not choose whose answers
/// get pinned.
package struct UpstreamConfig: Sendable, Equatable {
    package struct Server: Sendable, Equatable, CustomStringConvertible {
        package var address: IPAddress
        package var port: UInt16
        package init(address: IPAddress, port: UInt16 = 53) { self.address = address; self.port = port }
        package var description: String { address.isV4 ? "\(address):\(port)" : "[\(address)]:\(port)" }
    }

    package var servers: [Server]
    /// Per attempt; each server is tried twice in turn.
    package var timeoutMilliseconds: Int

    package init(servers: [Server], timeoutMilliseconds: Int = 2000) {
        self.servers = servers; self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// `nameserver` lines of a resolv.conf, in order (a link-local scope suffix like `%eth0` is dropped
    /// together with the address: the gate cannot bind it to an interface it does not know).
    package static func nameservers(resolvConf text: String) -> [IPAddress] {
        var found: [IPAddress] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { continue }
            if let address = IPAddress(String(words[1])), !found.contains(address) { found.append(address) }
        }
        return found
    }

    /// From a resolv.conf file; throws when it names no usable server.
    package static func system(resolvConf path: String = "/etc/resolv.conf", read: (String) -> String?) throws(UpstreamConfigError) -> UpstreamConfig {
        guard let text = read(path) else { throw UpstreamConfigError(message: "cannot read \(path)") }
        let servers = nameservers(resolvConf: text)
        guard !servers.isEmpty else { throw UpstreamConfigError(message: "\(path) names no nameserver") }
        return UpstreamConfig(servers: servers.map { Server(address: $0) })
    }

    /// cagent's own configuration: "192.0.2.53", "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:5353".
    package init(override entries: [String], timeoutMilliseconds: Int = 2000) throws(UpstreamConfigError) {
        var servers: [Server] = []
        for entry in entries {
            guard let server = UpstreamConfig.server(entry) else {
                throw UpstreamConfigError(message: "not an upstream resolver address: \(entry)")
            }
            servers.append(server)
        }
        guard !servers.isEmpty else { throw UpstreamConfigError(message: "no upstream resolver configured") }
        self.init(servers: servers, timeoutMilliseconds: timeoutMilliseconds)
    }

    static func server(_ text: String) -> Server? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), let address = IPAddress(String(text[text.index(after: text.startIndex)..<close])) else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return Server(address: address) }
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), port > 0 else { return nil }
            return Server(address: address, port: port)
        }
        if let address = IPAddress(text) { return Server(address: address) }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let address = IPAddress(String(parts[0])), address.isV4,
              let port = UInt16(parts[1]), port > 0 else { return nil }
        return Server(address: address, port: port)
    }
}

package struct UpstreamConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
