import ArgumentParser
import CagentCore
import CagentLaunch
import CagentStore
import CagentTrace

/// `cagent import tracee FILE`: a saved trace into the store.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a saved trace (Tracee JSON) into the store.",
        subcommands: [ImportTraceeCommand.self])
}

struct ImportTraceeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracee",
        abstract: "Import Tracee JSON lines (plain or gzip; either event shape) as a session.",
        discussion: """
        Unknown events are counted and skipped; a malformed line is reported with its number and \
        skipped. Use - for standard input.
        """)
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var store: StoreOptions
    @Argument(help: "The trace file (JSON lines, .gz accepted; - for standard input).") var file: String
    @Option(name: .long, help: "Session to import into (default: a new one; an existing id appends).") var session: String?
    @Option(name: .long, help: "The sanctioned resolver's address (V4,V6 for both of a gate's): DNS to any other resolver becomes a finding.")
    var gate: String?
    @Flag(name: .long, help: "Machine-readable summary.") var json = false
    @Option(name: .long, help: "Stop after this many decompressed bytes (K, M, G suffixes; default 4G).")
    var maxBytes: String = "4G"
    @Option(name: .long, help: "Stop after this many lines (default 20000000).")
    var maxLines: Int = 20_000_000

    func run() async throws {
        logging.bootstrap()
        guard let byteCap = Self.size(maxBytes), byteCap > 0 else {
            throw CagentError(stage: "import", "--max-bytes \(Safe.text(maxBytes)) is not a size", hint: "e.g. 4G, 512M, 1000000")
        }
        guard maxLines > 0 else { throw CagentError(stage: "import", "--max-lines must be positive") }
        // An import needs no root: under sudo the whole process becomes the invoking user, so the trace file
        // and the database are opened with that user's rights only.
        let identity = try store.becomeInvokingUser()
        let opened = try store.openForRecording()
        let info = SessionInfo(id: session ?? SessionID.new(), kind: "import", source: "tracee:\(file)", gate: gate)
        var rules = StoreOptions.findingRules
        rules.gateAddress = gate
        let recorder = try Recorder(store: opened, session: info, rules: rules)
        let summary: TraceeImporter.Summary
        do {
            summary = try TraceeImporter(limits: .init(maxBytes: byteCap, maxLines: maxLines), identity: identity)
                .importFile(file, into: recorder)
        } catch {
            // Keep what was read before the failure.
            try? recorder.close()
            throw error
        }
        try recorder.close()

        let errors = FileDescriptorStream.standardError
        for bad in summary.malformed {
            errors.write("cagent: import: \(Safe.text(file)): line \(bad.line) skipped: \(Safe.text(bad.reason))\n")
        }
        if summary.malformedCount > summary.malformed.count {
            errors.write("cagent: import: … and \(summary.malformedCount - summary.malformed.count) more malformed lines\n")
        }
        var out = Output()
        let unknown = summary.unknown.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        if json {
            out.line(JSON.object([
                ("session", .string(info.id)), ("lines", .int(Int64(summary.lines))), ("events", .int(Int64(summary.events))),
                ("unknown", .object(unknown.map { ($0.key, .int(Int64($0.value))) })),
                ("malformed", .array(summary.malformed.map { .object([("line", .int(Int64($0.line))), ("reason", .string($0.reason))]) })),
                ("malformed_count", .int(Int64(summary.malformedCount))),
            ]).text)
        } else {
            out.line("imported \(summary.events) events from \(summary.lines) lines into session \(Safe.text(info.id))")
            if !unknown.isEmpty {
                let shown = unknown.prefix(10).map { "\(Safe.text($0.key)) ×\($0.value)" }.joined(separator: ", ")
                out.line("  skipped unknown events: \(shown)\(unknown.count > 10 ? ", …" : "")")
            }
            if summary.malformedCount > 0 { out.line("  skipped \(summary.malformedCount) malformed lines (see above)") }
        }
        out.flush()
    }
}

extension ImportTraceeCommand {
    /// "4G", "512M", "64K" or a plain number of bytes; nil when it is none of these or overflows.
    static func size(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = digits.last?.uppercased().first, let factor = units[last] { unit = factor; digits = digits.dropLast() }
        guard let number = Int64(digits), number >= 0 else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }
}
