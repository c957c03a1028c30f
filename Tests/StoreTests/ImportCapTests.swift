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
        #expect(result.status == 1, "status \(result.status): \(result.out) \(result.err)")
        #expect(result.err.contains("more than 20000000 lines") && result.err.contains("--max-lines"), "\(result.err)")
    }

    @Test("one endless line, gzipped: stops at the size cap; --max-bytes lowers and raises it",
          .enabled(if: Requirements.mayRun(tools: ["gzip"]), "needs gzip"))
    func sizeCap() throws {
        let scratch = try Scratch()
        let trace = scratch.file("line.jsonl.gz")
        try Self.bomb(trace, byte: "a", copies: 4)  // 64 MiB, one line
        let capped = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db"), "--max-bytes", "32M"], timeout: 60)
        #expect(capped.status == 1, "status \(capped.status): \(capped.err)")
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
        #expect(capped.status == 1 && capped.err.contains("more than 1000 lines"), "\(capped.err)")
        let fine = try runCagent(["import", "tracee", trace, "--db", scratch.file("t.db")], timeout: 60)
        #expect(fine.status == 0, "status \(fine.status): \(fine.err)")
    }
}
