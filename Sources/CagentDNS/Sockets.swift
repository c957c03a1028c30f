#if canImport(Glibc)
import Glibc
#endif
import CagentCore
import CagentNetwork

/// An address and port, converted to and from the kernel's sockaddr structures.
package struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    package var address: IPAddress
    package var port: UInt16

    package init(address: IPAddress, port: UInt16) { self.address = address; self.port = port }

    package var family: Int32 { address.isV4 ? AF_INET : AF_INET6 }

    package var description: String { address.isV4 ? "\(address):\(port)" : "[\(address)]:\(port)" }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if address.isV4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: address.bytes) }
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: address.bytes) }
        return withUnsafePointer(to: &sin6) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }

    init?(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            let bytes = withUnsafeBytes(of: sin.sin_addr) { Array($0) }
            self.init(address: IPAddress(bytes: bytes)!, port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
            self.init(address: IPAddress(bytes: bytes)!, port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }
}

enum Sockets {
    static func socket(_ family: Int32, _ type: Int32, stage: String) throws -> Int32 {
        let fd = Glibc.socket(family, type | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw CagentError.system(stage, "socket()") }
        return fd
    }

    static func bind(_ fd: Int32, _ address: SocketAddress, stage: String) throws {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if !address.address.isV4 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        if rc != 0 {
            let error = CagentError.system(stage, "bind \(address)", hint: "is the gateway address configured in this namespace?")
            close(fd)
            throw error
        }
    }

    static func boundPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return SocketAddress(storage: storage)?.port ?? 0
    }

    /// Seconds since the epoch (for observations; `now()` is monotonic, for timeouts).
    static func wallClock() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Waits for `events` on one fd for up to `milliseconds`; true when ready.
    static func wait(_ fd: Int32, _ events: Int16, milliseconds: Int) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let deadline = now() + Double(milliseconds) / 1000
        while true {
            let left = Int32(max(0, (deadline - now()) * 1000))
            let rc = poll(&entry, 1, left)
            if rc > 0 { return entry.revents & (events | Int16(POLLERR) | Int16(POLLHUP)) != 0 }
            if rc == 0 || (rc < 0 && errno != EINTR) { return false }
        }
    }

    /// Writes all of `bytes` to a non-blocking stream socket, waiting up to `milliseconds` in total.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], milliseconds: Int) -> Bool {
        var sent = 0
        let deadline = now() + Double(milliseconds) / 1000
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                let left = Int((deadline - now()) * 1000)
                if left <= 0 || !wait(fd, Int16(POLLOUT), milliseconds: left) { return false }
                continue
            }
            return false
        }
        return true
    }

    /// Reads exactly `count` bytes from a non-blocking stream socket before the deadline.
    static func readExactly(_ fd: Int32, _ count: Int, deadline: Double) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { got += n; continue }
            if n == 0 { return nil }
            if errno == EAGAIN || errno == EINTR {
                let left = Int((deadline - now()) * 1000)
                if left <= 0 || !wait(fd, Int16(POLLIN), milliseconds: left) { return nil }
                continue
            }
            return nil
        }
        return out
    }
}
