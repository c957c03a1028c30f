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
        Unknown events are counted and skipped; a malformed line is reported with its number and skipped.
        Use - for standard input.
        """)
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var store: StoreOptions
    @Argument(help: "The trace file (JSON lines, .gz accepted; - for standard input).") var file: String
    @Option(name: .long, help: "Session to import into (default: a new one; an existing id appends).") var session: String?
    @Option(name: .long, help: "The sanctioned resolver's address: DNS to any other resolver becomes a finding.")
    var gate: String?
    @Flag(name: .long, help: "Machine-readable summary.") var json = false

    func run() async throws {
        logging.bootstrap()
        let opened = try store.open(create: true)
        let info = SessionInfo(id: session ?? Store.newSessionID(), kind: "import", source: "tracee:\(file)", gate: gate)
        var rules = StoreOptions.findingRules
        rules.gateAddress = gate
        let recorder = try Recorder(store: opened, session: info, rules: rules)
        let summary: TraceeImporter.Summary
        do {
            summary = try TraceeImporter().importFile(file, into: recorder)
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
