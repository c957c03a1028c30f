#if canImport(Glibc)
import Glibc
#endif
import CagentCore
import CagentNetwork
import Synchronization

/// What the filtering proxy did with one request; EnforceNetwork turns refusals into live denial lines.
package enum ProxyEvent: Sendable, Equatable {
    case forwarded(method: String, target: String)
    case refused(method: String?, target: String?, reason: String)
    /// The upstream proxy could not be reached (502 to the agent).
    case failed(target: String, reason: String)

    /// The live line for a refusal or failure (nil for a forwarded request), escaped for the terminal.
    package var denialLine: String? {
        switch self {
        case .forwarded: return nil
        case .refused(let method, let target, let reason):
            let what = [method.map { $0 == "CONNECT" ? "CONNECT" : "request \($0)" } ?? "request", target].compactMap { $0 }.joined(separator: " ")
            return TerminalEscape.escape("cagent: refused proxy \(what) (\(reason))")
        case .failed(let target, let reason):
            return TerminalEscape.escape("cagent: proxy could not reach the upstream proxy for \(target) (\(reason))")
        }
    }
}

/// `cagent enforce --proxy URL`: the sandbox's only way out to the web when the host reaches the internet
/// through an HTTP proxy. Listens on the session's gateway addresses (like the DNS gate; the session's input
/// chain accepts its port), checks every `CONNECT host:port` and absolute-URI request against the profile
/// (ProxyRequestParser with the gate's GatePolicy), answers 403 for the rest, and chains allowed ones to the
/// upstream proxy, which resolves the name: cagent never resolves the target, so there is no answer to
/// mismatch the check. One pthread for the accept loop, one per connection (bounded), all joined at `stop`.
// @unchecked: `port` and the stop pipe's fds are written by start()/stop() on the owner's thread.
package final class FilteringProxy: @unchecked Sendable {
    package struct Configuration: Sendable {
        package var listen: [IPAddress]
        package var port: UInt16
        package var policy: GatePolicy
        /// The upstream proxy (already an address: resolved once at start, on the host).
        package var upstream: SocketAddress
        package var maxConnections: Int
        /// Seconds a client has to send its request head.
        package var headSeconds: Double
        /// Seconds without traffic in either direction before a relayed connection is closed.
        package var idleSeconds: Double
        /// Rootless mode: where the listening sockets come from (family, type -> an unbound socket made in the
        /// sandbox's namespace by cg_netns_sockets, as for the gate); nil: created here.
        package var listenSocket: (@Sendable (_ family: Int32, _ type: Int32) throws -> Int32)?

        package init(listen: [IPAddress], port: UInt16 = 0, policy: GatePolicy, upstream: SocketAddress,
                    maxConnections: Int = 64, headSeconds: Double = 10, idleSeconds: Double = 600) {
            self.listen = listen; self.port = port; self.policy = policy; self.upstream = upstream
            self.maxConnections = maxConnections; self.headSeconds = headSeconds; self.idleSeconds = idleSeconds
        }
    }

    let configuration: Configuration
    let emit: @Sendable (ProxyEvent) -> Void
    private let service = ServiceThread(name: "cagent-proxy")
    package private(set) var port: UInt16 = 0
    /// Connection threads: running ones by serial, and the serials that finished (joined by the accept loop).
    private let connections = Mutex<(running: [Int: DedicatedThread], finished: [Int])>(([:], []))
    /// Readable when the connection threads must end (written once by `stop`).
    private var stopPipe: [Int32] = [-1, -1]

    package init(configuration: Configuration, events: @escaping @Sendable (ProxyEvent) -> Void = { _ in }) {
        self.configuration = configuration; self.emit = events
    }

    @discardableResult
    package func start() throws -> UInt16 {
        guard pipe(&stopPipe) == 0 else { throw CagentError.system("filtering proxy", "pipe") }
        for fd in stopPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        do {
            try service.start(setup: { [self] () throws -> [Int32] in
                let sockets = try openListeners()
                port = Sockets.boundPort(sockets[0])
                return sockets
            }, run: { [self] sockets in
                acceptLoop(sockets)
                for fd in sockets { close(fd) }
            })
        } catch {
            closeStopPipe()
            throw error
        }
        return port
    }

    /// Stops accepting, ends every connection (their threads see the stop pipe) and joins them.
    package func stop() {
        service.stop()
        guard stopPipe[1] >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(stopPipe[1], &byte, 1)
        let threads = connections.withLock { state -> [DedicatedThread] in
            let all = Array(state.running.values)
            state = ([:], [])
            return all
        }
        for thread in threads { thread.join() }
        closeStopPipe()
    }

    deinit { stop() }

    private func closeStopPipe() {
        for fd in stopPipe where fd >= 0 { close(fd) }
        stopPipe = [-1, -1]
    }

    private func openListeners() throws -> [Int32] {
        var sockets: [Int32] = []
        var port = configuration.port
        do {
            guard !configuration.listen.isEmpty else { throw CagentError(stage: "filtering proxy", "no listen address") }
            for address in configuration.listen {
                let family = SocketAddress(address: address, port: 0).family
                let make = configuration.listenSocket ?? { family, type in try Sockets.socket(family, type, stage: "filtering proxy: socket") }
                let fd = try make(family, Int32(SOCK_STREAM.rawValue))
                sockets.append(fd)
                try Sockets.bind(fd, SocketAddress(address: address, port: port), stage: "filtering proxy: bind")
                port = Sockets.boundPort(fd)
                guard listen(fd, 64) == 0 else { throw CagentError.system("filtering proxy: listen", "listen \(address) port \(port)") }
            }
        } catch {
            for fd in sockets { close(fd) }
            throw error
        }
        return sockets
    }

    private func acceptLoop(_ sockets: [Int32]) {
        var serial = 0
        while true {
            var fds = [pollfd(fd: service.wakeFD, events: Int16(POLLIN), revents: 0)]
            for fd in sockets { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let rc = poll(&fds, nfds_t(fds.count), 1000)
            if rc < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { return }
            reapFinished()
            for entry in fds.dropFirst() where entry.revents != 0 {
                while true {
                    let client = accept(entry.fd, nil, nil)
                    if client < 0 { break }
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(client, F_SETFL, O_NONBLOCK)
                    let running = connections.withLock { $0.running.count }
                    guard running < configuration.maxConnections else {
                        // Full: a short refusal, never a queue an agent could grow.
                        _ = Sockets.writeAll(client, ProxyRequestParser.refusal(status: 503, reason: "too many proxy connections"), milliseconds: 100)
                        close(client)
                        continue
                    }
                    serial += 1
                    let id = serial
                    do {
                        let thread = try DedicatedThread.start(name: "cagent-proxy-c") { [self] in
                            serve(client)
                            close(client)
                            connections.withLock { $0.finished.append(id) }
                        }
                        connections.withLock { $0.running[id] = thread }
                    } catch {
                        close(client)
                    }
                }
            }
        }
    }

    private func reapFinished() {
        let done = connections.withLock { state -> [DedicatedThread] in
            let threads = state.finished.compactMap { state.running.removeValue(forKey: $0) }
            state.finished.removeAll()
            return threads
        }
        for thread in done { thread.join() }
    }

    /// Waits for `fd` (and the stop pipe); false on stop or timeout.
    private func wait(_ fd: Int32, _ events: Int16, until deadline: Double) -> Bool {
        while true {
            let left = deadline - Sockets.now()
            if left <= 0 { return false }
            var fds = [pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: events, revents: 0)]
            let rc = poll(&fds, 2, Int32(min(left * 1000, 60_000).rounded(.up)))
            if rc < 0 && errno != EINTR { return false }
            if fds[0].revents != 0 { return false }
            if fds[1].revents != 0 { return true }
        }
    }

    /// One client connection: read the head (bounded in size and time), decide, refuse or chain upstream.
    private func serve(_ client: Int32) {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        let deadline = Sockets.now() + configuration.headSeconds
        var end: Int?
        while end == nil {
            guard head.count <= ProxyRequestParser.maxHead else {
                refuse(client, status: 431, method: nil, target: nil, reason: "request head too long")
                return
            }
            guard wait(client, Int16(POLLIN), until: deadline) else { return }
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n == 0 { return }
            if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; return }
            head += buffer[0..<n]
            end = ProxyRequestParser.headEnd(head)
        }
        guard let end else { return }
        let request: ProxyRequest
        switch ProxyRequestParser.decide(head: Array(head[0..<end]), policy: configuration.policy) {
        case .refuse(let status, let method, let target, let reason):
            refuse(client, status: status, method: method, target: target, reason: reason)
            return
        case .forward(let forwarded):
            request = forwarded
        }
        var early = Array(head[end...])
        if request.form == .absolute {
            // One request per connection: body bytes beyond Content-Length (a pipelined request) are dropped.
            if early.count > request.bodyLength { early = Array(early.prefix(request.bodyLength)) }
        }
        guard let upstream = connectUpstream() else {
            emit(.failed(target: request.target, reason: "connect to \(configuration.upstream) failed"))
            _ = Sockets.writeAll(client, ProxyRequestParser.refusal(status: 502, reason: "the upstream proxy cannot be reached"), milliseconds: 1000)
            return
        }
        defer { close(upstream) }
        emit(.forwarded(method: request.method, target: request.target))
        if request.form == .connect {
            // The client's bytes go on only once the upstream proxy opened the tunnel: pipelined after a
            // refused CONNECT (407, a keep-alive) they would be read as a second, unchecked request.
            guard Sockets.writeAll(upstream, request.upstreamHead, milliseconds: 10_000),
                  let answer = readUpstreamAnswer(upstream) else { return }
            guard Sockets.writeAll(client, answer.bytes, milliseconds: 10_000), answer.opened else { return }
            guard early.isEmpty || Sockets.writeAll(upstream, early, milliseconds: 10_000) else { return }
            relay(client: client, upstream: upstream, clientBudget: nil)
            return
        }
        guard Sockets.writeAll(upstream, request.upstreamHead + early, milliseconds: 10_000) else { return }
        let clientBudget: Int? = request.form == .absolute ? request.bodyLength - early.count : nil
        relay(client: client, upstream: upstream, clientBudget: clientBudget)
    }

    /// The upstream proxy's answer to CONNECT: its head (and any bytes after it), and whether it is a 2xx.
    private func readUpstreamAnswer(_ upstream: Int32) -> (bytes: [UInt8], opened: Bool)? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        let deadline = Sockets.now() + 30
        while ProxyRequestParser.headEnd(bytes) == nil {
            guard bytes.count <= ProxyRequestParser.maxHead, wait(upstream, Int16(POLLIN), until: deadline) else { return nil }
            let n = buffer.withUnsafeMutableBytes { recv(upstream, $0.baseAddress, $0.count, 0) }
            if n == 0 { return nil }
            if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; return nil }
            bytes += buffer[0..<n]
        }
        // "HTTP/1.x 2xx ": the status line's code.
        let opened = bytes.count > 12 && bytes.starts(with: Array("HTTP/1.".utf8)) && bytes[8] == 0x20 && bytes[9] == UInt8(ascii: "2")
        return (bytes, opened)
    }

    private func refuse(_ client: Int32, status: Int, method: String?, target: String?, reason: String) {
        emit(.refused(method: method, target: target, reason: reason))
        _ = Sockets.writeAll(client, ProxyRequestParser.refusal(status: status, reason: "refused by cagent's proxy: \(reason)"), milliseconds: 1000)
    }

    private func connectUpstream() -> Int32? {
        let address = configuration.upstream
        guard let fd = try? Sockets.socket(address.family, Int32(SOCK_STREAM.rawValue), stage: "filtering proxy: upstream") else { return nil }
        let rc = address.withSockaddr { connect(fd, $0, $1) }
        if rc != 0 {
            guard errno == EINPROGRESS, wait(fd, Int16(POLLOUT), until: Sockets.now() + 10) else { close(fd); return nil }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else { close(fd); return nil }
        }
        return fd
    }

    /// Copies bytes both ways until both directions ended, the connection idled out, or the proxy stops.
    /// `clientBudget`: at most this many more bytes from the client (an absolute-form request's body).
    private func relay(client: Int32, upstream: Int32, clientBudget: Int?) {
        var budget = clientBudget
        var clientOpen = budget.map { $0 > 0 } ?? true
        var upstreamOpen = true
        var buffer = [UInt8](repeating: 0, count: 65536)
        var lastActivity = Sockets.now()
        while upstreamOpen {
            var fds = [pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0),
                       pollfd(fd: upstream, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: clientOpen ? client : -1, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 3, 1000)
            if rc < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { return }
            if rc == 0 {
                if Sockets.now() - lastActivity > configuration.idleSeconds { return }
                continue
            }
            lastActivity = Sockets.now()
            if fds[1].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(upstream, $0.baseAddress, $0.count, 0) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    upstreamOpen = false
                } else if n > 0, !Sockets.writeAll(client, Array(buffer[0..<n]), milliseconds: 30_000) {
                    return
                }
            }
            if clientOpen && fds[2].revents != 0 {
                let limit = min(buffer.count, budget ?? buffer.count)
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, limit, 0) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    clientOpen = false
                    shutdown(upstream, Int32(SHUT_WR))
                } else if n > 0 {
                    guard Sockets.writeAll(upstream, Array(buffer[0..<n]), milliseconds: 30_000) else { return }
                    if let left = budget {
                        budget = left - n
                        if left - n <= 0 { clientOpen = false }
                    }
                }
            }
        }
    }
}

/// `--proxy URL`: the upstream proxy's address. `http://host:port`, `host:port` or `http://[v6]:port`; a name
/// is resolved once, here, on the host (the agent's targets never are).
package enum UpstreamProxy {
    package static func parse(_ text: String) throws -> SocketAddress {
        func invalid(_ why: String) -> CagentError {
            CagentError(stage: "proxy", "--proxy \(TerminalEscape.escape(text)): \(why)",
                        hint: "give the upstream proxy as http://HOST:PORT (the host's HTTPS_PROXY, usually)")
        }
        var rest = text
        if ProxyRequestParser.lower(String(rest.prefix(7))) == "http://" { rest = String(rest.dropFirst(7)) }
        else if rest.contains("://") { throw invalid("only http:// proxies are supported") }
        while rest.hasSuffix("/") { rest.removeLast() }
        guard !rest.contains("@") else { throw invalid("credentials in the proxy URL are not supported") }
        guard let (host, port) = ProxyRequestParser.hostPort(rest, defaultPort: nil) else { throw invalid("expected HOST:PORT") }
        if let address = IPAddress(host) { return SocketAddress(address: address, port: port) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { throw invalid("cannot resolve \(host)") }
        defer { freeaddrinfo(result) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let entry = node {
            if let sockaddr = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sockaddr, count: Int(entry.pointee.ai_addrlen)))
                }
                if let address = SocketAddress(storage: storage) { return SocketAddress(address: address.address, port: port) }
            }
            node = entry.pointee.ai_next
        }
        throw invalid("cannot resolve \(host)")
    }
}
