import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Runs a closure on a fresh thread that has joined a network namespace. setns(2) changes only the calling
/// thread, and Swift Testing runs tests in parallel on shared threads: namespace work therefore gets a
/// thread of its own that ends with the work, so no other code ever runs in the wrong namespace.
package enum NamespaceThread {
    /// Moves the calling thread (a dedicated one: see above) into the network namespace at `netnsPath`.
    package static func enter(netnsPath: String, stage: String) throws {
        let fd = open(netnsPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CagentError.system("\(stage): enter netns", "open \(netnsPath)") }
        defer { close(fd) }
        guard cg_setns(fd, CG_CLONE_NEWNET) == 0 else { throw CagentError.system("\(stage): enter netns", "setns \(netnsPath)") }
    }

    /// Joins the network namespace of a process, e.g. a sandbox's init.
    package static func run<T: Sendable>(pid: Int32, _ body: @escaping @Sendable () throws -> T) throws -> T {
        try run(netnsPath: "/proc/\(pid)/ns/net", body)
    }

    package static func run<T: Sendable>(netnsPath: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        try DedicatedThread.run(name: "cagent-netns") {
            let fd = open(netnsPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CagentError.system("setns \(netnsPath)", "cannot open the namespace") }
            defer { close(fd) }
            guard cg_setns(fd, CG_CLONE_NEWNET) == 0 else {
                throw CagentError.system("setns \(netnsPath)", "cannot join the namespace")
            }
            return try body()
        }
    }
}
