import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent import tracee` of a gzip bomb: the decompressed size and the line count are capped, the import
/// stops at the cap quickly with a message naming the cap and the flag that raises it.
@Suite("import caps")
struct ImportCapTests {
    /// A gzip file that inflates to `copies` × 16 MiB of `byte`: one gzip member, concatenated (zlib reads
    /// concatenated members as one stream). Nothing large is written: 1 GiB of newlines is ~1.5 MiB here.
    static func bomb(_ path: String, byte: String, copies: Int) throws {
        let member = path + ".member"
        defer { unlink(member) }
        let made = try Netlab.execute(["/bin/sh", "-c", "head -c 16777216 /dev/zero | tr '\\0' '\(byte)' | gzip -9 > \"$0\"", member],
                                      timeout: 60)
        #expect(made.status == 0, "\(made.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: member))
        var file = Data()
        for _ in 0..<copies { file.append(data) }
        try file.write(to: URL(fileURLWithPath: path))
    }

    @Test("1 GiB of newlines, gzipped: stops at the line cap, quickly, naming the cap and --max-lines",
          .enabled(if: Requirements.mayRun(tools: ["gzip"]), "needs gzip"))
    func newlineBomb() throws {
        let scratch = try Scratch()
        let trace = scratch.file("bomb.jsonl.gz")
        try Self.bomb(trace, byte: "\\n", copies: 64)
        let started = Date()
        let result = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db")], timeout: 60)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed < 45, "the import ran \(elapsed) s")
        #expect(result.status == 125, "status \(result.status): \(result.out) \(result.err)")
        #expect(result.err.contains("more than 20000000 lines") && result.err.contains("--max-lines"), "\(result.err)")
    }

    @Test("one endless line, gzipped: stops at the size cap; --max-bytes lowers and raises it",
          .enabled(if: Requirements.mayRun(tools: ["gzip"]), "needs gzip"))
    func sizeCap() throws {
        let scratch = try Scratch()
        let trace = scratch.file("line.jsonl.gz")
        try Self.bomb(trace, byte: "a", copies: 4)  // 64 MiB, one line
        let capped = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db"), "--max-bytes", "32M"], timeout: 60)
        #expect(capped.status == 125, "status \(capped.status): \(capped.err)")
        #expect(capped.err.contains("more than 33554432 bytes") && capped.err.contains("--max-bytes"), "\(capped.err)")
        // Positive control: with room, the same file is read to its end (its one line is too long, and skipped).
        let raised = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db"), "--max-bytes", "128M"], timeout: 60)
        #expect(raised.status == 0, "status \(raised.status): \(raised.err)")
        #expect(raised.out.contains("from 1 lines"), "\(raised.out)")
    }

    @Test("--max-lines below a fixture's length stops it; the default imports it",
          .enabled(if: Requirements.mayRun(tools: ["gzip"]), "needs gzip"))
    func lineFlag() throws {
        let scratch = try Scratch()
        let trace = scratch.file("many.jsonl.gz")
        try Self.bomb(trace, byte: "\\n", copies: 1)  // 16 Mi empty lines
        let capped = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db"), "--max-lines", "1000"], timeout: 60)
        #expect(capped.status == 125 && capped.err.contains("more than 1000 lines"), "\(capped.err)")
        let fine = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db")], timeout: 60)
        #expect(fine.status == 0, "status \(fine.status): \(fine.err)")
    }

    @Test("under sudo, a root-only trace file is not imported; the user's own is",
          .enabled(if: Requirements.mayRun(root: true, tools: ["useradd", "userdel"]), "needs root and useradd"))
    func rootOnlyTrace() throws {
        try Requirements.root()
        let scratch = try Scratch()
        let user = try TestUser()
        chown(scratch.path, user.uid, user.gid)
        let trace = scratch.file("root.jsonl")
        let marker = "/secret/MARKER\(UInt32.random(in: 0...UInt32.max))"
        try Data((#"{"timestamp":1,"processId":7,"processName":"cat","eventName":"security_file_open","args":[{"name":"pathname","value":""#
                  + marker + #""},{"name":"flags","value":"O_RDONLY"}]}"# + "\n").utf8).write(to: URL(fileURLWithPath: trace))
        chmod(trace, 0o600)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid), "SUDO_GID": String(user.gid),
                           "SUDO_USER": user.name]
        let db = scratch.file("t.db")
        let denied = try runCagent(["import", "tracee", trace, "--db", db], environment: environment)
        #expect(denied.status == 125 && denied.err.contains("as user \(user.name): Permission denied"), "\(denied.err)")
        let empty = try runCagent(["report", "--db", db, "--json"], environment: environment)
        #expect(!empty.out.contains(marker), "root's trace was imported")
        // Positive control: handed to the user, the same file is imported and its path shows in the report.
        chown(trace, user.uid, user.gid)
        let imported = try runCagent(["import", "tracee", trace, "--db", db], environment: environment)
        #expect(imported.status == 0, "\(imported.err)")
        let report = try runCagent(["report", "--db", db, "--json"], environment: environment)
        #expect(report.out.contains(marker), "\(report.out) \(report.err)")
        var info = stat()
        #expect(stat(db, &info) == 0 && info.st_uid == user.uid, "the database is not the user's")
    }
}
