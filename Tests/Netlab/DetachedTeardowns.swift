import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `cagent enforce` returns once the agent's exit is reported; its uplink is removed by a detached child
/// (`cagent-teardown`) that holds the session's lease until everything is gone (docs/network.md "Teardown").
/// A test that looks for leftovers after a session waits for that child first: until no lease under the
/// runtime directory is held and no `cagent-teardown` process is left, within `timeout` seconds. Returns
/// false on timeout (the leftover check that follows then says what remained).
package enum DetachedTeardowns {
    @discardableResult
    package static func wait(runtime: String, timeout: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !anyLiveLease(runtime: runtime) && !anyTeardownProcess() { return true }
            usleep(5_000)
        }
        return false
    }

    static func anyLiveLease(runtime: String) -> Bool {
        let directory = runtime + "/sessions"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasSuffix(".lease") {
            let fd = open(directory + "/" + name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            if flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK { return true }
        }
        return false
    }

    static func anyTeardownProcess() -> Bool {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { Int($0) != nil }
        return pids.contains { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == "cagent-teardown"
        }
    }
}
