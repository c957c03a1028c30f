import CShim
import CagentCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `enforce --publish PORT`: an OAuth login that calls back to `http://localhost:PORT/...` — the browser runs
/// on the host, the agent's listener inside the sandbox's own network namespace. cagent listens on the host's
/// 127.0.0.1:PORT and relays each connection to 127.0.0.1:PORT *inside* the sandbox (a socket made on a
/// thread that joined the sandbox's namespace), and nothing else: no other port, no address but loopback,
/// no direction but host -> sandbox. The listener is bound before the sandbox exists (a busy port stops the
/// start); connections are relayed from the moment the namespace exists until the session ends.
/// Rootless mode: a plain user cannot join the sandbox's network namespace, so each connection's inside
/// socket is made by a helper that joins the sandbox's user namespace first (cg_netns_sockets_at, on the
/// namespaces held open since the start, not on a pid that could be reused) and connected from here.
// @unchecked: the listener, stop pipe and namespace fds (C) and the acceptor are set by the owner; relays in a Mutex.
final class PublishedPort: @unchecked Sendable {
    static let maximumConnections = 16
    let port: UInt16
    private let listener: Int32
    private let stopPipe: [Int32]
    private var namespace: Int32 = -1
    /// Rootless mode: the sandbox's user namespace (the inside sockets come from cg_netns_sockets_at); -1 as root.
    private var userNamespace: Int32 = -1
    private var acceptor: DedicatedThread?
    /// The relay threads (joined at stop) and how many relay now.
    private let relays = Mutex<(threads: [DedicatedThread], active: Int)>(([], 0))

    init(port: UInt16) throws {
        guard port > 0 else { throw CagentError(stage: "publish", "port 0 cannot be published", hint: "--publish PORT, 1-65535: the port the agent's callback listens on") }
        self.port = port
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CagentError.system("publish", "socket") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = errno
            close(fd)
            errno = error
            throw CagentError.system("publish", "cannot listen on 127.0.0.1:\(port)",
                                     hint: error == EACCES
                                        ? "a port below net.ipv4.ip_unprivileged_port_start needs root: publish a port from 1024 up"
                                        : "another program uses the port (ss -ltnp 'sport = :\(port)'): stop it or publish another port")
        }
        listener = fd
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { close(fd); throw CagentError.system("publish", "pipe") }
        for end in fds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        stopPipe = fds
    }

    /// The start line.
    var line: String {
        "cagent: --publish: 127.0.0.1:\(port) on this host reaches the sandbox's localhost:\(port) (that port only)"
    }

    /// Called with the sandbox's init pid (its network namespace exists): accepting starts.
    func start(pid: Int32, rootless: Bool = false) throws {
        namespace = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else { throw CagentError.system("publish", "open the sandbox's network namespace") }
        if rootless {
            userNamespace = open("/proc/\(pid)/ns/user", O_RDONLY | O_CLOEXEC)
            guard userNamespace >= 0 else { throw CagentError.system("publish", "open the sandbox's user namespace") }
        }
        acceptor = try DedicatedThread.start(name: "cagent-publish") { [self] in acceptLoop() }
    }

    /// Ends the acceptor and every relay; idempotent.
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe[1], &byte, 1)
        acceptor?.join()
        acceptor = nil
        let threads = relays.withLock { state -> [DedicatedThread] in let all = state.threads; state.threads = []; return all }
        for thread in threads { thread.join() }
        if namespace >= 0 { close(namespace); namespace = -1 }
        if userNamespace >= 0 { close(userNamespace); userNamespace = -1 }
    }

    deinit {
        close(listener); close(stopPipe[0]); close(stopPipe[1])
    }

    private func acceptLoop() {
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue }; return }
            if fds[1].revents != 0 { return }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let admitted = relays.withLock { state -> Bool in
                guard state.active < Self.maximumConnections else { return false }
                state.active += 1
                return true
            }
            guard admitted else { close(client); continue }
            let namespace = self.namespace, userNamespace = self.userNamespace, port = self.port, stopFD = stopPipe[0]
            do {
                let thread = try DedicatedThread.start(name: "cagent-relay") { [self] in
                    Self.relay(client: client, namespace: namespace, userNamespace: userNamespace, port: port, stopFD: stopFD)
                    relays.withLock { $0.active -= 1 }
                }
                relays.withLock { $0.threads.append(thread) }
            } catch {
                close(client)
                relays.withLock { $0.active -= 1 }
            }
        }
    }

    /// On its own thread: a socket in the sandbox's namespace (this thread joins it as root; rootless, a helper
    /// makes it there), connected to its 127.0.0.1:port, relayed both ways.
    private static func relay(client: Int32, namespace: Int32, userNamespace: Int32, port: UInt16, stopFD: Int32) {
        defer { close(client) }
        let inside = userNamespace >= 0 ? rootlessSocket(userNamespace: userNamespace, namespace: namespace) : joinedSocket(namespace)
        guard inside >= 0 else { return }
        defer { close(inside) }
        var address = loopback(port)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(inside, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { return }   // nothing listens inside yet: the client sees the connection close
        var flowing = [true, true]   // client -> inside, inside -> client
        var buffer = [UInt8](repeating: 0, count: 65536)
        while flowing[0] || flowing[1] {
            var fds = [pollfd(fd: flowing[0] ? client : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: flowing[1] ? inside : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 3, -1) < 0 { if errno == EINTR { continue }; return }
            if fds[2].revents != 0 { return }
            for (index, (from, to)) in [(client, inside), (inside, client)].enumerated() where flowing[index] && fds[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if count <= 0 {
                    if count < 0 && errno == EINTR { continue }
                    flowing[index] = false
                    shutdown(to, Int32(SHUT_WR))
                    continue
                }
                var offset = 0
                while offset < count {
                    let written = buffer.withUnsafeBytes { write(to, $0.baseAddress! + offset, count - offset) }
                    if written < 0 { if errno == EINTR { continue }; return }
                    offset += written
                }
            }
        }
    }

    private static func joinedSocket(_ namespace: Int32) -> Int32 {
        guard cg_setns(namespace, CG_CLONE_NEWNET) == 0 else { return -1 }
        return socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    private static func rootlessSocket(userNamespace: Int32, namespace: Int32) -> Int32 {
        var fd: Int32 = -1
        var stage: UnsafePointer<CChar>?
        let domain = AF_INET, type = Int32(SOCK_STREAM.rawValue), proto: Int32 = 0
        guard cg_netns_sockets_at(userNamespace, namespace, [domain], [type], [proto], 1, 0, &fd, &stage) == 0 else { return -1 }
        return fd
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
