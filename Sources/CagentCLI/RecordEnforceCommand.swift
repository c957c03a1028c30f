import ArgumentParser
import CagentCore
import CagentLaunch
import CagentProfile
import CagentPropose
import CagentEvents
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
            let (record, addition) = try Self.load(file)
            try store.openForRecording().record(record)
            if let addition { try Self.addToProfile(addition, session: record.session.id) }
        } catch {
            FileDescriptorStream.standardError.write("cagent: warning: session not recorded in the store: "
                                                     + TerminalEscape.escape("\(error)") + "\n")
        }
        throw CagentExit(status: exitStatus)
    }

    /// Reads the record with the invoking user's rights, never through a symlink at its name; refuses
    /// anything that is not the shape the front writes.
    /// Names the user added to the profile at the `--ask` prompt, and where the profile is resolved from.
    struct Addition { var profile: String; var workspace: String; var names: [String]; var time: Int64 }

    static func load(_ path: String) throws -> (EnforceRecord, Addition?) {
        let identity = FileIdentity.invoking(environment: ProcessEnvironment.current)
        let bytes: [UInt8]
        switch FileSystem.readAsUser(path, limit: 64 << 20, identity: identity, followSymlinks: false) {
        case .success(let read): bytes = read
        case .failure(let error): throw CagentError(stage: "record", error.message(path: path))
        }
        let record = try parse(Data(bytes))
        let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        let names = (object?["add_to_profile"] as? [Any] ?? []).compactMap { $0 as? String }
        guard !names.isEmpty, let profile = object?["profile"] as? String, let workspace = object?["workspace"] as? String else {
            return (record, nil)
        }
        return (record, Addition(profile: profile, workspace: workspace, names: names, time: record.endedAt))
    }

    /// `--ask`'s "add to the profile": the names go into the profile file the session ran under, each with its
    /// evidence, by the same update as `propose --update` (ProfileUpdate), written with the user's rights;
    /// the diff is shown. A bundled profile is not edited (the diff says what to add where).
    static func addToProfile(_ addition: Addition, session: String) throws {
        let environment = ProcessEnvironment.current
        let resolver = ProfileResolver.standard(workspace: addition.workspace, environment: environment)
        let resolved = try resolver.resolve(addition.profile)
        var proposal = Proposal(sessions: [session], extends: [])
        let when = Proposer.utc(addition.time)
        proposal.domains = addition.names.compactMap { name in
            guard let pattern = try? ValueSyntax.domainPattern(name) else { return nil }
            return Proposal.Entry(value: pattern, comments: ["added at the --ask prompt in session \(session), \(when) UTC"])
        }
        let update: ProfileUpdate
        do { update = try ProfileUpdate.apply(proposal, to: resolved.source.text, file: resolved.source.display) }
        catch { throw CagentError(stage: "ask: add to profile", error.description, hint: "add the names by hand") }
        guard update.added > 0 else { return }
        let parsed = ProfileParser.parse(text: update.text, file: resolved.source.display)
        guard parsed.layer != nil, !parsed.diagnostics.contains(where: { $0.severity == .error }) else {
            throw CagentError(stage: "ask: add to profile", "the updated profile does not parse", hint: "add the names by hand")
        }
        FileDescriptorStream.standardError.write(update.diff)
        guard resolved.source.origin != .bundled else {
            throw CagentError(stage: "ask: add to profile", "\(TerminalEscape.escape(resolved.source.display)) is a bundled profile",
                              hint: "copy it (cagent profile show) to a file of yours and add the lines above there")
        }
        let user = InvokingUser.current(environment: environment)
        try FileSystem.asUser(FileIdentity(invokingUnderRoot: user)) {
            try ProfilePropose.writeFile(update.text, to: resolved.source.path, force: true)
        }
        FileDescriptorStream.standardError.write("cagent: added \(update.added) entr\(update.added == 1 ? "y" : "ies") to \(TerminalEscape.escape(resolved.source.display))\n")
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
                                  command: ArgvRedaction().redact(command), gate: gate, startedAt: started)   // as learn's: no secret on a command line stored
        return EnforceRecord(session: session, endedAt: ended, entries: entries)
    }
}

/// Enforce sessions waiting in a store's spool (`<db>.pending/<id>.json`, written by the front at the end of
/// each session: docs/architecture.md "Enforce sessions in the store"): every command that opens the store
/// records them first, then removes their files. A record that cannot be read or stored is renamed
/// `.rejected` (and named in a warning) so that it is not retried on every command.
enum PendingRecords {
    static func directory(_ storePath: String) -> String { storePath + ".pending" }

    static func waiting(storePath: String) -> [String] {
        FileSystem.list(directory(storePath)).filter { $0.hasSuffix(".json") }.sorted()
    }

    /// Records what waits into `store`; file operations with `identity`'s rights (nil: the process's own).
    static func ingest(into store: Store, storePath: String, identity: FileIdentity?) {
        for name in waiting(storePath: storePath) {
            let path = directory(storePath) + "/" + name
            do {
                let (record, _) = try RecordEnforceCommand.load(path)
                try store.record(record)
                _ = try? FileSystem.asUser(identity) { unlink(path) }
            } catch {
                FileDescriptorStream.standardError.write("cagent: warning: enforce session \(TerminalEscape.escape(path)) not recorded: "
                                                         + TerminalEscape.escape("\(error)") + " (renamed .rejected)\n")
                _ = try? FileSystem.asUser(identity) { rename(path, path + ".rejected") }
            }
        }
    }
}
