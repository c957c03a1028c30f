import ArgumentParser
import CagentCore
import CagentLaunch
import CagentStore

/// `cagent sessions`: every recorded session, oldest first.
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List recorded sessions.")
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var store: StoreOptions
    @Flag(name: .long, help: "Machine-readable output.") var json = false

    func run() async throws {
        logging.bootstrap()
        let sessions = try store.openForReading().sessions()
        var out = Output()
        if json {
            out.line(JSON.array(sessions.map(Self.json)).text)
        } else if sessions.isEmpty {
            out.line("no sessions recorded")
        } else {
            out.line("SESSION                  KIND      STARTED              EVENTS  DOMAINS  FLOWS  FILES  PROCS  FINDINGS  SOURCE")
            for session in sessions {
                out.line([
                    pad(Safe.text(session.id), 24), pad(Safe.text(session.kind), 9), pad(Safe.time(session.startedAt), 20),
                    pad("\(session.events)", 7, right: true), pad("\(session.domains)", 8, right: true),
                    pad("\(session.flows)", 6, right: true), pad("\(session.files)", 6, right: true),
                    pad("\(session.processes)", 6, right: true), pad("\(session.findings)", 9, right: true),
                    Safe.text(session.source.isEmpty ? Safe.argv(session.command) : session.source),
                ].joined(separator: " "))
            }
        }
        out.flush()
    }

    static func json(_ session: SessionSummary) -> JSON {
        .object([
            ("id", .string(session.id)), ("kind", .string(session.kind)), ("source", .string(session.source)),
            ("command", .array(session.command.map { .raw($0) })), ("gate", .optional(session.gate)),
            ("started_at", .int(session.startedAt)), ("ended_at", .optional(session.endedAt)),
            ("events", .int(session.events)), ("domains", .int(session.domains)), ("flows", .int(session.flows)),
            ("files", .int(session.files)), ("processes", .int(session.processes)), ("findings", .int(session.findings)),
            ("binds", .int(session.binds)),
        ])
    }
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let count = text.count
    if count >= width { return text }
    let fill = String(repeating: " ", count: width - count)
    return right ? fill + text : text + fill
}
