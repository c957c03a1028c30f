import CagentCore
import CagentEvents
import CagentStore
import CagentTrace
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Collects what a tracer delivers (from its thread) for the test to read afterwards.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ObservedEvent] = []

    var sink: TraceSink {
        TraceSink(events: { event in self.lock.withLock { self.items.append(event) } })
    }
    var events: [ObservedEvent] { lock.withLock { items } }
    var binds: [BindObservation] { events.compactMap { if case .bind(let b) = $0 { b } else { nil } } }

    var files: [FileAccess] { events.compactMap { if case .file(let f) = $0 { f } else { nil } } }
    var execs: [ProcessExec] { events.compactMap { if case .exec(let e) = $0 { e } else { nil } } }
    var flows: [FlowObservation] { events.compactMap { if case .flow(let f) = $0 { f } else { nil } } }
    var exits: [ProcessExit] { events.compactMap { if case .exit(let e) = $0 { e } else { nil } } }

    func files(_ path: String) -> [FileAccess] { files.filter { $0.path == RawText(path) } }
}

/// The scripted workload every backend runs: a temporary directory (its cwd) with a file to read, and a
/// TCP listener on 127.0.0.1 (loopback of the test's own host: nothing leaves the machine).
final class Workload {
    let directory: String
    let listener: Int32
    let port: UInt16

    init() throws {
        var template = Array("/tmp/cagent-trace-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CagentError.system("test", "mkdtemp") }
        directory = String(cString: made)
        try "hello\n".write(toFile: directory + "/data.txt", atomically: false, encoding: .utf8)
        try "again\n".write(toFile: directory + "/dedup.txt", atomically: false, encoding: .utf8)
        try "fd\n".write(toFile: directory + "/dirfd.txt", atomically: false, encoding: .utf8)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        listener = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = listen(fd, 8)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit {
        close(listener)
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    /// Relative paths on purpose (resolved through the cwd); the dedup file is read five times.
    var script: String {
        """
        cat data.txt > /dev/null
        cat missing.txt 2>/dev/null
        echo hi > out.txt
        mkdir sub
        mv out.txt sub/moved.txt
        rm sub/moved.txt
        /bin/echo first "second arg" > /dev/null
        for i in 1 2 3 4 5; do /bin/cat \(directory)/dedup.txt; done > /dev/null
        python3 -c 'import os; fd = os.open("sub", os.O_RDONLY | os.O_DIRECTORY); os.stat("../dirfd.txt", dir_fd=fd)'
        python3 -c 'import socket; u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); socket.create_connection(("127.0.0.1", \(port))).close()'
        exit 3
        """
    }

    var argv: [String] { ["/bin/sh", "-c", script] }
    var environment: [String] { ["PATH=/usr/bin:/bin", "LC_ALL=C"] }
}
