import CShim
import CagentCore
import CagentEvents
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Reads a saved Tracee trace (JSON lines, plain or gzip) into a Recorder. Unknown events are counted, a
/// malformed line is reported with its number and skipped; neither stops the import.
package struct TraceeImporter {
    package struct Summary: Sendable {
        package var lines = 0
        package var events = 0
        /// Lines that parsed and mapped (some map to no event, e.g. a unix-socket connect).
        package var mapped = 0
        /// Unknown event names and how often each appeared.
        package var unknown: [String: Int] = [:]
        /// (line number, reason) of lines that could not be read; at most `maxReported` kept.
        package var malformed: [(line: Int, reason: String)] = []
        package var malformedCount = 0
    }

    /// A line longer than this is refused (a trace line is a few KiB; this bounds memory on hostile input).
    package static let maxLineBytes = 8 << 20
    package static let maxReported = 100

    /// Caps on what one import reads: a gzip bomb (a few MiB that inflate to endless newlines or one endless
    /// line) must stop, not run for hours filling memory and the store.
    package struct Limits: Sendable {
        /// Decompressed bytes. 4 GiB: several million events of a real trace (a Tracee line is 0.2 to 2 KiB).
        package var maxBytes: Int64
        /// Lines, blank ones included. 20 million: about what 4 GiB of the most compact events holds.
        package var maxLines: Int

        package init(maxBytes: Int64 = 4 << 30, maxLines: Int = 20_000_000) {
            self.maxBytes = maxBytes; self.maxLines = maxLines
        }
    }

    package var limits: Limits
    /// Whose rights the trace file is opened with (the invoking user under sudo); nil: the process's own.
    package var identity: FileIdentity?

    package init(limits: Limits = Limits(), identity: FileIdentity? = nil) {
        self.limits = limits
        self.identity = identity
    }

    /// Imports `path` ("-" for standard input).
    package func importFile(_ path: String, into recorder: some EventSink) throws -> Summary {
        let handle: cg_gz_handle?
        if path == "-" {
            handle = cg_gz_dopen(dup(0))
        } else {
            let fd: Int32
            switch FileSystem.openAsUser(path, flags: O_RDONLY | O_NONBLOCK, identity: identity) {
            case .failure(let error): throw CagentError(stage: "import", error.message(path: path))
            case .success(let opened): fd = opened
            }
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                close(fd)
                throw CagentError(stage: "import", "\(TerminalEscape.escape(path)) is \(FileSystem.kind(info.st_mode)), not a regular file",
                                  hint: "use - to read a pipe from standard input")
            }
            handle = cg_gz_dopen(fd)
            if handle == nil { close(fd) }
        }
        guard let handle else { throw CagentError.system("import", "cannot read \(path)") }
        defer { _ = cg_gz_close(handle) }

        var summary = Summary()
        var chunk: [PendingLine] = []
        chunk.reserveCapacity(Self.chunkLines)
        do {
            try readLines(handle, path: path) { number, line, tooLong in
                chunk.append(PendingLine(number: number, bytes: tooLong ? [] : Array(line), tooLong: tooLong))
                if chunk.count == Self.chunkLines {
                    process(chunk, into: recorder, &summary)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
        } catch {
            process(chunk, into: recorder, &summary)  // everything before the failure is kept
            throw error
        }
        process(chunk, into: recorder, &summary)
        return summary
    }

    struct PendingLine: Sendable {
        var number: Int
        var bytes: [UInt8]
        var tooLong: Bool
    }

    /// Lines are parsed in chunks on all cores (JSON parsing is most of an import's work), then recorded
    /// in file order.
    static let chunkLines = 4096
    static let workers = max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    private func process(_ chunk: [PendingLine], into recorder: some EventSink, _ summary: inout Summary) {
        guard !chunk.isEmpty else { return }
        var parsed = [TraceeLine](repeating: .blank, count: chunk.count)
        parsed.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let results = buffer
            let workers = Self.workers
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var index = worker
                while index < chunk.count {
                    if !chunk[index].tooLong { results[index] = TraceeParser.parse(line: chunk[index].bytes) }
                    index += workers
                }
            }
        }
        for (line, result) in zip(chunk, parsed) {
            summary.lines = line.number
            if line.tooLong {
                note(&summary, line.number, "line longer than \(Self.maxLineBytes) bytes")
                continue
            }
            switch result {
            case .blank: break
            case .malformed(let reason): note(&summary, line.number, reason)
            case .unknown(let name): summary.unknown[name, default: 0] += 1
            case .events(_, let events):
                summary.mapped += 1
                summary.events += events.count
                for event in events { recorder.record(event) }
            }
        }
    }

    private func note(_ summary: inout Summary, _ line: Int, _ reason: String) {
        summary.malformedCount += 1
        if summary.malformed.count < Self.maxReported { summary.malformed.append((line, reason)) }
    }

    /// Calls `body(lineNumber, bytes, tooLong)` for each newline-separated line.
    private func readLines(_ handle: cg_gz_handle, path: String,
                           _ body: (Int, ArraySlice<UInt8>, Bool) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var carry: [UInt8] = []
        var skipping = false
        var number = 0
        var total: Int64 = 0
        let shown = TerminalEscape.escape(path)
        func tooManyLines() -> CagentError {
            CagentError(stage: "import", "\(shown): more than \(limits.maxLines) lines (the import's cap), stopped",
                        hint: "a trace this long is unusual (a gzip bomb?); the lines before were imported; "
                            + "pass --max-lines N to raise the cap")
        }
        while true {
            let count = buffer.withUnsafeMutableBytes { cg_gz_read(handle, $0.baseAddress, UInt32($0.count)) }
            if count > 0 {
                total += Int64(count)
                if total > limits.maxBytes {
                    throw CagentError(stage: "import", "\(shown): more than \(limits.maxBytes) bytes decompressed (the import's cap), "
                                      + "stopped after line \(number)",
                                      hint: "a trace this large is unusual (a gzip bomb?); the lines before were imported; "
                                          + "pass --max-bytes SIZE (e.g. 16G) to raise the cap")
                }
            }
            if count < 0 {
                throw CagentError(stage: "import", "\(path): \(String(cString: cg_gz_error(handle))) after line \(number)",
                                  hint: "the file is truncated or not gzip/JSON lines; lines before it were imported")
            }
            if count == 0 {
                if cg_gz_truncated(handle) != 0 {
                    if !carry.isEmpty { number += 1; try body(number, carry[...], false) }
                    throw CagentError(stage: "import", "\(path): compressed data ends early, after line \(number)",
                                      hint: "the file is truncated; the lines before it were imported")
                }
                break
            }
            var start = 0
            let chunk = buffer[0..<Int(count)]
            while true {
                // A run of empty lines (a bomb is made of them) is counted without a per-line search.
                if carry.isEmpty && !skipping {
                    let run = buffer.withUnsafeBufferPointer { bytes in
                        var end = start
                        while end < Int(count) && bytes[end] == 0x0A { end += 1 }
                        return end - start
                    }
                    number += run
                    start += run
                    if number > limits.maxLines { throw tooManyLines() }
                }
                // memchr: a bomb of one endless line is searched at memory speed, also in debug builds.
                let found = buffer.withUnsafeBufferPointer { bytes -> Int? in
                    guard start < Int(count), let base = bytes.baseAddress,
                          let hit = memchr(base + start, 0x0A, Int(count) - start) else { return nil }
                    return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                }
                guard let newline = found else { break }
                number += 1
                if number > limits.maxLines { throw tooManyLines() }
                if skipping {
                    skipping = false
                    try body(number, [], true)
                } else if carry.isEmpty {
                    try body(number, chunk[start..<newline], false)
                } else {
                    carry += chunk[start..<newline]
                    try body(number, carry[...], carry.count > Self.maxLineBytes)
                    carry.removeAll(keepingCapacity: true)
                }
                start = newline + 1
            }
            if start < chunk.count && !skipping {
                carry += chunk[start...]
                if carry.count > Self.maxLineBytes { skipping = true; carry = [] }
            }
        }
        if skipping { number += 1; try body(number, [], true) }
        else if !carry.isEmpty { number += 1; try body(number, carry[...], false) }
    }
}
