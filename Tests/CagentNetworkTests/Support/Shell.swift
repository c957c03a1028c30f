import Foundation
import CagentCore
import CagentNetwork
import Netlab

/// Runs a shell command (test tooling only: `ip`, `nft`); returns status and combined output. Output goes
/// through files (Netlab.execute), never a pipe a background child could hold open.
@discardableResult
func sh(_ command: String, check: Bool = false, timeout: Double = 60) throws -> (status: Int32, output: String) {
    let result = try Netlab.execute(["/bin/sh", "-c", command], timeout: timeout)
    let output = result.stdout + result.stderr
    if check && result.status != 0 {
        throw CagentError(stage: "test command", "`\(command)` exited \(result.status): \(output)")
    }
    return (result.status, output)
}

/// Starts a long-running command in the background (its output discarded); returns its pid.
func spawnBackground(_ command: String) throws -> Int32 {
    let process = TestProcess()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", "exec " + command]
    try process.run()
    return process.processIdentifier
}

/// Runs `body` on a fresh thread and waits: namespace work never runs on Swift's shared executor threads.
func onDedicatedThread<T>(_ body: @escaping () throws -> T) throws -> T {
    let box = ResultBox<T>()
    box.body = body
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        box.result = Result { try box.body!() }
        done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    done.wait()
    return try box.result!.get()
}

func randomID(_ length: Int = 6) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<length).map { _ in alphabet.randomElement()! })
}

/// A throwaway runtime directory (setup lock and leases) per test.
func testPaths() throws -> CagentPaths {
    let dir = "/tmp/cgt-net-run-" + randomID(8)
    try makeDirectories(dir, mode: 0o700)
    return CagentPaths(runtime: dir, data: dir + "/data", config: dir + "/config")
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    var body: (() throws -> T)?
    init() {}
}
