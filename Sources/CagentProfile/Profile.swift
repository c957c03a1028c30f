/// A profile: what one agent may reach and see. This is the model every mode reads; the loader (YAML with
/// file:line:column errors, `extends`, trust) fills it. Paths may start with `~/` (the agent's home view).
package struct Profile: Sendable, Equatable {
    /// Schema version (`cagent: 1`).
    package var version: Int
    package var agent: String?
    package var description: String?
    /// Names or paths of the profiles this one builds on, in order.
    package var extends: [String]
    package var network: NetworkPolicy
    package var filesystem: FilesystemPolicy
    package var env: EnvironmentPolicy
    package var limits: Limits

    package init(version: Int = 1, agent: String? = nil, description: String? = nil, extends: [String] = [],
                network: NetworkPolicy = .init(), filesystem: FilesystemPolicy = .init(),
                env: EnvironmentPolicy = .init(), limits: Limits = .init()) {
        self.version = version; self.agent = agent; self.description = description; self.extends = extends
        self.network = network; self.filesystem = filesystem; self.env = env; self.limits = limits
    }
}

package struct NetworkPolicy: Sendable, Equatable {
    /// Domain patterns: `example.com` (exact), `*.example.com` (one label), `**.example.com` (any depth).
    package var domains: [String]
    /// `host:port/proto` entries (host is a name or a literal address).
    package var endpoints: [Endpoint]
    /// Literal addresses or CIDR blocks, IPv4 or IPv6.
    package var cidrs: [String]

    package init(domains: [String] = [], endpoints: [Endpoint] = [], cidrs: [String] = []) {
        self.domains = domains; self.endpoints = endpoints; self.cidrs = cidrs
    }
}

package struct Endpoint: Sendable, Equatable, Hashable, CustomStringConvertible {
    package enum Proto: String, Sendable { case tcp, udp }
    package var host: String
    package var port: UInt16
    package var proto: Proto

    package init(host: String, port: UInt16, proto: Proto = .tcp) {
        self.host = host; self.port = port; self.proto = proto
    }

    package var description: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)/\(proto.rawValue)"
    }
}

package struct FilesystemPolicy: Sendable, Equatable {
    /// Paths bound read-only into the view.
    package var read: [String]
    /// Paths bound read-write into the view.
    package var write: [String]
    /// Paths covered by an empty file or directory (secrets), on top of the built-in list.
    package var hide: [String]

    package init(read: [String] = [], write: [String] = [], hide: [String] = []) {
        self.read = read; self.write = write; self.hide = hide
    }
}

package struct EnvironmentPolicy: Sendable, Equatable {
    /// Variables passed from cagent's environment into the sandbox (TERM, LANG, LC_*, TZ, PATH always are).
    package var pass: [String]

    package init(pass: [String] = []) { self.pass = pass }
}

/// Resource limits; nil means the built-in default.
package struct Limits: Sendable, Equatable {
    package var processes: Int?
    package var memoryBytes: UInt64?
    package var openFiles: Int?
    package var tmpBytes: UInt64?
    package var shmBytes: UInt64?
    /// Disk space of what cagent stores for the agent: the shadow home (enforce), the scratch layer (learn).
    package var diskBytes: UInt64?

    package init(processes: Int? = nil, memoryBytes: UInt64? = nil, openFiles: Int? = nil,
                tmpBytes: UInt64? = nil, shmBytes: UInt64? = nil, diskBytes: UInt64? = nil) {
        self.processes = processes; self.memoryBytes = memoryBytes; self.openFiles = openFiles
        self.tmpBytes = tmpBytes; self.shmBytes = shmBytes; self.diskBytes = diskBytes
    }
}

/// Secrets hidden in every mode unless a profile explicitly binds them (the list of the sandbox-core issue).
package enum DefaultHidden {
    package static let home = ["~/.ssh", "~/.aws", "~/.gnupg", "~/.netrc", "~/.git-credentials", "~/.config/gh",
                              "~/.docker", "~/.kube", "~/.npmrc", "~/.pypirc"]
}
