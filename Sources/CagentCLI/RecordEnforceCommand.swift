import ArgumentParser
import CagentCore
import CagentLaunch
import CagentStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `cagent-full record-enforce` (hidden): the second half of every `cagent enforce`. The lean front writes
/// the session's JSON record and execs this, which puts it into the store and exits with the agent's status
/// (docs/architecture.md "Enforce sessions in the store"). A failure here is a warning: the agent's status
/// is never changed by the store.
struct RecordEnforceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record-enforce", abstract: "Record an enforce session's JSON record in the store.",
        shouldDisplay: false)

    @OptionGroup var store: StoreOptions
    @Option(help: "The session record the front wrote.") var file: String
    @Option(help: "The status to exit with (the agent's).") var exitStatus: Int32 = 0

    func run() throws {
        do {
            let record = try Self.load(file)
            try store.openForRecording().record(record)
        } catch {
            FileDescriptorStream.standardError.write("cagent: warning: session not recorded in the store: "
                                                     + TerminalEscape.escape("\(error)") + "\n")
        }
        throw CagentExit(status: exitStatus)
    }

    /// Reads the record with the invoking user's rights, never through a symlink at its name; refuses
    /// anything that is not the shape the front writes.
    static func load(_ path: String) throws -> EnforceRecord {
        let identity = FileIdentity.invoking(environment: ProcessEnvironment.current)
        let bytes: [UInt8]
        switch FileSystem.readAsUser(path, limit: 64 << 20, identity: identity, followSymlinks: false) {
        case .success(let read): bytes = read
        case .failure(let error): throw CagentError(stage: "record", error.message(path: path))
        }
        return try parse(Data(bytes))
    }

    static func parse(_ data: Data) throws -> EnforceRecord {
        func bad(_ what: String) -> CagentError {
            CagentError(stage: "record", "the session record is not valid: \(what)", hint: "it stays on disk; nothing was recorded")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw bad("not a JSON object") }
        guard let id = object["session"] as? String, !id.isEmpty, id.utf8.count <= 128,
              let started = (object["started_at"] as? NSNumber)?.int64Value,
              let ended = (object["ended_at"] as? NSNumber)?.int64Value else { throw bad("no session, started_at or ended_at") }
        let command = (object["command"] as? [Any] ?? []).compactMap { $0 as? String }.map(RawText.init)
        let profile = object["profile"] as? String ?? ""
        let gate = object["gate"] as? String
        var entries: [EnforceRecord.Entry] = []
        for item in object["entries"] as? [Any] ?? [] {
            guard let entry = item as? [String: Any], let verdict = entry["verdict"] as? String,
                  let subject = entry["subject"] as? String, let proto = entry["proto"] as? String,
                  let count = (entry["count"] as? NSNumber)?.int64Value else { continue }
            let first = (entry["first_seen"] as? NSNumber)?.int64Value ?? started
            let last = (entry["last_seen"] as? NSNumber)?.int64Value ?? first
            let port = (entry["port"] as? NSNumber).flatMap { UInt16(exactly: $0.intValue) }
            entries.append(EnforceRecord.Entry(verdict: verdict, subject: subject, name: entry["name"] as? String, port: port,
                                               proto: proto, reason: entry["reason"] as? String, count: count,
                                               firstSeen: first, lastSeen: last,
                                               allowable: (entry["allowable"] as? Bool) ?? false))
        }
        let session = SessionInfo(id: id, kind: "enforce", source: profile.isEmpty ? "" : "profile:" + profile,
                                  command: command, gate: gate, startedAt: started)
        return EnforceRecord(session: session, endedAt: ended, entries: entries)
    }
}
