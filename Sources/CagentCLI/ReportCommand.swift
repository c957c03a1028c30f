import ArgumentParser
import CagentCore
import CagentLaunch
import CagentEvents
import CagentStore

/// `cagent report [SESSION]`: what a session did, findings first.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Show what a session did: findings, domains, flows, files, processes.",
        usage: "cagent report [SESSION] [--json] [--limit N] [--db PATH] [--user UID]")
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var store: StoreOptions
    @Argument(help: "The session (default: the most recent).") var session: String?
    @Flag(name: .long, help: "Machine-readable output.") var json = false
    @Option(name: .long, help: "Entries shown per section in the text report (0: all).") var limit = 50

    func run() async throws {
        logging.bootstrap()
        let opened = try store.openForReading()
        guard let id = try session ?? opened.latestSessionID() else {
            throw CagentError(stage: "report", "no sessions recorded in \(opened.path)",
                              hint: "record one with cagent learn or cagent import tracee FILE")
        }
        guard let report = try opened.report(session: id, rules: StoreOptions.findingRules) else {
            throw CagentError(stage: "report", "no session \(Safe.text(id)) in \(opened.path)",
                              hint: "cagent sessions lists them")
        }
        var out = Output()
        if json { out.line(ReportRenderer.json(report).text) } else { ReportRenderer.text(report, limit: limit, into: &out) }
        out.flush()
    }
}

/// One line of an enforce session's denials.
private enum Denial {
    case refused(SessionReport.Domain)
    case blocked(SessionReport.Flow)
}

/// Renders a SessionReport. Every string that came from a sandbox goes through `Safe`.
enum ReportRenderer {
    static func text(_ report: SessionReport, limit: Int, into out: inout Output) {
        let s = report.session
        out.line("Session \(Safe.text(s.id)) (\(Safe.text(s.kind)))" + (s.source.isEmpty ? "" : " from \(Safe.text(s.source))"))
        if !s.command.isEmpty { out.line("  command: \(Safe.argv(s.command))") }
        out.line("  started \(Safe.time(s.startedAt)), ended \(Safe.time(s.endedAt)), \(s.events) events"
                 + (s.gate.map { ", gate \(Safe.text($0))" } ?? ""))

        func section<T>(_ title: String, _ items: [T], empty: String = "none", _ body: (T, inout Output) -> Void) {
            out.line()
            out.line("\(title) (\(items.count))")
            if items.isEmpty { out.line("  \(empty)"); return }
            let shown = limit > 0 ? items.prefix(limit) : items[...]
            for item in shown { body(item, &out) }
            if shown.count < items.count { out.line("  … \(items.count - shown.count) more (--limit 0 or --json shows all)") }
        }

        if s.kind == "enforce" {
            // What the gate refused and the firewall blocked: what `cagent profile propose --update` proposes from.
            let refused = report.domains.filter { $0.rcodes.contains("REFUSED") }
            let blocked = report.flows.filter { $0.verdict == "blocked" }
            section("Denials", refused.map { Denial.refused($0) } + blocked.map { Denial.blocked($0) }) { denial, out in
                switch denial {
                case .refused(let domain):
                    let types = domain.types.map(Safe.text).joined(separator: ",")
                    out.line("  refused DNS \(Safe.text(domain.name))" + (types == "A" || types.isEmpty ? "" : " \(types)")
                             + " ×\(domain.queries)  [\(Safe.time(domain.firstSeen)) .. \(Safe.time(domain.lastSeen))]")
                case .blocked(let flow):
                    out.line("  blocked " + flowLine(flow))
                }
            }
            if !refused.isEmpty || !blocked.isEmpty {
                out.line("  allow: cagent profile propose --update PROFILE --session \(Safe.text(s.id))")
            }
        }
        section("Findings", report.findings) { finding, out in
            out.line("  ! \(finding.kind.rawValue)  \(Safe.text(finding.subject))  \(Safe.text(finding.detail))  ×\(finding.count)")
            out.line("      e.g. \(Safe.text(finding.example))  [\(Safe.time(finding.firstSeen)) .. \(Safe.time(finding.lastSeen))]")
        }
        section("Domains", report.domains) { domain, out in
            var line = "  \(Safe.text(domain.name))  \(domain.types.map(Safe.text).joined(separator: ","))"
            line += "  queries \(domain.queries), responses \(domain.responses)"
            if !domain.rcodes.isEmpty { line += " \(domain.rcodes.map(Safe.text).joined(separator: ","))" }
            if domain.connections > 0 { line += ", connected \(domain.connections)×" }
            out.line(line)
            var detail = "      by \(domain.programs.isEmpty ? "-" : domain.programs.map(Safe.text).joined(separator: ", "))"
            detail += " via \(domain.resolvers.map(Safe.text).joined(separator: ", ")) (\(domain.sources.map(Safe.text).joined(separator: ",")))"
            detail += "  [\(Safe.time(domain.firstSeen)) .. \(Safe.time(domain.lastSeen))]"
            out.line(detail)
            if !domain.answers.isEmpty {
                let answers = domain.answers.prefix(8).map {
                    "\(Safe.text($0.name)) \(Safe.text($0.type)) \(Safe.text($0.data)) ttl \($0.ttl)"
                }
                out.line("      -> " + answers.joined(separator: "; ") + (domain.answers.count > 8 ? "; …" : ""))
            }
        }
        section("Direct-IP flows", report.directIPFlows) { flow, out in out.line("  " + flowLine(flow)) }
        if report.session.gate == nil {
            out.line()
            out.line("DNS that bypassed the gate: no gate in this session (import with --gate ADDRESS to check)")
        } else {
            section("DNS that bypassed the gate", report.gateBypass) { row, out in
                out.line("  \(Safe.text(row.name)) \(Safe.text(row.type)) to \(Safe.text(row.resolver)) by \(Safe.text(row.program))"
                         + " (\(Safe.text(row.source))) ×\(row.count)  [\(Safe.time(row.firstSeen)) .. \(Safe.time(row.lastSeen))]")
            }
        }
        section("Flows", report.flows) { flow, out in out.line("  " + flowLine(flow)) }
        section("Binds", report.binds) { bind, out in out.line("  " + bindLine(bind)) }
        section("Secrets touched", report.secrets) { file, out in out.line("  " + fileLine(file, full: true)) }
        section("Files by directory and operation", report.fileGroups) { group, out in
            out.line("  \(Safe.text(group.directory))/  \(Safe.text(group.operation))  (\(group.files.count) paths, \(group.count) events)")
            let names = group.files.prefix(12).map { fileLine($0, full: false) }
            out.line("      " + names.joined(separator: ", ") + (group.files.count > 12 ? ", …" : ""))
        }
        out.line()
        out.line("Processes (\(report.session.processes))")
        if report.processTree.isEmpty { out.line("  none") }
        var printed = 0
        func node(_ process: SessionReport.Process, depth: Int) {
            printed += 1
            if limit > 0 && printed > (limit > Int.max / 4 ? Int.max : limit * 4) { return }
            let indent = String(repeating: "  ", count: depth + 1)
            var line = "\(indent)\(Safe.text(process.executable))  \(Safe.argv(process.argv))"
            if process.count > 1 { line += "  ×\(process.count)" }
            if let code = process.lastExit { line += "  exit \(code)" }
            out.line(line)
            for child in process.children { node(child, depth: depth + 1) }
        }
        for root in report.processTree { node(root, depth: 0) }
        if limit > 0 && printed > (limit > Int.max / 4 ? Int.max : limit * 4) { out.line("  … (--limit 0 or --json shows all)") }
    }

    /// `tcp 203.0.113.10:443 (www.example.test, dns) observed by curl ×2 ECONNREFUSED [first .. last]`: one
    /// line per flow, whatever number of sources saw it.
    static func flowLine(_ flow: SessionReport.Flow) -> String {
        var line = "\(Safe.text(flow.proto)) \(endpoint(flow.address, flow.port))"
        if let name = flow.name { line += " (\(Safe.text(name)), \(Safe.text(flow.nameSource ?? "?")))" }
        line += " \(Safe.text(flow.verdict))"
        if !flow.programs.isEmpty { line += " by \(flow.programs.map(Safe.text).joined(separator: ", "))" }
        line += " ×\(flow.connections)"
        let errors = flow.results.filter { $0 != 0 }.map { Errno.name(Int32(truncatingIfNeeded: $0)) }
        if !errors.isEmpty { line += " " + errors.joined(separator: ",") }
        if flow.bytesOut + flow.bytesIn > 0 { line += " out \(flow.bytesOut) B in \(flow.bytesIn) B" }
        return line + "  [\(Safe.time(flow.firstSeen)) .. \(Safe.time(flow.lastSeen))]"
    }

    /// `tcp 127.0.0.1:8080 (ipv4) by python3 ×1 [first .. last]`.
    static func bindLine(_ bind: SessionReport.Bind) -> String {
        var line = "\(Safe.text(bind.proto)) \(endpoint(bind.address, bind.port)) (\(Safe.text(bind.family))) by \(Safe.text(bind.program))"
        line += " ×\(bind.count)"
        if bind.result != 0 { line += " \(Errno.name(Int32(truncatingIfNeeded: bind.result)))" }
        return line + "  [\(Safe.time(bind.firstSeen)) .. \(Safe.time(bind.lastSeen))]"
    }

    static func endpoint(_ address: String, _ port: Int64) -> String {
        (address.contains(":") ? "[\(Safe.text(address))]" : Safe.text(address)) + ":\(port)"
    }

    static func fileLine(_ file: SessionReport.File, full: Bool) -> String {
        let name: String
        if full {
            name = Safe.text(file.path)
        } else {
            let bytes = file.path.bytes
            let base = bytes.lastIndex(of: UInt8(ascii: "/")).map { Array(bytes[($0 + 1)...]) } ?? bytes
            name = Safe.text(RawText(bytes: base))
        }
        var line = name
        if file.count > 1 { line += " ×\(file.count)" }
        if file.result != 0 { line += " [\(Errno.name(Int32(truncatingIfNeeded: file.result)))]" }
        if full {
            line += " \(Safe.text(file.operation)) by \(Safe.text(file.program))"
            if let flags = file.flags { line += " \(OpenFlags.names(Int32(truncatingIfNeeded: flags)))" }
        }
        return line
    }

    static func json(_ report: SessionReport) -> JSON {
        func flow(_ flow: SessionReport.Flow) -> JSON {
            .object([
                ("proto", .string(flow.proto)), ("address", .string(flow.address)), ("port", .int(flow.port)),
                ("name", .optional(flow.name)), ("name_source", .optional(flow.nameSource)),
                ("verdict", .string(flow.verdict)), ("programs", .array(flow.programs.map { .raw($0) })),
                ("results", .array(flow.results.map { .int($0) })),
                ("errors", .array(flow.results.filter { $0 != 0 }.map { .string(Errno.name(Int32(truncatingIfNeeded: $0))) })),
                ("connections", .int(flow.connections)), ("bytes_out", .int(flow.bytesOut)), ("bytes_in", .int(flow.bytesIn)),
                ("first_seen", .int(flow.firstSeen)), ("last_seen", .int(flow.lastSeen)),
            ])
        }
        func file(_ file: SessionReport.File) -> JSON {
            .object([
                ("path", .raw(file.path)), ("operation", .string(file.operation)), ("result", .int(file.result)),
                ("error", file.result == 0 ? .null : .string(Errno.name(Int32(truncatingIfNeeded: file.result)))),
                ("program", .raw(file.program)), ("flags", .optional(file.flags)),
                ("flag_names", file.flags.map { .string(OpenFlags.names(Int32(truncatingIfNeeded: $0))) } ?? .null),
                ("count", .int(file.count)), ("first_seen", .int(file.firstSeen)), ("last_seen", .int(file.lastSeen)),
            ])
        }
        func processNode(_ node: SessionReport.Process) -> JSON {
            .object([
                ("executable", .raw(node.executable)), ("argv", .array(node.argv.map { .raw($0) })),
                ("parent_executable", .raw(node.parentExecutable)), ("program", .raw(node.program)),
                ("count", .int(node.count)), ("first_seen", .int(node.firstSeen)), ("last_seen", .int(node.lastSeen)),
                ("last_exit", .optional(node.lastExit)), ("children", .array(node.children.map(processNode))),
            ])
        }
        return .object([
            ("session", SessionsCommand.json(report.session)),
            ("findings", .array(report.findings.map {
                .object([("kind", .string($0.kind.rawValue)), ("subject", .raw($0.subject)), ("detail", .string($0.detail)),
                         ("example", .raw($0.example)), ("count", .int($0.count)),
                         ("first_seen", .int($0.firstSeen)), ("last_seen", .int($0.lastSeen))])
            })),
            ("domains", .array(report.domains.map { domain in
                .object([
                    ("name", .raw(domain.name)), ("types", .array(domain.types.map { .string($0) })),
                    ("queries", .int(domain.queries)), ("responses", .int(domain.responses)),
                    ("rcodes", .array(domain.rcodes.map { .string($0) })), ("programs", .array(domain.programs.map { .raw($0) })),
                    ("resolvers", .array(domain.resolvers.map { .string($0) })), ("sources", .array(domain.sources.map { .string($0) })),
                    ("answers", .array(domain.answers.map {
                        .object([("name", .raw($0.name)), ("type", .string($0.type)), ("data", .raw($0.data)), ("ttl", .int($0.ttl))])
                    })),
                    ("connections", .int(domain.connections)),
                    ("first_seen", .int(domain.firstSeen)), ("last_seen", .int(domain.lastSeen)),
                ])
            })),
            ("direct_ip_flows", .array(report.directIPFlows.map(flow))),
            ("gate_bypass", report.session.gate == nil ? .null : .array(report.gateBypass.map {
                .object([("name", .raw($0.name)), ("type", .string($0.type)), ("resolver", .string($0.resolver)),
                         ("source", .string($0.source)), ("program", .raw($0.program)), ("count", .int($0.count)),
                         ("first_seen", .int($0.firstSeen)), ("last_seen", .int($0.lastSeen))])
            })),
            ("flows", .array(report.flows.map(flow))),
            ("binds", .array(report.binds.map { bind in
                .object([
                    ("family", .string(bind.family)), ("proto", .string(bind.proto)), ("address", .string(bind.address)),
                    ("port", .int(bind.port)), ("program", .raw(bind.program)), ("result", .int(bind.result)),
                    ("error", bind.result == 0 ? .null : .string(Errno.name(Int32(truncatingIfNeeded: bind.result)))),
                    ("count", .int(bind.count)), ("first_seen", .int(bind.firstSeen)), ("last_seen", .int(bind.lastSeen)),
                ])
            })),
            ("secrets", .array(report.secrets.map(file))),
            ("files", .array(report.fileGroups.map { group in
                .object([("directory", .raw(group.directory)), ("operation", .string(group.operation)),
                         ("files", .array(group.files.map(file)))])
            })),
            ("processes", .array(report.processTree.map(processNode))),
        ])
    }
}
