#if canImport(Glibc)
import Glibc
#endif
#if canImport(Glibc)
import Glibc
#endif
import CagentCore
import Synchronization
import CShim
import CagentNetwork

/// What the gate did with one query; the denial reporter turns these into lines and counts.
package enum GateEvent: Sendable, Equatable {
    /// Resolved upstream; `addresses` were pinned before the answer went out (empty for NXDOMAIN/NODATA).
    case resolved(name: DNSName, type: UInt16, addresses: [IPAddress])
    /// Allowed name, type not forwarded (or AAAA without IPv6): answered NODATA locally.
    case noData(name: DNSName, type: UInt16)
    /// Name not in the profile: NXDOMAIN, nothing forwarded.
    case notAllowed(name: DNSName, type: UInt16)
    /// Refused: malformed or odd query, or an answer pointing somewhere the profile does not allow.
    case refused(name: DNSName?, reason: String)
    /// Upstream timeout/error or a pin failure: SERVFAIL, nothing released.
    case failed(name: DNSName, reason: String)
}

/// The session's only resolver: UDP and TCP on the gateway address, one dedicated thread with poll(2).
/// For an allowed A/AAAA question it sends a fresh query upstream (own ID, lowercased name, random source
/// port), follows the CNAME chain, refuses special-use answers, pins every address through the pinner,
/// and only then releases the answer, with TTLs clamped to the pins' lifetime.
package final class Gate: Sendable {
    package struct Configuration: Sendable {
        /// The session's gateway addresses (IPv4, and IPv6 when the sandbox has it), all on one port.
        package var listen: [IPAddress]
        /// 0 lets the kernel choose a free high port (the Firewall redirects port 53 to it).
        package var port: UInt16
        /// Network namespace (a /run/netns path) the gate thread enters before it opens any socket.
        package var netnsPath: String?
        package var policy: GatePolicy
        package var upstream: UpstreamConfig
        package var clamp: GateAnswer.Clamp
        package var maxTCPClients: Int
        package var tcpIdleSeconds: Double
        /// Ask mode (`cagent enforce --ask`): an A/AAAA question for a name not in the profile is held (nothing
        /// is forwarded, nothing pinned) and this decides; nil: NXDOMAIN at once.
        package var asker: GateAsker?
        /// Rootless mode: where the listening sockets come from (family, type -> an unbound socket created in the
        /// sandbox's namespace, which a plain user cannot enter: cg_netns_sockets); nil: created here.
        package var listenSocket: (@Sendable (_ family: Int32, _ type: Int32) throws -> Int32)?

        package init(listen: [IPAddress], port: UInt16 = 0, netnsPath: String? = nil, policy: GatePolicy,
                    upstream: UpstreamConfig, clamp: GateAnswer.Clamp = .init(), maxTCPClients: Int = 64,
                    tcpIdleSeconds: Double = 10) {
            self.listen = listen; self.port = port; self.netnsPath = netnsPath; self.policy = policy
            self.upstream = upstream; self.clamp = clamp; self.maxTCPClients = maxTCPClients
            self.tcpIdleSeconds = tcpIdleSeconds
        }
    }

    let configuration: Configuration
    let pinner: any AddressPinner
    package let book: AddressBook
    let emit: @Sendable (GateEvent) -> Void
    /// Learn mode: every exchange with the upstream, as an observation.
    let observer: (any GateObserver)?

    private let service = ServiceThread(name: "cagent-dns-gate")
    /// The port both sockets are bound to, 0 before `start`.
    package var port: UInt16 { boundPort.withLock { $0 } }
    private let boundPort = Mutex<UInt16>(0)

    package init(configuration: Configuration, pinner: any AddressPinner, book: AddressBook = AddressBook(),
                observer: (any GateObserver)? = nil, events: @escaping @Sendable (GateEvent) -> Void = { _ in }) {
        self.configuration = configuration; self.pinner = pinner; self.book = book; self.observer = observer
        self.emit = events
    }

    /// Starts the gate thread; returns the bound port once both sockets listen, or throws what failed.
    @discardableResult
    package func start() throws -> UInt16 {
        try service.start(setup: { [self] () throws -> Loop in
            if let path = configuration.netnsPath { try NamespaceThread.enter(netnsPath: path, stage: "dns gate") }
            let loop = try Loop(gate: self)
            boundPort.withLock { $0 = loop.port }
            return loop
        }, run: { loop in
            var loop = loop
            loop.run()
            loop.close()
        })
        return port
    }

    /// Stops the thread and closes every socket; pending queries are dropped (clients retry or fail).
    package func stop() { service.stop() }

    /// Queries the kernel dropped before the gate read them (its UDP sockets' queues were full: a flood
    /// faster than the gate answers), counted when the gate stopped; 0 before.
    package var droppedQueries: Int { dropped.withLock { $0 } }
    let dropped = Mutex<Int>(0)

    deinit {
        stop()
        for fd in decisionPipe where fd >= 0 { Glibc.close(fd) }
    }

    var wakeFD: Int32 { service.wakeFD }

    /// Ask mode: decisions arrive from any thread; the loop reads them after a byte on `decisionPipe`.
    let decisions = Mutex<[(key: String, decision: AskDecision)]>([])
    let decisionPipe: [Int32] = {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return fds }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        return fds
    }()

    func decide(_ key: String, _ decision: AskDecision) {
        decisions.withLock { $0.append((key, decision)) }
        var byte: UInt8 = 1
        _ = write(decisionPipe[1], &byte, 1)
    }
}

/// What the user answered for a held name.
package enum AskDecision: Sendable, Equatable {
    /// Resolve and pin this answer (its connections), nothing more: the next lookup asks again.
    case allowOnce
    /// Resolve it and every later lookup of the name in this session.
    case allowSession
    /// NXDOMAIN, as without ask mode.
    case deny
}

/// Asks about a held name; must not block (the gate thread calls it): `answer` is called once, from any thread.
package typealias GateAsker = @Sendable (_ name: DNSName, _ answer: @escaping @Sendable (AskDecision) -> Void) -> Void

/// The event loop's state; lives on the gate thread only.
private struct Loop {
    enum Client: Hashable {
        case udp(SocketAddress, socket: Int32)
        case tcp(fd: Int32, serial: Int)
    }

    struct Pending {
        var client: Client
        var query: DNSMessage
        var question: DNSQuestion
        var chain: [DNSRecord]
        var ports: [PinPort]
        var id: UInt16
        var attempt: Int
        var deadline: Double
    }

    struct TCPClient {
        var serial: Int
        var buffer: [UInt8]
        var lastActivity: Double
    }

    static let maxInFlight = 1024

    let gate: Gate
    let udpSockets: [Int32]
    let tcpSockets: [Int32]
    let port: UInt16
    var pending: [Int32: Pending] = [:]
    var tcpClients: [Int32: TCPClient] = [:]
    var serial = 0
    /// When this session's pin of each address (on a set of ports) runs out, by the gate's clock: pin vs refresh.
    var pinnedUntil: [PinKey: Double] = [:]

    struct PinKey: Hashable { var address: IPAddress; var ports: [PinPort] }
    /// Ask mode: queries held per (lowercased) name while the user decides, and names allowed for the session.
    var held: [String: [(client: Client, query: DNSMessage)]] = [:]
    var sessionAllowed: Set<String> = []
    static let maxHeldNames = 16, maxHeldPerName = 16
    var buffer = [UInt8](repeating: 0, count: 65536)

    var configuration: Gate.Configuration { gate.configuration }

    init(gate: Gate) throws {
        self.gate = gate
        var udps: [Int32] = [], tcps: [Int32] = []
        var port = gate.configuration.port
        do {
            guard !gate.configuration.listen.isEmpty else { throw CagentError(stage: "dns gate", "no listen address") }
            for address in gate.configuration.listen {
                // The first bind picks the port (when 0); every other socket takes the same one.
                let family = SocketAddress(address: address, port: 0).family
                let make = gate.configuration.listenSocket ?? { family, type in try Sockets.socket(family, type, stage: "dns gate: socket") }
                let udp = try make(family, Int32(SOCK_DGRAM.rawValue))
                udps.append(udp)
                try Sockets.bind(udp, SocketAddress(address: address, port: port), stage: "dns gate: udp bind")
                port = Sockets.boundPort(udp)
                var size: Int32 = 4 << 20
                setsockopt(udp, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                let tcp = try make(family, Int32(SOCK_STREAM.rawValue))
                tcps.append(tcp)
                try Sockets.bind(tcp, SocketAddress(address: address, port: port), stage: "dns gate: tcp bind")
                guard listen(tcp, 64) == 0 else { throw CagentError.system("dns gate: tcp listen", "listen \(address) port \(port)") }
            }
        } catch {
            for fd in udps + tcps { Glibc.close(fd) }
            throw error
        }
        udpSockets = udps
        tcpSockets = tcps
        self.port = port
    }

    mutating func run() {
        while true {
            var fds = [pollfd(fd: gate.wakeFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: gate.decisionPipe[0], events: Int16(POLLIN), revents: 0)]
            for fd in udpSockets + tcpSockets { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            for fd in tcpClients.keys { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            for fd in pending.keys { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let now = Sockets.now()
            var wait = 1000.0
            for entry in pending.values { wait = min(wait, max(0, (entry.deadline - now) * 1000)) }
            let rc = poll(&fds, nfds_t(fds.count), Int32(wait.rounded(.up)))
            if rc < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { return }
            if fds[1].revents != 0 { applyDecisions() }
            for entry in fds.dropFirst(2) where entry.revents != 0 {
                if udpSockets.contains(entry.fd) { readUDP(entry.fd) }
                else if tcpSockets.contains(entry.fd) { acceptTCP(entry.fd) }
                else if tcpClients[entry.fd] != nil { readTCP(entry.fd) }
                else if pending[entry.fd] != nil { readUpstream(entry.fd) }
            }
            expire()
        }
    }

    func close() {
        gate.dropped.withLock { $0 = udpSockets.reduce(0) { $0 + Loop.kernelDrops($1) } }
        for fd in udpSockets + tcpSockets { Glibc.close(fd) }
        for fd in tcpClients.keys { Glibc.close(fd) }
        for fd in pending.keys { Glibc.close(fd) }
    }

    /// The socket's drop counter (SO_MEMINFO's SK_MEMINFO_DROPS: datagrams refused for a full receive queue).
    static func kernelDrops(_ fd: Int32) -> Int {
        let soMeminfo: Int32 = 55, skMeminfoDrops = 8
        var info = [UInt32](repeating: 0, count: 9)
        var length = socklen_t(info.count * MemoryLayout<UInt32>.size)
        guard getsockopt(fd, SOL_SOCKET, soMeminfo, &info, &length) == 0,
              Int(length) > skMeminfoDrops * MemoryLayout<UInt32>.size else { return 0 }
        return Int(info[skMeminfoDrops])
    }

    // MARK: clients

    mutating func readUDP(_ udp: Int32) {
        // Drain what is queued, bounded so TCP and upstream replies are not starved.
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udp, raw.baseAddress, 512 * 8, 0, $0, &length) }
                }
            }
            if n < 0 { return }
            guard let from = SocketAddress(storage: storage) else { continue }
            handle(Array(buffer[0..<n]), from: .udp(from, socket: udp))
        }
    }

    mutating func acceptTCP(_ tcp: Int32) {
        while true {
            let fd = accept(tcp, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            if tcpClients.count >= configuration.maxTCPClients {
                // Too many open streams: drop the idlest to make room (a client cannot hold the gate).
                if let oldest = tcpClients.min(by: { $0.value.lastActivity < $1.value.lastActivity })?.key { dropTCP(oldest) }
            }
            serial += 1
            tcpClients[fd] = TCPClient(serial: serial, buffer: [], lastActivity: Sockets.now())
        }
    }

    mutating func readTCP(_ fd: Int32) {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { dropTCP(fd); return }
        if n < 0 { return }
        guard var client = tcpClients[fd] else { return }
        client.buffer += buffer[0..<n]
        client.lastActivity = Sockets.now()
        var messages: [[UInt8]] = []
        while client.buffer.count >= 2 {
            let length = Int(client.buffer[0]) << 8 | Int(client.buffer[1])
            guard client.buffer.count >= 2 + length else { break }
            messages.append(Array(client.buffer[2..<(2 + length)]))
            client.buffer.removeFirst(2 + length)
        }
        tcpClients[fd] = client
        for message in messages { handle(message, from: .tcp(fd: fd, serial: client.serial)) }
    }

    mutating func dropTCP(_ fd: Int32) {
        tcpClients[fd] = nil
        Glibc.close(fd)
    }

    mutating func send(_ reply: DNSMessage, to client: Client) {
        switch client {
        case .udp(let address, let udp):
            let bytes = GateAnswer.encode(reply, limit: 512)
            _ = address.withSockaddr { sockaddr, length in
                bytes.withUnsafeBytes { sendto(udp, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), sockaddr, length) }
            }
        case .tcp(let fd, let serial):
            guard tcpClients[fd]?.serial == serial else { return }   // the stream went away meanwhile
            let bytes = GateAnswer.encode(reply, limit: 65535)
            let framed = [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
            if !Sockets.writeAll(fd, framed, milliseconds: 1000) { dropTCP(fd) }
        }
    }

    mutating func handle(_ bytes: [UInt8], from client: Client) {
        let query: DNSMessage
        do {
            query = try DNSWire.parse(bytes)
        } catch {
            // Not DNS we can read: FORMERR with the ID if there is a header to answer, else silence.
            guard bytes.count >= 12, bytes[2] & 0x80 == 0 else { return }
            let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            send(GateAnswer.reply(to: DNSMessage(id: id, flags: 0), rcode: DNSRcode.formErr), to: client)
            gate.emit(.refused(name: nil, reason: "malformed query"))
            return
        }
        switch configuration.policy.decide(query) {
        case .drop:
            return
        case .refuse(let rcode, let reason):
            send(GateAnswer.reply(to: query, rcode: rcode), to: client)
            gate.emit(.refused(name: query.questions.first?.name, reason: reason))
        case .notAllowed where configuration.asker != nil && [DNSType.a, DNSType.aaaa].contains(query.questions[0].type):
            hold(query, from: client)
        case .notAllowed:
            send(GateAnswer.reply(to: query, rcode: DNSRcode.nxDomain), to: client)
            gate.emit(.notAllowed(name: query.questions[0].name, type: query.questions[0].type))
        case .noData:
            send(GateAnswer.reply(to: query, rcode: DNSRcode.noError), to: client)
            gate.emit(.noData(name: query.questions[0].name, type: query.questions[0].type))
        case .resolve(let question, let ports):
            ask(Pending(client: client, query: query, question: question, chain: [], ports: ports, id: 0, attempt: 0, deadline: 0))
        }
    }

    // MARK: ask mode

    /// Holds a query for a name not in the profile until the user decides (the client's retries join it).
    mutating func hold(_ query: DNSMessage, from client: Client) {
        let name = query.questions[0].name
        let key = name.lowercased().display
        if sessionAllowed.contains(key) { return release(query, to: client) }
        if var waiting = held[key] {
            if waiting.count < Loop.maxHeldPerName { waiting.append((client, query)); held[key] = waiting }
            return
        }
        // Bounded: a flood of names cannot queue unbounded questions; the excess is refused as without --ask.
        guard held.count < Loop.maxHeldNames, let asker = configuration.asker else {
            send(GateAnswer.reply(to: query, rcode: DNSRcode.nxDomain), to: client)
            gate.emit(.notAllowed(name: name, type: query.questions[0].type))
            return
        }
        held[key] = [(client, query)]
        let gate = gate
        asker(name) { decision in gate.decide(key, decision) }
    }

    mutating func applyDecisions() {
        var drain = [UInt8](repeating: 0, count: 64)
        while read(gate.decisionPipe[0], &drain, drain.count) > 0 {}
        let decided: [(key: String, decision: AskDecision)] = gate.decisions.withLock { list in
            let taken = list
            list = []
            return taken
        }
        for (key, decision) in decided {
            guard let waiting = held.removeValue(forKey: key) else { continue }
            if decision == .allowSession { sessionAllowed.insert(key) }
            for (client, query) in waiting {
                if decision == .deny {
                    send(GateAnswer.reply(to: query, rcode: DNSRcode.nxDomain), to: client)
                    gate.emit(.notAllowed(name: query.questions[0].name, type: query.questions[0].type))
                } else {
                    release(query, to: client)
                }
            }
        }
    }

    /// Answers an allowed-by-the-user query as an allowed name: resolved upstream, pinned on the web ports.
    mutating func release(_ query: DNSMessage, to client: Client) {
        let question = query.questions[0]
        if question.type == DNSType.aaaa && !configuration.policy.ipv6 {
            send(GateAnswer.reply(to: query, rcode: DNSRcode.noError), to: client)
            return
        }
        ask(Pending(client: client, query: query, question: DNSQuestion(name: question.name.lowercased(), type: question.type),
                    chain: [], ports: PinPort.webDefaults, id: 0, attempt: 0, deadline: 0))
    }

    // MARK: upstream

    /// Sends a fresh query for `entry.question` from a new socket (a new random source port each time).
    mutating func ask(_ entry: Pending) {
        var entry = entry
        // Bounded: a flood of allowed names cannot exhaust the host's file descriptors.
        guard pending.count < Loop.maxInFlight else {
            fail(entry, reason: "too many queries in flight")
            return
        }
        let servers = configuration.upstream.servers
        while entry.attempt < servers.count * 2 {
            let server = servers[entry.attempt % servers.count]
            entry.id = UInt16.random(in: 0...UInt16.max)
            entry.deadline = Sockets.now() + Double(configuration.upstream.timeoutMilliseconds) / 1000
            let target = SocketAddress(address: server.address, port: server.port)
            guard let bytes = try? DNSWire.build(GateAnswer.upstreamQuery(entry.question, id: entry.id)),
                  let fd = try? Sockets.socket(target.family, Int32(SOCK_DGRAM.rawValue), stage: "dns gate: upstream") else {
                break
            }
            let connected = target.withSockaddr { connect(fd, $0, $1) } == 0
            let sent = connected && bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) } == bytes.count
            if sent {
                pending[fd] = entry
                return
            }
            Glibc.close(fd)
            entry.attempt += 1
        }
        fail(entry, reason: "no upstream resolver answered")
    }

    mutating func readUpstream(_ fd: Int32) {
        guard let entry = pending[fd] else { return }
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            // ICMP unreachable and the like: try the next server now instead of waiting out the timeout.
            retry(fd, entry)
            return
        }
        guard let response = try? DNSWire.parse(Array(buffer[0..<n])),
              var walk = GateAnswer.walk(response, id: entry.id, question: entry.question) else {
            return   // not the answer to our question (spoofed, stale): keep waiting until the deadline
        }
        if response.truncated {
            let server = configuration.upstream.servers[entry.attempt % configuration.upstream.servers.count]
            guard let full = tcpQuery(entry.question, server: server),
                  let fullWalk = GateAnswer.walk(full, id: full.id, question: entry.question) else {
                retry(fd, entry)
                return
            }
            walk = fullWalk
        }
        pending[fd] = nil
        Glibc.close(fd)
        finish(entry, walk)
    }

    mutating func retry(_ fd: Int32, _ entry: Pending) {
        pending[fd] = nil
        Glibc.close(fd)
        var next = entry
        next.attempt += 1
        ask(next)
    }

    mutating func expire() {
        let now = Sockets.now()
        for (fd, entry) in pending where entry.deadline <= now { retry(fd, entry) }
        for (fd, client) in tcpClients where now - client.lastActivity > configuration.tcpIdleSeconds { dropTCP(fd) }
    }

    /// A blocking TCP exchange for a truncated UDP answer (rare: A/AAAA answers are small).
    func tcpQuery(_ question: DNSQuestion, server: UpstreamConfig.Server) -> DNSMessage? {
        let target = SocketAddress(address: server.address, port: server.port)
        guard let fd = try? Sockets.socket(target.family, Int32(SOCK_STREAM.rawValue), stage: "dns gate: upstream tcp") else { return nil }
        defer { Glibc.close(fd) }
        let timeout = configuration.upstream.timeoutMilliseconds
        let rc = target.withSockaddr { connect(fd, $0, $1) }
        guard rc == 0 || errno == EINPROGRESS, Sockets.wait(fd, Int16(POLLOUT), milliseconds: timeout) else { return nil }
        let id = UInt16.random(in: 0...UInt16.max)
        guard let bytes = try? DNSWire.build(GateAnswer.upstreamQuery(question, id: id)),
              Sockets.writeAll(fd, [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes, milliseconds: timeout) else { return nil }
        let deadline = Sockets.now() + Double(timeout) / 1000
        guard let header = Sockets.readExactly(fd, 2, deadline: deadline),
              let body = Sockets.readExactly(fd, Int(header[0]) << 8 | Int(header[1]), deadline: deadline),
              let message = try? DNSWire.parse(body), message.id == id else { return nil }
        return message
    }

    mutating func fail(_ entry: Pending, reason: String) {
        let answered = Sockets.wallClock()
        observe(entry, rcode: DNSRcode.servFail, answers: entry.chain, note: reason, at: answered)
        send(GateAnswer.reply(to: entry.query, rcode: DNSRcode.servFail), to: entry.client)
        gate.emit(.failed(name: entry.query.questions[0].name, reason: reason))
    }

    /// Learn mode: the exchange as the upstream answered it (chain and records, original TTLs), timed `at` the
    /// reply's sending: taken before it, so a flow the answer led to is never older than the answer (flows are
    /// named by the answers before them). Called *before* the reply is sent: the observer has the answer before
    /// the client can connect, so the flow log's reader never attributes that connect without it (under load it
    /// did: a named flow shown live as a direct IP).
    func observe(_ entry: Pending, rcode: UInt8, answers: [DNSRecord], note: String? = nil, at time: Double) {
        guard let observer = gate.observer else { return }
        let servers = configuration.upstream.servers
        let server = servers.isEmpty ? nil : servers[entry.attempt % servers.count]
        let question = entry.query.questions[0]
        observer.observe(DNSMessageSeen(
            source: .gate, time: time, isResponse: true,
            transport: { if case .tcp = entry.client { return "tcp" } else { return "udp" } }(),
            resolver: server?.address, resolverPort: server?.port, name: question.name.lowercased().display,
            type: question.type, rcode: rcode, answers: answers.map(DNSMessageSeen.answer), note: note))
    }

    /// Turns an upstream answer into pins and the client's reply: the chain so far plus this walk.
    mutating func finish(_ entry: Pending, _ walk: GateAnswer.Walk) {
        let name = entry.query.questions[0].name
        let type = entry.question.type
        var chain = entry.chain + walk.chain
        guard walk.rcode == DNSRcode.noError else {
            let rcode = walk.rcode == DNSRcode.nxDomain ? DNSRcode.nxDomain : DNSRcode.servFail
            let answered = Sockets.wallClock()
            observe(entry, rcode: walk.rcode, answers: chain, at: answered)
            send(GateAnswer.reply(to: entry.query, rcode: rcode, answers: clampChain(chain)), to: entry.client)
            if rcode == DNSRcode.nxDomain { gate.emit(.resolved(name: name, type: type, addresses: [])) }
            else { gate.emit(.failed(name: name, reason: "upstream rcode \(walk.rcode)")) }
            return
        }
        if walk.addresses.isEmpty, walk.others.isEmpty, !walk.chain.isEmpty, chain.count < GateAnswer.maxChain {
            // The chain leaves the upstream's answer unresolved: ask for its end, fresh again.
            ask(Pending(client: entry.client, query: entry.query, question: DNSQuestion(name: walk.finalName.lowercased(), type: type),
                        chain: chain, ports: entry.ports, id: 0, attempt: 0, deadline: 0))
            return
        }
        if chain.count > GateAnswer.maxChain { chain = Array(chain.prefix(GateAnswer.maxChain)) }
        let upstreamRecords = chain + walk.addresses.map { address, ttl in
            DNSRecord(name: walk.finalName, type: type, ttl: ttl, data: address.isV4 ? .a(address.bytes) : .aaaa(address.bytes))
        } + walk.others
        // Rebinding: an allowed name must not hand out loopback, private, link-local or metadata addresses.
        // Learn mode too: the forward chain drops them anyway, and the observation keeps what was answered.
        for (address, _) in walk.addresses {
            if let why = configuration.policy.refusal(for: address) {
                gate.book.record(address, for: name)
                let answered = Sockets.wallClock()
                observe(entry, rcode: walk.rcode, answers: upstreamRecords, note: "answer \(address) is \(why)", at: answered)
                send(GateAnswer.reply(to: entry.query, rcode: DNSRcode.refused), to: entry.client)
                gate.emit(.refused(name: name, reason: "answer \(address) is \(why)"))
                return
            }
        }
        var answers = clampChain(chain)
        let now = Sockets.now()
        for (address, ttl) in walk.addresses {
            let pinTTL = configuration.clamp.pin(ttl)
            let key = PinKey(address: address, ports: entry.ports)
            // Learn mode pins nothing (no ports): the forward chain accepts every new flow.
            if !entry.ports.isEmpty {
                do {
                    if let until = pinnedUntil[key], until > now + 1 {
                        try gate.pinner.refresh(address, ports: entry.ports, ttl: pinTTL)
                    } else {
                        try gate.pinner.pin(address, ports: entry.ports, ttl: pinTTL)
                    }
                } catch {
                    // Fail closed: an address that is not pinned is never handed out.
                    send(GateAnswer.reply(to: entry.query, rcode: DNSRcode.servFail), to: entry.client)
                    gate.emit(.failed(name: name, reason: "pinning \(address) failed: \(error)"))
                    return
                }
                if pinnedUntil.count > 65536 { pinnedUntil = pinnedUntil.filter { $0.value > now } }
                pinnedUntil[key] = max(pinnedUntil[key] ?? 0, now + Double(pinTTL))
            }
            gate.book.record(address, for: name)
            answers.append(DNSRecord(name: walk.finalName, type: type, ttl: configuration.clamp.client(ttl),
                                     data: address.isV4 ? .a(address.bytes) : .aaaa(address.bytes)))
        }
        // Types whose data may hold compressed names (NS, SOA, PTR, MX, SRV, ...) are kept as raw bytes by the
        // parser: relayed into our message the pointers would point elsewhere. Observed, not passed on (NODATA).
        for record in walk.others where !GateAnswer.mayHoldCompressedNames(record.type) {
            var record = record
            record.ttl = configuration.clamp.client(record.ttl)
            answers.append(record)
        }
        let answered = Sockets.wallClock()
        observe(entry, rcode: DNSRcode.noError, answers: upstreamRecords, at: answered)
        send(GateAnswer.reply(to: entry.query, rcode: DNSRcode.noError, answers: answers), to: entry.client)
        gate.emit(.resolved(name: name, type: type, addresses: walk.addresses.map(\.address)))
    }

    func clampChain(_ chain: [DNSRecord]) -> [DNSRecord] {
        chain.map { record in
            var record = record
            record.ttl = configuration.clamp.client(record.ttl)
            return record
        }
    }
}
