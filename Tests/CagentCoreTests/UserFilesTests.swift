import CagentCore
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The per-thread file identity under the confused-deputy rule (docs/security.md): on this thread a root-only
/// file is refused and the fs capabilities are gone; another thread of the same process keeps root's rights
/// meanwhile; after the block, root's rights are back.
@Suite("user file rights", .serialized)
struct UserFilesTests {
    static func capEff() -> UInt64 {
        let text = FileSystem.readText("/proc/thread-self/status") ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? ""
        return UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? 0
    }
    static let dacOverride: UInt64 = 1 << 1  // CAP_DAC_OVERRIDE
    static let dacReadSearch: UInt64 = 1 << 2  // CAP_DAC_READ_SEARCH

    @Test("asUser: this thread only, capabilities cleared and restored",
          .enabled(if: Requirements.mayRun(root: true, tools: ["useradd", "userdel"]), "needs root and useradd"))
    func perThread() throws {
        try Requirements.root()
        let user = try TestUser()
        let identity = FileIdentity(uid: user.uid, gid: user.gid, groups: [user.gid], name: user.name)
        let secret = NSTemporaryDirectory() + "cgt-userfiles-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(FileManager.default.createFile(atPath: secret, contents: Data("secret".utf8), attributes: [.posixPermissions: 0o600]))
        defer { unlink(secret) }

        // Positive control: root reads it, with CAP_DAC_OVERRIDE in effect.
        #expect(FileSystem.readAsUser(secret, limit: 100, identity: nil) == .success(Array("secret".utf8)))
        #expect(Self.capEff() & Self.dacOverride != 0)

        // A thread that exists before the switch (a thread created during it would inherit the switched
        // credentials, as clone copies them: the block must not start threads).
        nonisolated(unsafe) var otherThreadRead: [UInt8]?
        let go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let thread = Thread { go.wait(); otherThreadRead = FileSystem.read(secret); done.signal() }
        thread.start()
        try FileSystem.asUser(identity) {
            #expect(Self.capEff() & (Self.dacOverride | Self.dacReadSearch) == 0, "fs capabilities still in effect")
            #expect(open(secret, O_RDONLY | O_CLOEXEC) == -1 && errno == EACCES)
            go.signal()
            done.wait()
        }
        #expect(otherThreadRead == Array("secret".utf8), "another thread lost root's rights")
        #expect(FileSystem.read(secret) == Array("secret".utf8), "root's rights not restored")
        #expect(Self.capEff() & Self.dacOverride != 0)

        switch FileSystem.readAsUser(secret, limit: 100, identity: identity) {
        case .success: Issue.record("the user read a root-only file")
        case .failure(let error):
            #expect(error.message(path: secret) == "cannot read '\(secret)' as user \(user.name): Permission denied")
        }
        // The user's own file is read with the same call.
        chown(secret, user.uid, user.gid)
        #expect(FileSystem.readAsUser(secret, limit: 100, identity: identity) == .success(Array("secret".utf8)))
    }

    @Test("readAsUser refuses a FIFO without blocking, and a file over the limit")
    func fifoAndLimit() throws {
        let base = NSTemporaryDirectory() + "cgt-userfiles-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkfifo(base + ".fifo", 0o600) == 0)
        defer { unlink(base + ".fifo"); unlink(base + ".big") }
        switch FileSystem.readAsUser(base + ".fifo", limit: 100, identity: nil) {
        case .success: Issue.record("a FIFO was read")
        case .failure(let error): #expect(error.reason == .notRegular("a FIFO"))
        }
        #expect(FileManager.default.createFile(atPath: base + ".big", contents: Data(count: 101)))
        #expect(FileSystem.readAsUser(base + ".big", limit: 100, identity: nil) == .failure(UserFileError(reason: .tooLarge(limit: 100), identity: nil)))
        #expect(FileSystem.readAsUser(base + ".big", limit: 101, identity: nil).map(\.count) == .success(101))
    }
}
