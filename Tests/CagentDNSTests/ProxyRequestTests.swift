import Testing
import Netlab
import Synchronization
import CagentCore
#if canImport(Glibc)
import Glibc
#endif
import CagentNetwork
@testable import CagentDNS

/// The filtering proxy's decision (`cagent enforce --proxy`), pure: the request line's target against the
/// profile, Host smuggling, and heads a lenient parser would read two ways.
@Suite struct ProxyRequestTests {
    let policy = try! GatePolicy(domains: ["www.allowed.test", "*.cdn.test"], endpoints: [("git.allowed.test", PinPort(.tcp, 22))], ipv6: true)

    func decide(_ text: String) -> ProxyVerdict { ProxyRequestParser.decide(head: Array(text.utf8), policy: policy) }
    func reason(_ text: String) -> String? {
        if case .refuse(_, _, _, let reason) = decide(text) { return reason }
        return nil
    }
    func status(_ text: String) -> Int? {
        if case .refuse(let status, _, _, _) = decide(text) { return status }
        return nil
    }

    @Test func connectToAProfileHostIsChainedWithAFreshHead() throws {
        guard case .forward(let request) = decide("CONNECT WWW.Allowed.test:443 HTTP/1.1\r\nHost: www.allowed.test:443\r\nUser-Agent: x\r\n\r\n") else {
            Issue.record("refused"); return
        }
        #expect(request.target == "www.allowed.test:443" && request.form == .connect)
        #expect(String(decoding: request.upstreamHead, as: UTF8.self) == "CONNECT www.allowed.test:443 HTTP/1.1\r\nHost: www.allowed.test:443\r\n\r\n")
        // Endpoint hosts open their own port only; domains 80 and 443.
        if case .refuse = decide("CONNECT git.allowed.test:22 HTTP/1.1\r\n\r\n") { Issue.record("endpoint refused") }
        #expect(reason("CONNECT git.allowed.test:443 HTTP/1.1\r\n\r\n") == "port 443 not in profile")
        #expect(reason("CONNECT www.allowed.test:8080 HTTP/1.1\r\n\r\n") == "port 8080 not in profile")
        if case .refuse = decide("CONNECT a.cdn.test:80 HTTP/1.1\r\n\r\n") { Issue.record("wildcard refused") }
    }

    @Test func otherHostsAndAddressesAreRefused() {
        #expect(reason("CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n") == "not in profile")
        #expect(reason("CONNECT wwwallowed.test:443 HTTP/1.1\r\n\r\n") == "not in profile")
        #expect(reason("CONNECT a.b.cdn.test:443 HTTP/1.1\r\n\r\n") == "not in profile")
        #expect(reason("CONNECT 203.0.113.10:443 HTTP/1.1\r\n\r\n") == "an address, not a name in the profile")
        #expect(reason("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n") == "an address, not a name in the profile")
        #expect(reason("GET http://evil.test/x HTTP/1.1\r\nHost: evil.test\r\n\r\n") == "not in profile")
        if case .refuse(_, let method, let target, _) = decide("CONNECT evil.test:443 HTTP/1.1\r\n\r\n") {
            #expect(method == "CONNECT" && target == "evil.test:443")
            #expect(ProxyEvent.refused(method: method, target: target, reason: "not in profile").denialLine
                    == "cagent: refused proxy CONNECT evil.test:443 (not in profile)")
        } else { Issue.record("forwarded") }
    }

    @Test func absoluteRequestsAreRebuiltForOneRequestOnly() throws {
        guard case .forward(let request) = decide("POST http://www.allowed.test/up?x=1 HTTP/1.1\r\nHost: www.allowed.test\r\nConnection: keep-alive\r\nProxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\n") else {
            Issue.record("refused"); return
        }
        #expect(request.bodyLength == 5 && request.target == "www.allowed.test:80")
        #expect(String(decoding: request.upstreamHead, as: UTF8.self)
                == "POST http://www.allowed.test/up?x=1 HTTP/1.1\r\nHost: www.allowed.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
    }

    @Test func hostHeaderSmugglingIsRefused() {
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n") == "Host header evil.test differs from the target")
        #expect(reason("CONNECT www.allowed.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n") == "Host header evil.test:443 differs from the target")
        #expect(reason("CONNECT www.allowed.test:443 HTTP/1.1\r\nHost: www.allowed.test:80\r\n\r\n") != nil)
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test\r\nHost: evil.test\r\n\r\n") == "more than one Host header")
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\nHost:www.allowed.test\r\n evil.test\r\n\r\n") != nil)   // a folded line
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\n\r\n") == "no Host header")
        #expect(reason("GET http://evil.test@www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n") != nil)
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n") == "Transfer-Encoding is not forwarded")
        #expect(reason("GET http://www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == "more than one Content-Length")
    }

    @Test func malformedHeadsAreRefusedNeverGuessed() {
        for head in ["", "\r\n\r\n", "GET / HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n", "CONNECT www.allowed.test HTTP/1.1\r\n\r\n",
                     "CONNECT www.allowed.test:0 HTTP/1.1\r\n\r\n", "CONNECT www.allowed.test:99999 HTTP/1.1\r\n\r\n",
                     "CONNECT  www.allowed.test:443 HTTP/1.1\r\n\r\n", "CONNECT www.allowed.test:443 HTTP/2\r\n\r\n",
                     "CONNECT www.allowed.test:443\nHTTP/1.1\r\n\r\n", "CONNECT www.allowed.test\0.evil.test:443 HTTP/1.1\r\n\r\n",
                     "CONNECT www.allowed.test:443 HTTP/1.1\r\nX: \u{e9}\r\n\r\n", "connect www.allowed.test:443 HTTP/1.1\r\n\r\n",
                     "GET https://www.allowed.test/ HTTP/1.1\r\nHost: www.allowed.test\r\n\r\n", "CONNECT .:443 HTTP/1.1\r\n\r\n",
                     "CONNECT www..allowed.test:443 HTTP/1.1\r\n\r\n", "CONNECT [::1:443 HTTP/1.1\r\n\r\n"] {
            #expect(status(head) != nil, "forwarded: \(head.debugDescription)")
        }
        #expect(status(String(repeating: "A", count: ProxyRequestParser.maxHead + 1)) == 431)
        #expect(ProxyRequestParser.headEnd(Array("CONNECT a:1 HTTP/1.1\r\n\r\nrest".utf8)) == 24)
        #expect(ProxyRequestParser.headEnd(Array("CONNECT a:1 HTTP/1.1\r\n".utf8)) == nil)
        // Random bytes: never a crash, never a forward.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0..<120, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if case .forward = ProxyRequestParser.decide(head: bytes, policy: policy) { Issue.record("forwarded random bytes") }
        }
    }

    @Test func upstreamProxyURL() throws {
        #expect(try UpstreamProxy.parse("http://203.0.113.12:3128/") == SocketAddress(address: IPAddress("203.0.113.12")!, port: 3128))
        #expect(try UpstreamProxy.parse("[2001:db8::1]:8080") == SocketAddress(address: IPAddress("2001:db8::1")!, port: 8080))
        for bad in ["socks5://1.2.3.4:1080", "http://u:p@1.2.3.4:3128", "http://1.2.3.4", ""] {
            #expect(throws: (any Error).self, "\(bad)") { try UpstreamProxy.parse(bad) }
        }
    }
}

/// The filtering proxy's bounds, on a real socket in the netlab's host namespace: a head over the limit gets
/// 431, a slow head is closed, connections beyond the limit get 503 (an agent cannot hold the proxy), and the
/// proxy still answers afterwards. No upstream is needed: every request here is refused before one.
@Suite(.serialized) struct FilteringProxyBoundsTests {
    static let ready = Requirements.mayRun(root: true, tools: ["ip"])

    @Test(.enabled(if: ready, "needs root and ip")) func boundedHeadsAndConnections() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let policy = try GatePolicy(domains: ["www.allowed.test"], ipv6: false)
        let upstream = SocketAddress(address: IPAddress(NetlabAddresses.web3)!, port: 3128)
        let proxy = FilteringProxy(configuration: .init(listen: [IPAddress(NetlabAddresses.host4)!], policy: policy, upstream: upstream,
                                                        maxConnections: 4, headSeconds: 1))
        let port = try lab.onThread(in: .host) { try proxy.start() }
        defer { proxy.stop() }
        func connect() throws -> Int32 {
            try lab.onThread(in: .host) {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                let rc = SocketAddress(address: IPAddress(NetlabAddresses.host4)!, port: port).withSockaddr { Glibc.connect(fd, $0, $1) }
                guard rc == 0 else { close(fd); throw CagentError(stage: "test", "connect failed") }
                var timeout = timeval(tv_sec: 3, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                return fd
            }
        }
        func reply(_ fd: Int32, sending text: String) -> String {
            _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : "<closed \(n)>"
        }
        // The control: a refused target is answered 403 on this socket.
        let first = try connect(); defer { close(first) }
        #expect(reply(first, sending: "CONNECT evil.test:443 HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 403 "))

        let long = try connect(); defer { close(long) }
        #expect(reply(long, sending: "GET http://www.allowed.test/ HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000)).hasPrefix("HTTP/1.1 431 "))

        let slow = try connect(); defer { close(slow) }
        let started = Sockets.now()
        #expect(reply(slow, sending: "CONNECT www.allowed") == "<closed 0>")
        #expect(Sockets.now() - started < 2.5)

        // Four idle connections hold every slot; the fifth is refused at once.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<4 { idle.append(try connect()) }
        usleep(200_000)
        let extra = try connect(); defer { close(extra) }
        #expect(reply(extra, sending: "CONNECT evil.test:443 HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 503 "))
        for fd in idle { close(fd) }
        idle = []
        // Their threads end with the head timeout (or the close); then the proxy answers again.
        usleep(1_300_000)
        let after = try connect(); defer { close(after) }
        #expect(reply(after, sending: "CONNECT evil.test:443 HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 403 "))
    }
}

/// A CONNECT pipelined behind an allowed one must not reach an upstream proxy that refused the first and
/// kept the connection open (a second, unchecked request). The fake upstream answers 407 (the attack) or
/// 200 (the control: then the client's bytes do go on, into the tunnel).
@Suite(.serialized) struct FilteringProxyPipeliningTests {
    static let ready = Requirements.mayRun(root: true, tools: ["ip"])

    @Test(.enabled(if: ready, "needs root and ip"), arguments: ["407 Proxy Authentication Required", "200 Connection established"])
    func pipelinedBytesWaitForTheTunnel(answer: String) throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let host = IPAddress(NetlabAddresses.host4)!
        // The fake upstream: accepts one connection, answers the first head, records everything for a moment.
        let listener: (fd: Int32, port: UInt16) = try lab.onThread(in: .host) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard SocketAddress(address: host, port: 0).withSockaddr({ bind(fd, $0, $1) }) == 0, listen(fd, 4) == 0 else {
                throw CagentError(stage: "test", "fake upstream")
            }
            return (fd, Sockets.boundPort(fd))
        }
        defer { close(listener.fd) }
        let received = Mutex<[UInt8]>([])
        let upstreamThread = try DedicatedThread.start(name: "fake-upstream") {
            let fd = accept(listener.fd, nil, nil)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 4096)
            var answered = false
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                received.withLock { $0 += buffer[0..<n] }
                if !answered {
                    answered = true
                    let reply = Array("HTTP/1.1 \(answer)\r\nContent-Length: 0\r\n\r\n".utf8)
                    _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            }
        }
        defer { upstreamThread.join() }
        let policy = try GatePolicy(domains: ["www.allowed.test"], ipv6: false)
        let proxy = FilteringProxy(configuration: .init(listen: [host], policy: policy, upstream: SocketAddress(address: host, port: listener.port)))
        let port = try lab.onThread(in: .host) { try proxy.start() }
        defer { proxy.stop() }
        let client: Int32 = try lab.onThread(in: .host) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard SocketAddress(address: host, port: port).withSockaddr({ connect(fd, $0, $1) }) == 0 else { throw CagentError(stage: "test", "connect") }
            return fd
        }
        defer { close(client) }
        let attack = "CONNECT www.allowed.test:443 HTTP/1.1\r\nHost: www.allowed.test:443\r\n\r\nCONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n"
        _ = Array(attack.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
        #expect(n > 0 && String(decoding: buffer[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 \(answer)"))
        usleep(500_000)
        let seen = String(decoding: received.withLock { $0 }, as: UTF8.self)
        #expect(seen.hasPrefix("CONNECT www.allowed.test:443 HTTP/1.1\r\n"), "\(seen)")
        if answer.hasPrefix("200") {
            #expect(seen.contains("evil.test"), "control: after a 200 the client's bytes go into the tunnel: \(seen)")
        } else {
            #expect(!seen.contains("evil.test"), "a pipelined CONNECT reached the upstream after its refusal: \(seen)")
        }
        close(client)
    }
}
