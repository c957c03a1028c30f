/// A profile: what one agent may reach and see. This is the model every mode reads; the loader (YAML with
/// file:line:column errors, `extends`, trust) fills it. Paths may start with `~/` (the agent's home view).
public struct Profile: Sendable, Equatable {
    /// Schema version (`cagent: 1`).
    public var version: Int
    public var agent: String?
    public var description: String?
    /// Names or paths of the profiles this one builds on, in order.
    public var extends: [String]
    public var network: NetworkPolicy
    public var filesystem: FilesystemPolicy
    public var env: EnvironmentPolicy
    public var limits: Limits

    public init(version: Int = 1, agent: String? = nil, description: String? = nil, extends: [String] = [],
                network: NetworkPolicy = .init(), filesystem: FilesystemPolicy = .init(),
                env: EnvironmentPolicy = .init(), limits: Limits = .init()) {
        self.version = version; self.agent = agent; self.description = description; self.extends = extends
        self.network = network; self.filesystem = filesystem; self.env = env; self.limits = limits
    }
}

public struct NetworkPolicy: Sendable, Equatable {
    /// Domain patterns: `example.com` (exact), `*.example.com` (one label), `**.example.com` (any depth).
    public var domains: [String]
    /// `host:port/proto` entries (host is a name or a literal address).
    public var endpoints: [Endpoint]
    /// Literal addresses or CIDR blocks, IPv4 or IPv6.
    public var cidrs: [String]

    public init(domains: [String] = [], endpoints: [Endpoint] = [], cidrs: [String] = []) {
        self.domains = domains; self.endpoints = endpoints; self.cidrs = cidrs
    }
}

public struct Endpoint: Sendable, Equatable, Hashable, CustomStringConvertible {
    public enum Proto: String, Sendable { case tcp, udp }
    public var host: String
    public var port: UInt16
    public var proto: Proto

    public init(host: String, port: UInt16, proto: Proto = .tcp) {
        self.host = host; self.port = port; self.proto = proto
    }

    public var description: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)/\(proto.rawValue)"
    }
}

public struct FilesystemPolicy: Sendable, Equatable {
    /// Paths bound read-only into the view.
    public var read: [String]
    /// Paths bound read-write into the view.
    public var write: [String]
    /// Paths covered by an empty file or directory (secrets), on top of the built-in list.
    public var hide: [String]

    public init(read: [String] = [], write: [String] = [], hide: [String] = []) {
        self.read = read; self.write = write; self.hide = hide
    }
}

public struct EnvironmentPolicy: Sendable, Equatable {
    /// Variables passed from cagent's environment into the sandbox (TERM, LANG, LC_*, TZ, PATH always are).
    public var pass: [String]

    public init(pass: [String] = []) { self.pass = pass }
}

/// Resource limits; nil means the built-in default.
public struct Limits: Sendable, Equatable {
    public var processes: Int?
    public var memoryBytes: UInt64?
    public var openFiles: Int?
    public var tmpBytes: UInt64?
    public var shmBytes: UInt64?
    /// Disk space of what cagent stores for the agent: the shadow home (enforce), the scratch layer (learn).
    public var diskBytes: UInt64?

    public init(processes: Int? = nil, memoryBytes: UInt64? = nil, openFiles: Int? = nil,
                tmpBytes: UInt64? = nil, shmBytes: UInt64? = nil, diskBytes: UInt64? = nil) {
        self.processes = processes; self.memoryBytes = memoryBytes; self.openFiles = openFiles
        self.tmpBytes = tmpBytes; self.shmBytes = shmBytes; self.diskBytes = diskBytes
    }
}

/// Secrets hidden in every mode unless a profile explicitly binds them (the list of the sandbox-core issue).
public enum DefaultHidden {
    public static let home = ["~/.ssh", "~/.aws", "~/.gnupg", "~/.netrc", "~/.git-credentials", "~/.config/gh",
                              "~/.docker", "~/.kube", "~/.npmrc", "~/.pypirc"]
}
