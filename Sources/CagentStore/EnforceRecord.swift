import CagentCore
import CagentEvents
import Foundation
import GRDB

/// An enforce session as the front recorded it (its JSON record, docs/store.md "Enforce sessions"): what the
/// DNS gate and the firewall decided, one entry per distinct (verdict, name or address, port, proto) with its
/// count. Enforce sees no programs (nothing traces the agent): rows carry none.
package struct EnforceRecord: Sendable {
    package struct Entry: Sendable, Equatable {
        /// "allowed", "refused", "blocked" or "failed" (an upstream DNS failure: not a refusal).
        package var verdict: String
        /// The name (DNS) or the address (blocked packets), as the reporter wrote it.
        package var subject: String
        package var name: String?
        package var port: UInt16?
        package var proto: String
        package var reason: String?
        package var count: Int64
        package var firstSeen: Nanoseconds
        package var lastSeen: Nanoseconds
        /// A profile entry could allow it (a name not in the profile, a blocked packet).
        package var allowable: Bool

        package init(verdict: String, subject: String, name: String? = nil, port: UInt16? = nil, proto: String,
                    reason: String? = nil, count: Int64, firstSeen: Nanoseconds, lastSeen: Nanoseconds, allowable: Bool) {
            self.verdict = verdict; self.subject = subject; self.name = name; self.port = port; self.proto = proto
            self.reason = reason; self.count = count; self.firstSeen = firstSeen; self.lastSeen = lastSeen
            self.allowable = allowable
        }
    }

    package var session: SessionInfo
    package var endedAt: Nanoseconds
    package var entries: [Entry]

    package init(session: SessionInfo, endedAt: Nanoseconds, entries: [Entry]) {
        self.session = session; self.endedAt = endedAt; self.entries = entries
    }

    /// The DNS type stored for a refused name: A for a name not in the profile (the type is not kept), the
    /// type itself for a type the gate does not forward ("name TXT"), "-" for other refusals (a malformed
    /// query, an answer pointing somewhere the profile does not allow). Proposals read only A/AAAA refusals.
    static func refusedType(_ entry: Entry) -> String {
        if entry.allowable { return "A" }
        if let name = entry.name, entry.subject.count > name.count, entry.subject.lowercased().hasPrefix(name.lowercased() + " "),
           let type = entry.subject.split(separator: " ").last, type.allSatisfy({ $0.isLetter || $0.isNumber }) {
            return String(type)
        }
        return "-"
    }
}

extension Store {
    /// Records an enforce session in one transaction. False when the session is already there (recording is
    /// idempotent: a record ingested twice is counted once).
    @discardableResult
    package func record(_ record: EnforceRecord) throws -> Bool {
        let session = record.session
        return try pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [session.id]) ?? false { return false }
            let events = record.entries.reduce(Int64(0)) { $0 &+ max(0, $1.count) }
            let first = record.entries.map(\.firstSeen).min()
            let last = record.entries.map(\.lastSeen).max()
            try db.execute(sql: """
                INSERT INTO sessions (id, kind, source, command, gate, started_at, ended_at, events, first_event, last_event)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [session.id, session.kind, session.source, Data(Self.joined(session.command).bytes),
                                 session.gate, session.startedAt, record.endedAt, events, first, last])
            let resolver = session.gate ?? ""
            for entry in record.entries {
                let count = max(0, entry.count)
                switch entry.verdict {
                case "allowed", "refused", "failed":
                    let name = entry.name ?? entry.subject
                    let type = entry.verdict == "refused" ? EnforceRecord.refusedType(entry) : "A"
                    let rcode = entry.verdict == "allowed" ? "NOERROR" : entry.verdict == "failed" ? "SERVFAIL" : "REFUSED"
                    let shownName = entry.verdict == "refused" && !entry.allowable && type == "-" ? entry.subject : name
                    try db.execute(sql: """
                        INSERT INTO dns (session_id, name, type, resolver, source, program, queries, responses, rcode,
                          first_seen, last_seen) VALUES (?, ?, ?, ?, 'gate', '', ?, ?, ?, ?, ?)
                        ON CONFLICT (session_id, name, type, resolver, source, program) DO UPDATE SET
                          queries = queries + excluded.queries, responses = responses + excluded.responses,
                          first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                        """, arguments: [session.id, RawText(shownName.lowercased()), type, resolver, count, count, rcode,
                                         entry.firstSeen, entry.lastSeen])
                case "blocked":
                    try db.execute(sql: """
                        INSERT INTO flows (session_id, proto, address, port, verdict, program, result, name, name_source,
                          connections, bytes_out, bytes_in, packets, first_seen, last_seen)
                        VALUES (?, ?, ?, ?, 'blocked', '', 0, ?, ?, ?, 0, 0, ?, ?, ?)
                        ON CONFLICT (session_id, proto, address, port, verdict, program, result) DO UPDATE SET
                          connections = connections + excluded.connections, packets = packets + excluded.packets,
                          first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                        """, arguments: [session.id, entry.proto, FlowObservation.canonicalAddress(entry.subject.lowercased()),
                                         Int(entry.port ?? 0), entry.name.map { RawText($0.lowercased()) },
                                         entry.name == nil ? nil : FlowNameSource.dns.rawValue, count, count,
                                         entry.firstSeen, entry.lastSeen])
                default:
                    continue
                }
            }
            return true
        }
    }
}
