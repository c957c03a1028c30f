import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// An open network namespace (a file descriptor on its nsfs inode). setns(2) applies to the calling thread
/// only, so `run` enters it on the current thread and always returns the thread to where it was: call it
/// on a thread you own, never across an `await`.
package final class NetworkNamespace: Sendable {
    package let fd: Int32
    package let label: String

    /// The namespace of a process (e.g. the sandbox's init).
    package convenience init(pid: pid_t) throws {
        try self.init(path: "/proc/\(pid)/ns/net")
    }

    /// A namespace file: `/run/netns/NAME` or `/proc/PID/ns/net`.
    package init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        label = path
        if fd < 0 { throw CagentError.system("network namespace", "cannot open \(path)") }
    }

    /// The calling thread's current namespace.
    package static func current() throws -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/thread-self/ns/net")
    }

    /// A new network namespace (a loopback only, down), owned by cagent's user namespace: made on a thread of
    /// its own that ends right after, so that no other code runs in it; this descriptor keeps it alive.
    package static func fresh() throws -> NetworkNamespace {
        try DedicatedThread.run(name: "cagent-netns") { try makeOnThisThread() }
    }

    /// `fresh()` started now on a thread of its own (creating a namespace is kernel work the start need not
    /// wait for): join it for the namespace. `loopbackUp`: with `lo` up (an offline sandbox's whole network).
    package static func startFresh(loopbackUp: Bool = false) throws -> ThreadWork<NetworkNamespace> {
        try ThreadWork.start(name: "cagent-netns") {
            let namespace = try makeOnThisThread()
            if loopbackUp { try Rtnetlink(stage: "bring the sandbox's loopback up").setUp("lo") }
            return namespace
        }
    }

    /// Moves the calling thread — one that ends right after, nothing else runs on it — into a new namespace.
    private static func makeOnThisThread() throws -> NetworkNamespace {
        guard cg_unshare_net() == 0 else { throw CagentError.system("network namespace", "cannot create one") }
        return try NetworkNamespace.current()
    }

    deinit { close(fd) }

    /// Runs `body` with the calling thread inside this namespace.
    package func run<T>(_ body: () throws -> T) throws -> T {
        let home = try NetworkNamespace.current()
        if cg_setns(fd, CG_CLONE_NEWNET) != 0 {
            throw CagentError.system("network namespace", "cannot enter \(label)")
        }
        defer {
            // Failing to come back would leave this thread acting in the wrong namespace: that must not continue.
            if cg_setns(home.fd, CG_CLONE_NEWNET) != 0 { fatalError("cannot return to the original network namespace") }
        }
        return try body()
    }
}

/// Runs `body` inside `namespace`, or in the current one when nil.
func inNamespace<T>(_ namespace: NetworkNamespace?, _ body: () throws -> T) throws -> T {
    guard let namespace else { return try body() }
    return try namespace.run(body)
}
