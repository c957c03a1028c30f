import CagentEvents
import GRDB

/// What `cagent sessions` lists.
package struct SessionSummary: Sendable {
    package var id: String
    package var kind: String
    package var source: String
    package var command: [RawText]
    package var gate: String?
    package var startedAt: Nanoseconds
    package var endedAt: Nanoseconds?
    package var events: Int64
    package var domains: Int64
    package var flows: Int64
    package var files: Int64
    package var processes: Int64
    package var findings: Int64
    /// Distinct sockets bound (bind(2)).
    package var binds: Int64
}

/// What `cagent report` shows, read from the store in one snapshot.
package struct SessionReport: Sendable {
    package struct Finding: Sendable {
        package var kind: FindingKind
        package var subject: RawText
        package var detail: String
        package var example: RawText
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
    }

    package struct Answer: Sendable, Hashable {
        package var name: RawText
        package var type: String
        package var data: RawText
        package var ttl: Int64
    }

    /// One question name, all its types, resolvers and programs together.
    package struct Domain: Sendable {
        package var name: RawText
        package var types: [String]
        package var queries: Int64
        package var responses: Int64
        package var rcodes: [String]
        package var programs: [RawText]
        package var resolvers: [String]
        package var sources: [String]
        package var answers: [Answer]
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
        /// Flows went to one of its addresses.
        package var connections: Int64
    }

    package struct DNSRow: Sendable {
        package var name: RawText
        package var type: String
        package var resolver: String
        package var source: String
        package var program: RawText
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
    }

    /// One row of the flows table: one (proto, address, port, verdict, program, result) as one source saw it.
    package struct FlowRow: Sendable {
        package var proto: String
        package var address: String
        package var port: Int64
        package var verdict: String
        package var program: RawText
        package var result: Int64
        package var name: RawText?
        package var nameSource: String?
        package var connections: Int64
        package var bytesOut: Int64
        package var bytesIn: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds

        package init(proto: String, address: String, port: Int64, verdict: String, program: RawText, result: Int64,
                    name: RawText?, nameSource: String?, connections: Int64, bytesOut: Int64 = 0, bytesIn: Int64 = 0,
                    firstSeen: Nanoseconds, lastSeen: Nanoseconds) {
            self.proto = proto; self.address = address; self.port = port; self.verdict = verdict; self.program = program
            self.result = result; self.name = name; self.nameSource = nameSource; self.connections = connections
            self.bytesOut = bytesOut; self.bytesIn = bytesIn; self.firstSeen = firstSeen; self.lastSeen = lastSeen
        }
    }

    /// One flow: a (proto, address, port), whoever saw it. The tracer's connects (which program, with what
    /// result) and the network's view (the firewall's verdict, the name from DNS or SNI) are one fact.
    package struct Flow: Sendable {
        package var proto: String
        package var address: String
        package var port: Int64
        /// The most severe verdict any source gave it: blocked, else allowed, else observed.
        package var verdict: String
        /// The programs the tracer saw connect, in the order first seen; empty when only the network saw it.
        package var programs: [RawText]
        /// The distinct connect results (0 or an errno), in the order first seen.
        package var results: [Int64]
        /// The destination's name, and how it was learned (`dns`, `sni`); nil for a direct-IP flow.
        package var name: RawText?
        package var nameSource: String?
        /// Connections, as the better-informed of the two views counted them (the tracer's connects, the
        /// network's new flows): the same connection seen twice counts once.
        package var connections: Int64
        package var bytesOut: Int64
        package var bytesIn: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds

        /// The first program, or empty.
        package var program: RawText { programs.first ?? RawText("") }
    }

    /// A socket bound by the sandbox.
    package struct Bind: Sendable {
        /// "ipv4" or "ipv6".
        package var family: String
        package var proto: String
        package var address: String
        package var port: Int64
        package var program: RawText
        package var result: Int64
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
    }

    package struct File: Sendable {
        package var path: RawText
        package var operation: String
        package var result: Int64
        package var program: RawText
        package var flags: Int64?
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
    }

    package struct FileGroup: Sendable {
        package var directory: RawText
        package var operation: String
        package var files: [File]
        package var count: Int64 { files.reduce(0) { $0.saturatingAdd($1.count) } }
    }

    package struct Process: Sendable {
        package var executable: RawText
        package var argv: [RawText]
        package var parentExecutable: RawText
        package var program: RawText
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
        package var lastExit: Int64?
        package var children: [Process]
    }

    package var session: SessionSummary
    package var findings: [Finding]
    package var domains: [Domain]
    package var directIPFlows: [Flow]
    package var flows: [Flow]
    package var binds: [Bind]
    package var gateBypass: [DNSRow]
    package var fileGroups: [FileGroup]
    package var secrets: [File]
    package var processTree: [Process]
}

extension Store {
    package func sessions() throws -> [SessionSummary] {
        try guardedRead { db in
            try Row.fetchAll(db, sql: Self.summarySQL + " ORDER BY s.started_at, s.id").map { try Self.summary($0) }
        }
    }

    /// Per-session counts; findings include the direct-IP flows the report derives (unnamed flows whose
    /// address no answer of the session gave, loopback and the gate excepted).
    static let summarySQL = """
        SELECT s.*,
          (SELECT count(DISTINCT name) FROM dns WHERE session_id = s.id) AS n_domains,
          (SELECT count(DISTINCT proto || ' ' || address || ' ' || port) FROM flows WHERE session_id = s.id) AS n_flows,
          (SELECT count(*) FROM binds WHERE session_id = s.id) AS n_binds,
          (SELECT count(*) FROM files WHERE session_id = s.id) AS n_files,
          (SELECT count(*) FROM processes WHERE session_id = s.id) AS n_processes,
          (SELECT count(*) FROM findings WHERE session_id = s.id)
            + (SELECT count(DISTINCT f.proto || ' ' || f.address || ' ' || f.port) FROM flows f
                 WHERE f.session_id = s.id AND f.name IS NULL
                 AND f.address NOT LIKE '127.%' AND f.address NOT LIKE '::ffff:127.%'
                 AND f.address NOT IN ('::1', '0.0.0.0', '::')
                 AND instr(',' || coalesce(s.gate, '') || ',', ',' || f.address || ',') = 0
                 AND NOT EXISTS (SELECT 1 FROM dns_answers a JOIN dns d ON d.id = a.dns_id
                                 WHERE d.session_id = s.id AND a.type IN ('A', 'AAAA') AND a.data = f.address
                                   AND a.first_seen <= f.first_seen)
                 AND NOT EXISTS (SELECT 1 FROM flows g WHERE g.session_id = f.session_id AND g.proto = f.proto
                                   AND g.address = f.address AND g.port = f.port AND g.name IS NOT NULL)) AS n_findings
        FROM sessions s
        """

    static func summary(_ row: Row) throws -> SessionSummary {
        let r = StoredRow(row, "sessions")
        return SessionSummary(
            id: try r.text("id"), kind: try r.text("kind"), source: try r.optionalText("source") ?? "",
            command: Store.split(try r.optionalRaw("command") ?? RawText("")), gate: try r.optionalText("gate"),
            startedAt: try r.integer("started_at"), endedAt: try r.optionalInteger("ended_at"), events: try r.count("events"),
            domains: try r.optionalInteger("n_domains") ?? 0, flows: try r.optionalInteger("n_flows") ?? 0,
            files: try r.optionalInteger("n_files") ?? 0, processes: try r.optionalInteger("n_processes") ?? 0,
            findings: try r.optionalInteger("n_findings") ?? 0, binds: try r.optionalInteger("n_binds") ?? 0)
    }

    /// The id of the most recent session, or nil when the store is empty.
    package func latestSessionID() throws -> String? {
        try guardedRead { db in
            try Row.fetchOne(db, sql: "SELECT id FROM sessions ORDER BY started_at DESC, rowid DESC LIMIT 1")
                .map { try StoredRow($0, "sessions").text("id") }
        }
    }

    package func report(session id: String, rules: FindingRules) throws -> SessionReport? {
        try guardedRead { db -> SessionReport? in
            guard let summaryRow = try Row.fetchOne(db, sql: Self.summarySQL + " WHERE s.id = ?", arguments: [id])
            else { return nil }
            let session = try Self.summary(summaryRow)

            let findings = try Row.fetchAll(db, sql: "SELECT * FROM findings WHERE session_id = ?", arguments: [id])
                .compactMap { row -> SessionReport.Finding? in
                    let r = StoredRow(row, "findings")
                    guard let kind = FindingKind(rawValue: try r.text("kind")) else { return nil }
                    return SessionReport.Finding(kind: kind, subject: try r.raw("subject"), detail: try r.text("detail"),
                                                 example: try r.raw("example"), count: try r.count("count"),
                                                 firstSeen: try r.integer("first_seen"), lastSeen: try r.integer("last_seen"))
                }


            // Addresses the session's DNS answers gave, to name flows recorded before their answer (never with an
            // answer that came after the flow).
            var addressNames = AddressNames()
            for row in try Row.fetchAll(db, sql: """
                SELECT a.data, d.name, a.first_seen, a.last_seen FROM dns_answers a JOIN dns d ON d.id = a.dns_id
                WHERE d.session_id = ? AND a.type IN ('A', 'AAAA') ORDER BY a.id
                """, arguments: [id]) {
                let r = StoredRow(row, "dns_answers")
                if let address = try r.optionalRaw("data")?.lossyString {
                    addressNames.add(address: address, name: try r.raw("name"), firstSeen: try r.integer("first_seen"),
                                     lastSeen: try r.integer("last_seen"))
                }
            }
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM flows WHERE session_id = ? ORDER BY first_seen, id",
                                        arguments: [id]).map { row in
                let r = StoredRow(row, "flows")
                return SessionReport.FlowRow(proto: try r.text("proto"), address: try r.text("address"), port: try r.integer("port"),
                                             verdict: try r.text("verdict"), program: try r.raw("program"),
                                             result: try r.integer("result"), name: try r.optionalRaw("name"),
                                             nameSource: try r.optionalText("name_source"), connections: try r.count("connections"),
                                             bytesOut: try r.count("bytes_out"), bytesIn: try r.count("bytes_in"),
                                             firstSeen: try r.integer("first_seen"), lastSeen: try r.integer("last_seen"))
            }
            var flows = Self.mergeFlows(rows)
            for index in flows.indices where flows[index].name == nil {
                if let name = addressNames.name(for: flows[index].address, at: flows[index].firstSeen) {
                    flows[index].name = name
                    flows[index].nameSource = FlowNameSource.dns.rawValue
                }
            }
            let binds = try Row.fetchAll(db, sql: "SELECT * FROM binds WHERE session_id = ? ORDER BY first_seen, id",
                                         arguments: [id]).map { row in
                let r = StoredRow(row, "binds")
                return SessionReport.Bind(family: try r.text("family"), proto: try r.text("proto"), address: try r.text("address"),
                                          port: try r.integer("port"), program: try r.raw("program"), result: try r.integer("result"),
                                          count: try r.count("count"), firstSeen: try r.integer("first_seen"),
                                          lastSeen: try r.integer("last_seen"))
            }
            let directIP = flows.filter {
                $0.name == nil && !FindingRules.isLoopbackOrUnspecified($0.address)
                    && !FindingRules(secretPaths: [], gateAddress: session.gate).isGate($0.address)
            }
            var connectionsByName: [RawText: Int64] = [:]
            for flow in flows {
                if let name = flow.name { connectionsByName[name] = (connectionsByName[name] ?? 0).saturatingAdd(flow.connections) }
            }

            // Domains: one entry per question name.
            var answersByDNS: [Int64: [SessionReport.Answer]] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT a.dns_id, a.name, a.type, a.data, a.ttl FROM dns_answers a JOIN dns d ON d.id = a.dns_id
                WHERE d.session_id = ? ORDER BY a.id
                """, arguments: [id]) {
                let r = StoredRow(row, "dns_answers")
                answersByDNS[try r.integer("dns_id"), default: []].append(
                    SessionReport.Answer(name: try r.raw("name"), type: try r.text("type"), data: try r.raw("data"),
                                         ttl: try r.integer("ttl")))
            }
            var domains: [RawText: SessionReport.Domain] = [:]
            var order: [RawText] = []
            var bypass: [SessionReport.DNSRow] = []
            for row in try Row.fetchAll(db, sql: "SELECT * FROM dns WHERE session_id = ? ORDER BY first_seen, id",
                                        arguments: [id]) {
                let r = StoredRow(row, "dns")
                let name = try r.raw("name")
                let type = try r.text("type")
                let program = try r.raw("program")
                let resolver = try r.text("resolver")
                let source = try r.text("source")
                let rcode = try r.text("rcode")
                let queries = try r.count("queries")
                let responses = try r.count("responses")
                let first: Nanoseconds = try r.integer("first_seen")
                let last: Nanoseconds = try r.integer("last_seen")
                let dnsID = try r.integer("id")
                var domain = domains[name] ?? {
                    order.append(name)
                    return SessionReport.Domain(name: name, types: [], queries: 0, responses: 0, rcodes: [], programs: [],
                                                resolvers: [], sources: [], answers: [], firstSeen: first, lastSeen: last,
                                                connections: connectionsByName[name] ?? 0)
                }()
                if !domain.types.contains(type) { domain.types.append(type) }
                if !rcode.isEmpty && !domain.rcodes.contains(rcode) { domain.rcodes.append(rcode) }
                if !program.isEmpty && !domain.programs.contains(program) { domain.programs.append(program) }
                if !domain.resolvers.contains(resolver) { domain.resolvers.append(resolver) }
                if !domain.sources.contains(source) { domain.sources.append(source) }
                domain.queries = domain.queries.saturatingAdd(queries)
                domain.responses = domain.responses.saturatingAdd(responses)
                domain.firstSeen = min(domain.firstSeen, first); domain.lastSeen = max(domain.lastSeen, last)
                for answer in answersByDNS[dnsID] ?? [] where !domain.answers.contains(answer) {
                    domain.answers.append(answer)
                }
                domains[name] = domain
                if session.gate != nil, source != DNSSource.gate.rawValue,
                   !FindingRules(secretPaths: [], gateAddress: session.gate).isGate(resolver) {
                    bypass.append(SessionReport.DNSRow(name: name, type: type, resolver: resolver, source: source,
                                                       program: program, count: queries.saturatingAdd(responses),
                                                       firstSeen: first, lastSeen: last))
                }
            }

            let files = try Row.fetchAll(db, sql: "SELECT * FROM files WHERE session_id = ? ORDER BY path, operation",
                                         arguments: [id]).map { row in
                let r = StoredRow(row, "files")
                return SessionReport.File(path: try r.raw("path"), operation: try r.text("operation"), result: try r.integer("result"),
                                          program: try r.raw("program"), flags: try r.optionalInteger("flags"),
                                          count: try r.count("count"), firstSeen: try r.integer("first_seen"),
                                          lastSeen: try r.integer("last_seen"))
            }
            var groups: [GroupKey: [SessionReport.File]] = [:]
            for file in files { groups[GroupKey(directory: Self.directory(file.path), operation: file.operation), default: []].append(file) }
            let fileGroups = groups.map { SessionReport.FileGroup(directory: $0.key.directory, operation: $0.key.operation, files: $0.value) }
                .sorted { ($0.directory, $0.operation) < ($1.directory, $1.operation) }
            let secrets = files.filter { rules.secret($0.path) != nil }

            let processes = try Row.fetchAll(db, sql: "SELECT * FROM processes WHERE session_id = ? ORDER BY first_seen, id",
                                             arguments: [id]).map { row in
                let r = StoredRow(row, "processes")
                return SessionReport.Process(executable: try r.raw("executable"), argv: Store.split(try r.raw("argv")),
                                             parentExecutable: try r.raw("parent_executable"), program: try r.raw("program"),
                                             count: try r.count("count"), firstSeen: try r.integer("first_seen"),
                                             lastSeen: try r.integer("last_seen"), lastExit: try r.optionalInteger("last_exit"),
                                             children: [])
            }

            var allFindings = findings
            for flow in directIP {
                let endpoint = flow.address.contains(":") ? "[\(flow.address)]:\(flow.port)" : "\(flow.address):\(flow.port)"
                allFindings.append(SessionReport.Finding(
                    kind: .directIP, subject: RawText(endpoint + "/" + flow.proto),
                    detail: "\(flow.proto) to an address no DNS answer or SNI named", example: flow.program,
                    count: flow.connections, firstSeen: flow.firstSeen, lastSeen: flow.lastSeen))
            }
            // Most frequent first without negating a count (-Int64.min traps).
            allFindings.sort { ($0.kind.rank, $1.count, $0.subject) < ($1.kind.rank, $0.count, $1.subject) }
            return SessionReport(
                session: session, findings: allFindings, domains: order.compactMap { domains[$0] },
                directIPFlows: directIP, flows: flows, binds: binds, gateBypass: bypass,
                fileGroups: fileGroups, secrets: secrets, processTree: Self.tree(processes))
        }
    }

    /// The flows table's rows as one entry per (proto, address, port), in the order first seen. A tracer's
    /// connect (program, result) and the network's record of the same flow (verdict, name from DNS or SNI) are
    /// rows of one flow: its verdict is the most severe, its name the best-founded (dns before sni before a
    /// name of unknown source), its programs and results the union, and its connections the larger of the
    /// two views' counts (rows with a program: connects; rows without: the network's flows).
    package static func mergeFlows(_ rows: [SessionReport.FlowRow]) -> [SessionReport.Flow] {
        struct Key: Hashable { var proto: String; var address: String; var port: Int64 }
        struct Merging {
            var flow: SessionReport.Flow
            var nameRank = Int.max
            var traced: Int64 = 0
            var network: Int64 = 0
        }
        func verdictRank(_ verdict: String) -> Int {
            switch verdict {
            case FlowVerdict.blocked.rawValue: return 2
            case FlowVerdict.allowed.rawValue: return 1
            default: return 0
            }
        }
        func nameRank(_ source: String?) -> Int {
            switch source {
            case FlowNameSource.dns.rawValue: return 0
            case FlowNameSource.sni.rawValue: return 1
            default: return 2
            }
        }
        var merged: [Key: Merging] = [:]
        var order: [Key] = []
        for row in rows.sorted(by: { $0.firstSeen < $1.firstSeen }) {
            let address = FlowObservation.canonicalAddress(row.address)
            let key = Key(proto: row.proto, address: address, port: row.port)
            var entry = merged[key] ?? {
                order.append(key)
                return Merging(flow: SessionReport.Flow(
                    proto: row.proto, address: address, port: row.port, verdict: row.verdict, programs: [],
                    results: [], name: nil, nameSource: nil, connections: 0, bytesOut: 0, bytesIn: 0,
                    firstSeen: row.firstSeen, lastSeen: row.lastSeen))
            }()
            if verdictRank(row.verdict) > verdictRank(entry.flow.verdict) { entry.flow.verdict = row.verdict }
            if !row.program.isEmpty && !entry.flow.programs.contains(row.program) { entry.flow.programs.append(row.program) }
            if !entry.flow.results.contains(row.result) { entry.flow.results.append(row.result) }
            if let name = row.name, nameRank(row.nameSource) < entry.nameRank {
                entry.flow.name = name
                entry.flow.nameSource = row.nameSource
                entry.nameRank = nameRank(row.nameSource)
            }
            if row.program.isEmpty { entry.network = entry.network.saturatingAdd(row.connections) }
            else { entry.traced = entry.traced.saturatingAdd(row.connections) }
            entry.flow.connections = max(entry.traced, entry.network)
            entry.flow.bytesOut = entry.flow.bytesOut.saturatingAdd(row.bytesOut)
            entry.flow.bytesIn = entry.flow.bytesIn.saturatingAdd(row.bytesIn)
            entry.flow.firstSeen = min(entry.flow.firstSeen, row.firstSeen)
            entry.flow.lastSeen = max(entry.flow.lastSeen, row.lastSeen)
            merged[key] = entry
        }
        return order.compactMap { merged[$0]?.flow }
    }

    private struct GroupKey: Hashable {
        var directory: RawText
        var operation: String
    }

    static func directory(_ path: RawText) -> RawText {
        guard let slash = path.bytes.lastIndex(of: UInt8(ascii: "/")) else { return RawText(".") }
        return slash == 0 ? RawText("/") : RawText(bytes: Array(path.bytes[..<slash]))
    }

    /// Programs arranged under the program that started them (by executable; a program whose parent was
    /// not seen is a root). Each executable appears under each parent at most once per distinct argv.
    static func tree(_ processes: [SessionReport.Process]) -> [SessionReport.Process] {
        var byParent: [RawText: [SessionReport.Process]] = [:]
        let executables = Set(processes.map(\.executable))
        var roots: [SessionReport.Process] = []
        for process in processes {
            if process.parentExecutable.isEmpty || !executables.contains(process.parentExecutable) {
                roots.append(process)
            } else {
                byParent[process.parentExecutable, default: []].append(process)
            }
        }
        var expanded: Set<RawText> = []
        func build(_ node: SessionReport.Process, depth: Int) -> SessionReport.Process {
            var node = node
            // Each executable's children are attached once (a shell running shells would otherwise recurse).
            guard depth < 32, !expanded.contains(node.executable) else { return node }
            expanded.insert(node.executable)
            node.children = (byParent[node.executable] ?? []).map { build($0, depth: depth + 1) }
            return node
        }
        var result = roots.map { build($0, depth: 0) }
        // Cycles with no root (a parent seen only as a child of its own children): show them flat.
        for (parent, children) in byParent where !expanded.contains(parent) {
            for child in children where !expanded.contains(child.executable) { result.append(build(child, depth: 0)) }
        }
        return result
    }
}

/// The session's DNS answers by address, to name a flow stored without a name: the answer most recently seen at
/// or before the flow's first connect, never one first seen after it (a later lookup of the same address, say a
/// wildcard's, did not lead to the flow).
package struct AddressNames: Sendable {
    struct Answer: Sendable { var name: RawText; var firstSeen: Nanoseconds; var lastSeen: Nanoseconds }
    private var byAddress: [String: [Answer]] = [:]

    package init() {}

    package mutating func add(address: String, name: RawText, firstSeen: Nanoseconds, lastSeen: Nanoseconds) {
        byAddress[FlowObservation.canonicalAddress(address.lowercased()), default: []]
            .append(Answer(name: name, firstSeen: firstSeen, lastSeen: lastSeen))
    }

    /// Of the answers first seen by `time`, the one seen latest by then (the earliest added on a tie).
    package func name(for address: String, at time: Nanoseconds) -> RawText? {
        var best: (name: RawText, seen: Nanoseconds)?
        for answer in byAddress[FlowObservation.canonicalAddress(address.lowercased())] ?? [] where answer.firstSeen <= time {
            let seen = min(answer.lastSeen, time)
            if best == nil || seen > best!.seen { best = (answer.name, seen) }
        }
        return best?.name
    }
}
