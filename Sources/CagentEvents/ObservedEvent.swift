// The event model every source feeds (the DNS gate, pcap, the tracers, the Tracee importer). It has no
// dependency on the database, so that parsers (and their fuzz harness) can be built without GRDB.

/// Text that came from a sandbox: a path, argv element, domain or program name. Linux gives bytes, not
/// Unicode, so it is kept as bytes (stored intact, invalid UTF-8 included) and only escaped when printed.
package struct RawText: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var bytes: [UInt8]

    package init(bytes: [UInt8]) { self.bytes = bytes }
    package init(_ text: String) { self.bytes = Array(text.utf8) }
    package init<S: StringProtocol>(_ text: S) { self.bytes = Array(text.utf8) }

    package var isEmpty: Bool { bytes.isEmpty }

    /// The text when it is valid UTF-8, else nil.
    package var validString: String? { String(validating: bytes, as: UTF8.self) }

    /// Always a string; invalid bytes become U+FFFD. For matching and hashing, never for display.
    package var lossyString: String { String(decoding: bytes, as: UTF8.self) }

    package var description: String { lossyString }

    package static func < (lhs: RawText, rhs: RawText) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    package static func == (lhs: RawText, rhs: RawText) -> Bool { lhs.bytes == rhs.bytes }

    /// The bytes in one call (Array's own hashing feeds the hasher one byte at a time: every traced path
    /// is hashed several times on its way to the store).
    package func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// One thing a source saw. Sources build these and hand them to a `Recorder`; nothing else is needed to
/// feed the store.
package enum ObservedEvent: Sendable {
    case exec(ProcessExec)
    case exit(ProcessExit)
    case dns(DNSObservation)
    case flow(FlowObservation)
    case file(FileAccess)
    case bind(BindObservation)
}

/// Nanoseconds since the Unix epoch.
package typealias Nanoseconds = Int64

/// A program started (execve succeeded).
package struct ProcessExec: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var ppid: Int32
    /// The executable's path.
    package var executable: RawText
    package var argv: [RawText]
    /// The kernel's short name (comm) of the new program.
    package var program: RawText

    package init(time: Nanoseconds, pid: Int32, ppid: Int32, executable: RawText, argv: [RawText], program: RawText) {
        self.time = time; self.pid = pid; self.ppid = ppid; self.executable = executable; self.argv = argv
        self.program = program
    }
}

/// A process ended.
package struct ProcessExit: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var exitCode: Int32?

    package init(time: Nanoseconds, pid: Int32, exitCode: Int32?) {
        self.time = time; self.pid = pid; self.exitCode = exitCode
    }
}

/// Who saw a DNS message.
package enum DNSSource: String, Sendable, Hashable, CaseIterable {
    /// cagent's DNS gate (the sanctioned resolver).
    case gate
    /// libpcap on the sandbox's interface.
    case pcap
    /// Tracee's DNS events.
    case tracee
}

package struct DNSAnswer: Sendable, Hashable {
    /// The owner name of the record (for a CNAME chain, each link's own name).
    package var name: RawText
    /// Record type, e.g. "A", "AAAA", "CNAME".
    package var type: String
    /// The record's data as text: an address, a target name, a TXT string.
    package var data: RawText
    package var ttl: UInt32

    package init(name: RawText, type: String, data: RawText, ttl: UInt32) {
        self.name = name; self.type = type; self.data = data; self.ttl = ttl
    }
}

/// A DNS question, and for a response its code and answers.
package struct DNSObservation: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var program: RawText
    package var question: RawText
    /// Query type, e.g. "A", "AAAA", "TXT", "TYPE65".
    package var type: String
    /// True for a response (it carries `rcode` and `answers`).
    package var isResponse: Bool
    /// Response code, e.g. "NOERROR", "NXDOMAIN"; empty for a query or when unknown.
    package var rcode: String
    package var answers: [DNSAnswer]
    /// The resolver's address (the peer the question went to or the answer came from).
    package var resolver: String
    package var source: DNSSource

    package init(time: Nanoseconds, pid: Int32 = 0, program: RawText = RawText(""), question: RawText, type: String,
                isResponse: Bool, rcode: String = "", answers: [DNSAnswer] = [], resolver: String, source: DNSSource) {
        self.time = time; self.pid = pid; self.program = program; self.question = question; self.type = type
        self.isResponse = isResponse; self.rcode = rcode; self.answers = answers; self.resolver = resolver
        self.source = source
    }
}

package enum FlowVerdict: String, Sendable, Hashable, CaseIterable {
    /// Seen, not judged (learn mode, a tracer, an import).
    case observed
    case allowed
    case blocked
}

/// How a flow's destination got its name.
package enum FlowNameSource: String, Sendable, Hashable, CaseIterable {
    /// A DNS answer of the session gave the address (the gate's, the capture's, or Tracee's DNS cache).
    case dns
    /// The TLS ClientHello on that address and port announced it (server name indication).
    case sni
}

/// A connection or datagram flow to a remote endpoint.
package struct FlowObservation: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var program: RawText
    /// "tcp", "udp", "icmp", ...
    package var proto: String
    package var address: String
    package var port: UInt16
    /// A name the source knows for the destination; nil to look it up in the session's DNS answers.
    package var name: RawText?
    /// How `name` was learned (nil with no name, or when the source cannot tell).
    package var nameSource: FlowNameSource?
    package var verdict: FlowVerdict
    package var bytesOut: Int64
    package var bytesIn: Int64
    package var packets: Int64
    /// Result of the connect (0 or an errno).
    package var result: Int32
    /// How many connections this observation stands for: 1 for one connect or one logged flow; 0 for evidence
    /// about a flow already recorded (a name learned later), which adds to no counter.
    package var connections: Int64

    package init(time: Nanoseconds, pid: Int32 = 0, program: RawText = RawText(""), proto: String, address: String,
                port: UInt16, name: RawText? = nil, nameSource: FlowNameSource? = nil, verdict: FlowVerdict = .observed,
                bytesOut: Int64 = 0, bytesIn: Int64 = 0, packets: Int64 = 0, result: Int32 = 0, connections: Int64 = 1) {
        self.time = time; self.pid = pid; self.program = program; self.proto = proto; self.address = address
        self.port = port; self.name = name; self.nameSource = name == nil ? nil : nameSource; self.verdict = verdict
        self.bytesOut = bytesOut; self.bytesIn = bytesIn; self.packets = packets; self.result = result
        self.connections = connections
    }
}

extension FlowObservation {
    /// An address as the firewall sees it: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
    /// socket's connect records) is its IPv4 address; anything else is unchanged.
    package static func canonicalAddress(_ address: String) -> String {
        let lower = address.lowercased()
        guard lower.hasPrefix("::ffff:") else { return address }
        let rest = lower.dropFirst(7)
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 })
        else { return address }
        return String(rest)
    }
}

/// A socket bound to a local address (bind(2)): a listening port, or a client choosing its source address.
package struct BindObservation: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var program: RawText
    /// "tcp" (stream) or "udp" (datagram).
    package var proto: String
    /// The local address as text ("0.0.0.0", "::", "127.0.0.1", ...).
    package var address: String
    /// The local port; 0 lets the kernel choose one.
    package var port: UInt16
    /// 0 or the errno (EADDRINUSE, EACCES, ...). The seccomp tracer sees the call before it runs: always 0.
    package var result: Int32

    package init(time: Nanoseconds, pid: Int32 = 0, program: RawText = RawText(""), proto: String, address: String,
                port: UInt16, result: Int32 = 0) {
        self.time = time; self.pid = pid; self.program = program; self.proto = proto; self.address = address
        self.port = port; self.result = result
    }

    /// "ipv4" or "ipv6", from the address's form.
    package var family: String { address.contains(":") ? "ipv6" : "ipv4" }
}

package enum FileOperation: String, Sendable, Hashable, CaseIterable {
    case read, write, create, exec, delete, rename, mkdir
}

/// A file-system access, successful or not.
package struct FileAccess: Sendable, Hashable {
    package var time: Nanoseconds
    package var pid: Int32
    package var program: RawText
    package var path: RawText
    package var operation: FileOperation
    /// 0 on success, else the errno (ENOENT, EACCES, ...).
    package var result: Int32
    /// open(2) flags when known.
    package var flags: Int32?

    package init(time: Nanoseconds, pid: Int32 = 0, program: RawText = RawText(""), path: RawText,
                operation: FileOperation, result: Int32 = 0, flags: Int32? = nil) {
        self.time = time; self.pid = pid; self.program = program; self.path = path; self.operation = operation
        self.result = result; self.flags = flags
    }
}

/// open(2) flags (x86_64/aarch64 generic values) to and from their names, and the operation they imply.
package enum OpenFlags {
    package static let known: [(String, Int32)] = [
        ("O_WRONLY", 0o1), ("O_RDWR", 0o2), ("O_CREAT", 0o100), ("O_EXCL", 0o200), ("O_NOCTTY", 0o400),
        ("O_TRUNC", 0o1000), ("O_APPEND", 0o2000), ("O_NONBLOCK", 0o4000), ("O_DSYNC", 0o10000),
        ("O_ASYNC", 0o20000), ("O_DIRECT", 0o40000), ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000),
        ("O_NOFOLLOW", 0o400000), ("O_NOATIME", 0o1000000), ("O_CLOEXEC", 0o2000000), ("O_SYNC", 0o4010000),
        ("O_PATH", 0o10000000), ("O_TMPFILE", 0o20200000),
    ]

    static let byName: [String: Int32] = Dictionary(known.map { ($0.0, $0.1) } + [("O_RDONLY", 0)],
                                                    uniquingKeysWith: { first, _ in first })

    /// Parses "O_RDONLY|O_LARGEFILE" (unknown names are ignored); nil when nothing is recognisable.
    package static func parse(_ text: String) -> Int32? {
        var value: Int32 = 0
        var recognised = false
        for part in text.utf8.split(separator: UInt8(ascii: "|")) {
            // Names are ASCII; spaces around them are tolerated.
            let name = part.drop(while: { $0 == 0x20 }).reversed().drop(while: { $0 == 0x20 })
            guard let flag = byName[String(decoding: name.reversed(), as: UTF8.self)] else { continue }
            value |= flag
            recognised = true
        }
        return recognised ? value : nil
    }

    package static func names(_ flags: Int32) -> String {
        var parts: [String] = [(flags & 3) == 0 ? "O_RDONLY" : ""]
        var rest = flags & ~3
        for (name, bit) in known where bit > 2 && (flags & bit) == bit && (rest & bit) != 0 {
            parts.append(name); rest &= ~bit
        }
        if (flags & 3) == 1 { parts[0] = "O_WRONLY" } else if (flags & 3) == 2 { parts[0] = "O_RDWR" }
        if rest != 0 { parts.append("0o" + String(rest, radix: 8)) }
        return parts.filter { !$0.isEmpty }.joined(separator: "|")
    }

    /// What an open with these flags does: create, write, or read.
    package static func operation(_ flags: Int32) -> FileOperation {
        if flags & 0o100 != 0 || flags & 0o20200000 == 0o20200000 { return .create }
        if flags & 3 != 0 || flags & 0o1000 != 0 { return .write }
        return .read
    }
}

/// Where a source hands what it saw: the store's `Recorder`, or a test's collector. Sources take this rather
/// than the recorder, so that they need not depend on the database.
package protocol EventSink: AnyObject, Sendable {
    func record(_ event: ObservedEvent)
}
