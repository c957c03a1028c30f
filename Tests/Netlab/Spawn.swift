import CagentCore
import Foundation

/// Child processes for the test network, on posix_spawn and waitpid. (Foundation's Process reaps its children
/// on a background queue; with many tests starting processes at once it left children unreaped and tests
/// waiting forever, so the lab owns its children outright.)
package struct SpawnedProcess: Sendable {
    package let pid: pid_t

    /// Starts `arguments` (arguments[0] looked up on PATH) in its own process group, with stdout/stderr sent
    /// to the given files (or /dev/null) and stdin from /dev/null.
    package static func start(_ arguments: [String], stdout: String? = nil, stderr: String? = nil,
                             environment: [String: String]? = nil) throws -> SpawnedProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: killing the group stops whatever the command started too.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { argv.forEach { free($0) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } } ?? []
        envp.append(nil)
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let result = environment == nil
            ? posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
            : posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw CagentError(stage: "spawn \(arguments[0])", "posix_spawnp failed", errno: result)
        }
        return SpawnedProcess(pid: pid)
    }

    /// Waits up to `timeout` seconds; kills the process group when it is still running then. Returns the
    /// exit status (128+N for a signal).
    @discardableResult
    package func wait(timeout: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return SpawnedProcess.decode(status) }
            if result < 0 && errno != EINTR { return -1 }
            if Date() >= deadline {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return SpawnedProcess.decode(status)
            }
            usleep(2_000)
        }
    }

    /// Stops the process group: SIGTERM, a short grace period, then SIGKILL; always reaps.
    package func stop() {
        kill(-pid, SIGTERM)
        kill(pid, SIGTERM)
        wait(timeout: 1)
    }

    package var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// A stand-in for Foundation's Process in tests, on `SpawnedProcess`. Foundation's Process (with Pipe and
/// FileHandle.nullDevice) closes descriptors from background queues; with tests running in parallel in one
/// process that closed other tests' sockets (EBADF from netlink). Output goes to files, never pipes.
package final class TestProcess: @unchecked Sendable {
    package var executableURL: URL?
    package var arguments: [String] = []
    package var environment: [String: String]?
    /// Where standard output / error go (default /dev/null).
    package var outputPath: String?
    package var errorPath: String?
    package private(set) var processIdentifier: Int32 = 0
    package private(set) var terminationStatus: Int32 = -1
    private var spawned: SpawnedProcess?

    package init() {}

    package func run() throws {
        guard let executableURL else { throw CagentError(stage: "test process", "no executable") }
        spawned = try SpawnedProcess.start([executableURL.path] + arguments, stdout: outputPath, stderr: errorPath,
                                           environment: environment)
        processIdentifier = spawned!.pid
    }

    package func waitUntilExit(timeout: Double = 300) {
        guard let spawned, terminationStatus < 0 else { return }
        terminationStatus = spawned.wait(timeout: timeout)
    }
}
