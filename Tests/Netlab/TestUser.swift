import CagentCore
import Foundation

/// A system user created for one test (no home, no login), removed at the end.
package final class TestUser: @unchecked Sendable {
    package let name: String
    package let uid: UInt32
    package let gid: UInt32

    /// `home` is recorded in the password database but not created.
    package init(home: String = "/nonexistent") throws {
        name = "cgtd" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var lastError = ""
        for _ in 0..<10 {
            // useradd locks /etc/passwd: parallel tests may collide, retry.
            let made = try Netlab.execute(["/usr/sbin/useradd", "--system", "--no-create-home", "--home-dir", home,
                                           "--shell", "/usr/sbin/nologin", "--user-group", name], timeout: 30)
            if made.status == 0 { break }
            lastError = made.stderr
            usleep(200_000)
        }
        guard let entry = getpwnam(name) else { throw CagentError(stage: "test", "useradd \(name) failed: \(lastError)") }
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
    }

    deinit {
        for _ in 0..<10 {
            if (try? Netlab.execute(["/usr/sbin/userdel", name], timeout: 30))?.status == 0 { return }
            usleep(200_000)
        }
    }
}
