import CagentCore
import CagentEvents
import CagentStore
import GRDB

// The one place that knows both the store and the proposer's input: reads sessions into `Observations`.
// Reads are defensive: a value of an unexpected type or NULL skips its row (or counts as 0), never traps —
// the database may come from another version of cagent, or have been edited.

extension Observations {
    /// The most recent session of kind `learn`, or nil when there is none.
    package static func latestLearnSession(in store: Store) throws -> String? {
        try store.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT id FROM sessions WHERE kind = 'learn' ORDER BY started_at DESC, rowid DESC LIMIT 1")
            return row.flatMap { text($0, "id") }
        }
    }

    /// The most recent session of `kind` (`learn`, `enforce`), or nil when there is none.
    package static func latestSession(kind: String, in store: Store) throws -> String? {
        try store.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT id FROM sessions WHERE kind = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
                                       arguments: [kind])
            return row.flatMap { text($0, "id") }
        }
    }

    /// The sessions' observations, merged. Throws when a session does not exist.
    package static func load(from store: Store, sessions ids: [String]) throws -> Observations {
        try store.read { db in
            var observations = Observations(sessions: ids)
            var learnSessions: Set<String> = []
            var enforceSessions: Set<String> = []
            for id in ids {
                guard let row = try Row.fetchOne(db, sql: "SELECT kind, gate FROM sessions WHERE id = ?", arguments: [id]) else {
                    throw CagentError(stage: "propose", "no session \(TerminalEscape.escape(id)) in \(store.path)",
                                      hint: "cagent sessions lists them")
                }
                if text(row, "kind") == "learn" { learnSessions.insert(id) }
                if text(row, "kind") == "enforce" { enforceSessions.insert(id) }
                if let gate = text(row, "gate"), !gate.isEmpty, !observations.gates.contains(gate) { observations.gates.append(gate) }
            }
            let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
            let arguments = StatementArguments(ids)

            // DNS: per question name (types, resolvers, sources and programs summed); answers name the flows
            // recorded without a name (an answer that came after the connect).
            var lookups: [[UInt8]: Observations.Lookup] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT name, rcode, program, queries, responses, first_seen, last_seen FROM dns
                WHERE session_id IN (\(placeholders)) ORDER BY id
                """, arguments: arguments) {
                guard let name = raw(row, "name"), let evidence = evidence(row, count: max(int(row, "queries"), int(row, "responses"))) else { continue }
                var lookup = lookups[name] ?? Observations.Lookup(name: name, evidence: .none)
                if let rcode = text(row, "rcode"), !rcode.isEmpty, !lookup.rcodes.contains(rcode) { lookup.rcodes.append(rcode) }
                lookup.evidence = lookup.evidence.merged(with: evidence)
                lookups[name] = lookup
            }
            // Names the gate refused in enforce sessions (not in the profile): A/AAAA rows with rcode REFUSED.
            if !enforceSessions.isEmpty {
                let enforced = Array(enforceSessions).sorted()
                for row in try Row.fetchAll(db, sql: """
                    SELECT name, program, queries, first_seen, last_seen FROM dns WHERE rcode = 'REFUSED' AND type IN ('A', 'AAAA')
                      AND session_id IN (\(Array(repeating: "?", count: enforced.count).joined(separator: ", "))) ORDER BY id
                    """, arguments: StatementArguments(enforced)) {
                    guard let name = raw(row, "name"), let evidence = evidence(row, count: int(row, "queries")) else { continue }
                    observations.denials.append(Observations.Denial(name: name, proto: "dns", evidence: evidence))
                }
            }
            observations.lookups = lookups.values.sorted { $0.name.lexicographicallyPrecedes($1.name) }
            // Answers name a flow stored without one, never with a lookup made after the flow (AddressNames).
            var addressNames = AddressNames()
            for row in try Row.fetchAll(db, sql: """
                SELECT a.data, d.name, a.first_seen, a.last_seen FROM dns_answers a JOIN dns d ON d.id = a.dns_id
                WHERE d.session_id IN (\(placeholders)) AND a.type IN ('A', 'AAAA') ORDER BY a.id
                """, arguments: arguments) {
                guard let address = raw(row, "data").flatMap({ String(validating: $0, as: UTF8.self) }),
                      let name = raw(row, "name") else { continue }
                addressNames.add(address: address, name: RawText(bytes: name), firstSeen: int(row, "first_seen"),
                                 lastSeen: int(row, "last_seen"))
            }

            // Flows: one per (proto, address, port), every source's rows merged (as the report does).
            struct FlowKey: Hashable { var proto: String; var address: String; var port: UInt16 }
            struct Merging { var flow: Observations.Flow; var nameRank = Int.max; var network = false; var learn = false
                            var traced: Int64 = 0; var logged: Int64 = 0 }
            var flows: [FlowKey: Merging] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT session_id, proto, address, port, verdict, program, result, name, name_source, bytes_out, bytes_in,
                  packets, connections, first_seen, last_seen FROM flows WHERE session_id IN (\(placeholders)) ORDER BY id
                """, arguments: arguments) {
                guard let proto = text(row, "proto"), let address = text(row, "address"),
                      let port = optionalInt(row, "port").flatMap({ UInt16(exactly: $0) }),
                      let evidence = evidence(row, count: int(row, "connections")) else { continue }
                let session = text(row, "session_id") ?? ""
                if enforceSessions.contains(session) && text(row, "verdict") == "blocked" {
                    // What enforce denied: a denial to propose from, not a flow seen while learning.
                    observations.denials.append(Observations.Denial(
                        name: raw(row, "name"), address: FlowObservation.canonicalAddress(address.lowercased()),
                        proto: proto, port: port, evidence: evidence))
                    continue
                }
                let key = FlowKey(proto: proto, address: FlowObservation.canonicalAddress(address.lowercased()), port: port)
                var entry = flows[key] ?? Merging(flow: Observations.Flow(
                    proto: proto, address: key.address, port: port, name: nil, verdict: "observed", results: [],
                    evidence: .none))
                let verdict = text(row, "verdict") ?? "observed"
                let ranks = ["observed": 0, "allowed": 1, "blocked": 2]
                if ranks[verdict, default: 0] > ranks[entry.flow.verdict, default: 0] { entry.flow.verdict = verdict }
                let result = int(row, "result")
                if !entry.flow.results.contains(result) { entry.flow.results.append(result) }
                if let name = raw(row, "name") {
                    let source = text(row, "name_source")
                    let rank = source == "dns" ? 0 : source == "sni" ? 1 : 2
                    if rank < entry.nameRank { entry.flow.name = name; entry.flow.nameSource = source; entry.nameRank = rank }
                }
                let program = raw(row, "program") ?? []
                // Traffic: a row of the network's own (no program), or packets/bytes counted on any row.
                if program.isEmpty || int(row, "packets") > 0 || int(row, "bytes_out") > 0 || int(row, "bytes_in") > 0 {
                    entry.network = true
                }
                if let session = text(row, "session_id"), learnSessions.contains(session) { entry.learn = true }
                // Connections: the tracer's connects and the network's flows are two views of the same ones.
                if program.isEmpty { entry.logged &+= evidence.count } else { entry.traced &+= evidence.count }
                entry.flow.evidence = entry.flow.evidence.merged(with: evidence)
                entry.flow.evidence.count = max(entry.traced, entry.logged)
                flows[key] = entry
            }
            observations.flows = flows.values.map { entry in
                var flow = entry.flow
                if flow.name == nil, let name = addressNames.name(for: flow.address, at: entry.flow.evidence.firstSeen) {
                    flow.name = name.bytes; flow.nameSource = "dns"
                }
                flow.results.sort()
                // Learn mode observes the network: a flow it never saw carried no packet.
                flow.trafficSeen = entry.network ? true : (entry.learn ? false : nil)
                return flow
            }.sorted { ($0.proto, $0.address, $0.port) < ($1.proto, $1.address, $1.port) }

            // Files: per (path, operation, result), programs joined, open flags OR'ed.
            struct FileKey: Hashable { var path: [UInt8]; var operation: String; var result: Int64 }
            var files: [FileKey: Observations.File] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT path, operation, result, program, flags, count, first_seen, last_seen FROM files
                WHERE session_id IN (\(placeholders))
                """, arguments: arguments) {
                guard let path = raw(row, "path"), let operation = text(row, "operation"),
                      let evidence = evidence(row, count: int(row, "count")) else { continue }
                let key = FileKey(path: path, operation: operation, result: int(row, "result"))
                var file = files[key] ?? Observations.File(path: path, operation: operation, result: key.result, evidence: .none)
                if let flags = optionalInt(row, "flags") { file.flags = (file.flags ?? 0) | flags }
                file.evidence = file.evidence.merged(with: evidence)
                files[key] = file
            }
            observations.files = files.values.sorted {
                $0.path != $1.path ? $0.path.lexicographicallyPrecedes($1.path)
                    : ($0.operation, $0.result) < ($1.operation, $1.result)
            }

            var execs: [[UInt8]: Observations.Exec] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT executable, program, count, first_seen, last_seen FROM processes WHERE session_id IN (\(placeholders))
                """, arguments: arguments) {
                guard let executable = raw(row, "executable"), let evidence = evidence(row, count: int(row, "count")) else { continue }
                var exec = execs[executable] ?? Observations.Exec(executable: executable, evidence: .none)
                exec.evidence = exec.evidence.merged(with: evidence)
                execs[executable] = exec
            }
            observations.execs = execs.values.sorted { $0.executable.lexicographicallyPrecedes($1.executable) }

            var findings: [String: Observations.Finding] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT kind, subject, detail, example, count, first_seen, last_seen FROM findings
                WHERE session_id IN (\(placeholders)) ORDER BY id
                """, arguments: arguments) {
                guard let kind = text(row, "kind"), let subject = raw(row, "subject"),
                      let evidence = evidence(row, count: int(row, "count"), program: []) else { continue }
                let key = kind + "\u{0}" + String(decoding: subject, as: UTF8.self)
                var finding = findings[key] ?? Observations.Finding(kind: kind, subject: subject, detail: text(row, "detail") ?? "",
                                                                     example: raw(row, "example") ?? [], evidence: .none)
                finding.evidence = finding.evidence.merged(with: evidence)
                findings[key] = finding
            }
            observations.findings = findings.keys.sorted().map { findings[$0]! }
            return observations
        }
    }

    // MARK: defensive column access

    private static func value(_ row: Row, _ column: String) -> DatabaseValue {
        row.hasColumn(column) ? row[column] as DatabaseValue : .null
    }

    static func text(_ row: Row, _ column: String) -> String? {
        raw(row, column).map { String(decoding: $0, as: UTF8.self) }
    }

    /// TEXT or BLOB as bytes (the store keeps invalid UTF-8 as a BLOB); numbers as their decimal text.
    static func raw(_ row: Row, _ column: String) -> [UInt8]? {
        RawText.fromDatabaseValue(value(row, column))?.bytes
    }

    static func optionalInt(_ row: Row, _ column: String) -> Int64? {
        switch value(row, column).storage {
        case .int64(let number): return number
        case .double(let number): return number.isFinite && abs(number) < 9e18 ? Int64(number) : nil
        default: return nil
        }
    }

    static func int(_ row: Row, _ column: String) -> Int64 { optionalInt(row, column) ?? 0 }

    /// count, first_seen, last_seen and the row's program; nil when the times are missing.
    private static func evidence(_ row: Row, count: Int64, program: [UInt8]? = nil) -> Evidence? {
        guard let first = optionalInt(row, "first_seen"), let last = optionalInt(row, "last_seen") else { return nil }
        let name = program ?? raw(row, "program") ?? []
        let programs = name.isEmpty ? [] : [TerminalEscape.escape(bytes: name)]
        return Evidence(count: max(0, count), firstSeen: first, lastSeen: last, programs: programs)
    }
}
