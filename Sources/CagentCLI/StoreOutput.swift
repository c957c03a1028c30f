import ArgumentParser
import CagentCore
import CagentLaunch
import CagentProfile
import CagentEvents
import CagentStore
#if canImport(Glibc)
import Glibc
#endif

/// `--db` and `--user`, shared by every command that reads or writes the store.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The database (default: cagent.db in the invoking user's data directory).")
    var db: String?
    @Option(name: .long, help: "Act for this user id: its database, with its rights (root only; what `learn --user` prints).")
    var user: UInt32?

    /// The environment whose places and rights the command uses: `--user`'s, else the invoking user's
    /// (InvokingUser.placesEnvironment).
    func places() throws -> [String: String] {
        try InvokingUser.placesEnvironment(uid: user, environment: ProcessEnvironment.current)
    }

    /// The database's path (`--db`, else the places user's default).
    func path() throws -> String {
        let environment = try places()
        let user = InvokingUser.current(environment: environment)
        return db ?? Store.defaultPath(paths: CagentPaths.standard(user: user, environment: environment))
    }

    /// Opens the store for recording (creating it), with the places user's rights to the file; enforce
    /// sessions waiting in its spool are recorded first (PendingRecords).
    func openForRecording() throws -> Store {
        let environment = try places()
        let path = try path()
        let identity = FileIdentity.invoking(environment: environment)
        let store = try Store(path: path, create: true, owner: InvokingUser.current(environment: environment), identity: identity)
        PendingRecords.ingest(into: store, storePath: path, identity: identity)
        return store
    }

    /// Opens an existing store read-only (`report`, `sessions`): never created, migrated or written. These
    /// commands need no root, so under sudo (or with `--user`) the whole process becomes that user first: the
    /// database, and SQLite's -wal/-shm files next to it, are opened with that user's rights only.
    /// Enforce sessions waiting in the store's spool are recorded first, as the user (the one write these
    /// commands make: it creates the store when the first thing in it is such a session).
    func openForReading() throws -> Store {
        let path = try path()
        let identity = try becomeInvokingUser()
        if !PendingRecords.waiting(storePath: path).isEmpty, let store = try? Store(path: path, create: true) {
            PendingRecords.ingest(into: store, storePath: path, identity: nil)
        }
        return try Store(readingAt: path, identity: identity)
    }

    /// Under sudo or with `--user`: drops the process to that user for good and returns it (for messages).
    func becomeInvokingUser() throws -> FileIdentity? {
        let identity = FileIdentity.invoking(environment: try places())
        try identity?.dropProcessRights()
        return identity
    }

    /// The secrets a finding is raised for: the built-in hide list plus system secret files.
    static var findingRules: FindingRules {
        FindingRules(secretPaths: DefaultHidden.home + FindingRules.systemSecrets)
    }
}

/// Text from a sandbox, made safe for a terminal.
enum Safe {
    static func text(_ raw: RawText) -> String { TerminalEscape.escape(bytes: raw.bytes) }
    static func text(_ string: String) -> String { TerminalEscape.escape(string) }
    static func text(_ raw: RawText?) -> String { raw.map(text) ?? "-" }

    static func argv(_ argv: [RawText]) -> String {
        argv.map { argument in
            let shown = text(argument)
            let plain = !shown.isEmpty && shown.unicodeScalars.allSatisfy {
                $0.properties.isAlphabetic || $0.properties.numericType != nil || "-_./=:,+@%".unicodeScalars.contains($0)
            }
            return plain ? shown : "'" + shown.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// "2026-11-29 02:35:12" (UTC).
    static func time(_ nanoseconds: Nanoseconds?) -> String { nanoseconds.map(UTCText.seconds) ?? "-" }
}

/// A small JSON builder for `--json`: sandbox strings are exact when they are valid UTF-8, with every
/// control, C1, bidi and invisible format character written as a \u escape (so the JSON text is safe on a
/// terminal and decodes back to the same string); invalid UTF-8 is written in TerminalEscape's `\xNN` form.
indirect enum JSON {
    case string(String)
    case raw(RawText)
    case int(Int64)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    static func optional(_ value: Int64?) -> JSON { value.map { .int($0) } ?? .null }
    static func optional(_ value: String?) -> JSON { value.map { .string($0) } ?? .null }
    static func optional(_ value: RawText?) -> JSON { value.map { .raw($0) } ?? .null }

    var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .string(let value): JSON.quote(value, into: &out)
        case .raw(let value):
            if let valid = value.validString { JSON.quote(valid, into: &out) }
            else { JSON.quote(TerminalEscape.escape(bytes: value.bytes), into: &out) }
        case .int(let value): out += String(value)
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                value.write(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (index, field) in fields.enumerated() {
                if index > 0 { out += "," }
                JSON.quote(field.0, into: &out)
                out += ":"
                field.1.write(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x00..<0x20, 0x7F..<0xA0, 0x061C, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// Output goes through one writer so that nothing from a sandbox reaches the terminal unescaped.
struct Output {
    private var buffer = ""

    mutating func line(_ text: String = "") {
        buffer += text
        buffer += "\n"
        if buffer.utf8.count > 1 << 16 { flush() }
    }

    mutating func flush() {
        FileDescriptorStream.standardOutput.write(buffer)
        buffer = ""
    }
}
