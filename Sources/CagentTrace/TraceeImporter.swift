import CShim
import CagentCore
import CagentStore
#if canImport(Glibc)
import Glibc
#endif

/// Reads a saved Tracee trace (JSON lines, plain or gzip) into a Recorder. Unknown events are counted, a
/// malformed line is reported with its number and skipped; neither stops the import.
public struct TraceeImporter {
    public struct Summary: Sendable {
        public var lines = 0
        public var events = 0
        /// Lines that parsed and mapped (some map to no event, e.g. a unix-socket connect).
        public var mapped = 0
        /// Unknown event names and how often each appeared.
        public var unknown: [String: Int] = [:]
        /// (line number, reason) of lines that could not be read; at most `maxReported` kept.
        public var malformed: [(line: Int, reason: String)] = []
        public var malformedCount = 0
    }

    /// A line longer than this is refused (a trace line is a few KiB; this bounds memory on hostile input).
    public static let maxLineBytes = 8 << 20
    public static let maxReported = 100

    public init() {}

    /// Imports `path` ("-" for standard input).
    public func importFile(_ path: String, into recorder: Recorder) throws -> Summary {
        let handle: cg_gz_handle?
        if path == "-" {
            handle = cg_gz_dopen(dup(0))
        } else {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw CagentError.system("import", "cannot open \(path)") }
            handle = cg_gz_dopen(fd)
            if handle == nil { close(fd) }
        }
        guard let handle else { throw CagentError.system("import", "cannot read \(path)") }
        defer { _ = cg_gz_close(handle) }

        var summary = Summary()
        try readLines(handle, path: path) { number, line, tooLong in
            summary.lines = number
            if tooLong {
                note(&summary, number, "line longer than \(Self.maxLineBytes) bytes")
                return
            }
            switch TraceeParser.parse(line: line) {
            case .blank: break
            case .malformed(let reason): note(&summary, number, reason)
            case .unknown(let name): summary.unknown[name, default: 0] += 1
            case .events(_, let events):
                summary.mapped += 1
                summary.events += events.count
                for event in events { recorder.record(event) }
            }
        }
        return summary
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
        while true {
            let count = buffer.withUnsafeMutableBytes { cg_gz_read(handle, $0.baseAddress, UInt32($0.count)) }
            if count < 0 {
                throw CagentError(stage: "import", "\(path): \(String(cString: cg_gz_error(handle))) after line \(number)",
                                  hint: "the file is truncated or not gzip/JSON lines; lines before it were imported")
            }
            if count == 0 { break }
            var start = 0
            let chunk = buffer[0..<Int(count)]
            while let newline = chunk[start...].firstIndex(of: 0x0A) {
                number += 1
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
