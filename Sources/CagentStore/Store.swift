import CagentCore
import CagentEvents
import Foundation
import GRDB
import GRDBSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The record: one SQLite file (WAL) holding every session cagent observed, aggregated so that it grows
/// with the number of distinct things seen, not with the number of events. Schema: docs/store.md.
package final class Store: Sendable {
    package let path: String
    /// A DatabasePool for recording; a read-only DatabaseQueue for `report` and `sessions`.
    let pool: any DatabaseWriter

    /// The default database: `<data dir>/cagent.db` (XDG data home of the invoking user).
    package static func defaultPath(paths: CagentPaths) -> String { paths.data + "/cagent.db" }

    /// Opens (creating when `create`) the database at `path` for recording. A new file and any directory
    /// created for it belong to `owner` (the real user under sudo), mode 0600 / 0700. Under sudo (`identity`),
    /// the file must be readable and writable by that user: `--db` never reaches root's files.
    package init(path: String, create: Bool = true, owner: InvokingUser? = nil, identity: FileIdentity? = nil) throws {
        self.path = path
        if !FileSystem.exists(path) {
            guard create else { throw Self.missing(path) }
            // Created with the user's rights: `--db /root/x.db` under sudo cannot plant a file in root's directory.
            try FileSystem.asUser(identity) { try Store.createFile(path, owner: owner) }
        }
        try Self.checkFile(path, identity: identity, writing: true)
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.label = "cagent.store"
        config.prepareDatabase { db in
            // WAL + NORMAL: a committed batch survives a crash of cagent; only power loss may drop the last one.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            try pool.read { db in try Schema.refuseNewer(db, path: path) }
            try Schema.migrator.migrate(pool)
            self.pool = pool
        } catch let error as DatabaseError {
            throw Self.openError(path, error)
        }
    }

    /// Opens an existing database read-only, for `report` and `sessions`: never creates, migrates or writes
    /// it (a 0-byte file stays 0 bytes). A missing file, a file that is not a cagent database, one of another
    /// schema version or one `identity` (the invoking user under sudo) cannot read is a clear error.
    package init(readingAt path: String, identity: FileIdentity? = nil) throws {
        self.path = path
        try Self.checkFile(path, identity: identity, writing: false)
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        config.label = "cagent.store.read"
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            try queue.read { db in try Schema.check(db, path: path) }
            self.pool = queue
        } catch let error as DatabaseError {
            throw Self.openError(path, error)
        }
    }

    static func missing(_ path: String) -> CagentError {
        CagentError(stage: "store", "no database at \(TerminalEscape.escape(path))",
                    hint: "record a session first (cagent learn, cagent import tracee FILE) or pass --db")
    }

    static func openError(_ path: String, _ error: DatabaseError) -> CagentError {
        CagentError(stage: "store", "cannot open \(TerminalEscape.escape(path)): \(TerminalEscape.escape(error.message ?? "\(error.resultCode)"))",
                    hint: "is it a cagent database? move it away to start a new one")
    }

    /// The file must be a regular file that `identity` may open (read, or read and write), and, when it
    /// has content, start with SQLite's header. Checked on a descriptor opened with the user's rights.
    static func checkFile(_ path: String, identity: FileIdentity?, writing: Bool) throws {
        let shown = TerminalEscape.escape(path)
        let flags = (writing ? O_RDWR : O_RDONLY) | O_NONBLOCK
        let fd: Int32
        switch FileSystem.openAsUser(path, flags: flags, identity: identity) {
        case .failure(let error):
            if case .open(let code) = error.reason, code == ENOENT { throw missing(path) }
            throw CagentError(stage: "store", error.message(path: path),
                              hint: identity.map { "pass --db with a database \($0.name) may \(writing ? "write" : "read")" }
                                  ?? "pass --db with a readable database")
        case .success(let opened): fd = opened
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw CagentError(stage: "store", "\(shown) is \(FileSystem.kind(info.st_mode)), not a database file",
                              hint: "pass --db with a cagent database")
        }
        if info.st_size == 0 {
            if writing { return }  // a new database, created a moment ago
            throw CagentError(stage: "store", "\(shown) is empty, not a cagent database",
                              hint: "record a session first (cagent learn, cagent import tracee FILE) or pass --db")
        }
        var header = [UInt8](repeating: 0, count: 16)
        let count = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 16, 0) }
        guard count == 16, header == Array("SQLite format 3\0".utf8) else {
            throw CagentError(stage: "store", "\(shown) is not an SQLite database",
                              hint: "pass --db with a cagent database; a new one is created by cagent learn or import")
        }
    }

    /// Creates parent directories (0700) and the file (0600) without following a symlink at the last
    /// component, and hands them to the invoking user when run as root.
    static func createFile(_ path: String, owner: InvokingUser?) throws {
        var directories: [String] = []
        var parent = (path as NSString).deletingLastPathComponent
        while !parent.isEmpty && parent != "/" && !FileSystem.exists(parent) {
            directories.append(parent)
            parent = (parent as NSString).deletingLastPathComponent
        }
        for directory in directories.reversed() {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw CagentError.system("store", "cannot create directory \(directory)")
            }
            if let owner, geteuid() == 0 { _ = chown(directory, owner.uid, owner.gid) }
        }
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST { return }
            throw CagentError.system("store", "cannot create \(path)", hint: "pass --db with a writable path")
        }
        defer { close(fd) }
        if let owner, geteuid() == 0, owner.uid != 0 {
            // SQLite gives its -wal and -shm files the owner and mode of the database file.
            if fchown(fd, owner.uid, owner.gid) != 0 {
                throw CagentError.system("store", "cannot hand \(path) to uid \(owner.uid)")
            }
        }
    }

    // MARK: sessions

    /// Creates the session row; an existing id is kept as it is (two sources may open the same session).
    package func createSession(_ session: SessionInfo) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO sessions (id, kind, source, command, gate, started_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [session.id, session.kind, session.source, Data(Self.joined(session.command).bytes),
                                 session.gate, session.startedAt])
        }
    }

    package func endSession(_ id: String, at time: Nanoseconds) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE sessions SET ended_at = ? WHERE id = ?", arguments: [time, id])
        }
    }

    /// Learn mode's end: the tracer's rows (`observed`, with their program) of flows the firewall dropped become
    /// `blocked`, so a blocked flow is one row. A row already `blocked` under the same key is left as it is.
    package func markFlowsBlocked(session: String, _ flows: [(proto: String, address: String, port: UInt16, program: RawText, result: Int32)]) throws {
        guard !flows.isEmpty else { return }
        try pool.write { db in
            let statement = try db.cachedStatement(sql: """
                UPDATE OR IGNORE flows SET verdict = 'blocked'
                WHERE session_id = ? AND proto = ? AND address = ? AND port = ? AND program = ? AND result = ?
                  AND verdict = 'observed'
                """)
            for flow in flows {
                try statement.execute(arguments: [session, flow.proto, flow.address, Int64(flow.port), flow.program, flow.result])
            }
        }
    }

    package func sessionExists(_ id: String) throws -> Bool {
        try pool.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [id]) ?? false }
    }

    /// argv as NUL-separated bytes (lossless: an argument cannot contain NUL). Always bound as a BLOB:
    /// SQLite's text accessors stop at the first NUL.
    static func joined(_ argv: [RawText]) -> RawText {
        var bytes: [UInt8] = []
        for (index, argument) in argv.enumerated() {
            if index > 0 { bytes.append(0) }
            bytes += argument.bytes
        }
        return RawText(bytes: bytes)
    }

    static func split(_ joined: RawText) -> [RawText] {
        if joined.isEmpty { return [] }
        return joined.bytes.split(separator: 0, omittingEmptySubsequences: false).map { RawText(bytes: Array($0)) }
    }

    // MARK: writing a batch

    /// Writes one aggregated batch in one transaction. Called by the Recorder's writer thread.
    func write(_ batch: Batch, session: String) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE sessions SET events = events + ?, first_event = min(coalesce(first_event, ?), ?),
                  last_event = max(coalesce(last_event, ?), ?) WHERE id = ?
                """, arguments: [batch.events, batch.firstTime, batch.firstTime, batch.lastTime, batch.lastTime, session])
            if !batch.processes.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO processes (session_id, executable, argv, parent_executable, program, count, first_seen,
                      last_seen, last_pid, last_ppid, last_exit, last_end)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, executable, argv, parent_executable) DO UPDATE SET
                      count = count + excluded.count,
                      program = CASE WHEN excluded.program = '' THEN program ELSE excluded.program END,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
                      last_pid = CASE WHEN excluded.last_pid = 0 THEN last_pid ELSE excluded.last_pid END,
                      last_ppid = CASE WHEN excluded.last_pid = 0 THEN last_ppid ELSE excluded.last_ppid END,
                      last_exit = coalesce(excluded.last_exit, last_exit),
                      last_end = max(coalesce(last_end, excluded.last_end), coalesce(excluded.last_end, last_end))
                    """)
                for (key, value) in batch.processes {
                    try statement.execute(arguments: [
                        session, key.executable, Data(Self.joined(key.argv).bytes), key.parentExecutable, value.program,
                        value.count, value.firstSeen, value.lastSeen, value.lastPID, value.lastPPID, value.lastExit,
                        value.lastEnd,
                    ])
                }
            }
            if !batch.dns.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO dns (session_id, name, type, resolver, source, program, queries, responses, rcode,
                      first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, name, type, resolver, source, program) DO UPDATE SET
                      queries = queries + excluded.queries, responses = responses + excluded.responses,
                      rcode = CASE WHEN excluded.rcode = '' THEN rcode ELSE excluded.rcode END,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    RETURNING id
                    """)
                let answer = try db.cachedStatement(sql: """
                    INSERT INTO dns_answers (dns_id, name, type, data, ttl, count, first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (dns_id, name, type, data) DO UPDATE SET
                      ttl = excluded.ttl, count = count + excluded.count,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    """)
                for (key, value) in batch.dns {
                    guard let id = try Int64.fetchOne(statement, arguments: [
                        session, key.name, key.type, key.resolver, key.source.rawValue, key.program,
                        value.queries, value.responses, value.rcode, value.firstSeen, value.lastSeen,
                    ]) else { continue }
                    for answerKey in value.answerOrder {
                        guard let answerValue = value.answers[answerKey] else { continue }
                        try answer.execute(arguments: [
                            id, answerKey.name, answerKey.type, answerKey.data, answerValue.ttl, answerValue.count,
                            answerValue.firstSeen, answerValue.lastSeen,
                        ])
                    }
                }
            }
            if !batch.flows.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO flows (session_id, proto, address, port, verdict, program, result, name, name_source,
                      connections, bytes_out, bytes_in, packets, first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, proto, address, port, verdict, program, result) DO UPDATE SET
                      name = coalesce(name, excluded.name),
                      name_source = CASE WHEN name IS NULL THEN excluded.name_source ELSE name_source END,
                      connections = connections + excluded.connections, bytes_out = bytes_out + excluded.bytes_out,
                      bytes_in = bytes_in + excluded.bytes_in, packets = packets + excluded.packets,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    """)
                for (key, value) in batch.flows {
                    try statement.execute(arguments: [
                        session, key.proto, key.address, Int64(key.port), key.verdict.rawValue, key.program,
                        key.result, value.name, value.nameSource, value.count, value.bytesOut, value.bytesIn,
                        value.packets, value.firstSeen, value.lastSeen,
                    ])
                }
            }
            if !batch.files.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO files (session_id, path, operation, result, program, flags, count, first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, path, operation, result, program) DO UPDATE SET
                      flags = CASE WHEN excluded.flags IS NULL THEN flags ELSE coalesce(flags, 0) | excluded.flags END,
                      count = count + excluded.count,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    """)
                // The bulk of a traced session: bound through SQLite's C API (GRDB's StatementArguments box
                // every value; this loop runs once per distinct file event).
                let raw = statement.sqliteStatement
                sqlite3_reset(raw)
                for (key, value) in batch.files {
                    let code = session.withCString { sessionText in
                        key.path.bytes.withUnsafeBufferPointer { path in
                            key.program.bytes.withUnsafeBufferPointer { program in
                                key.operation.rawValue.withCString { operation in
                                    sqlite3_bind_text(raw, 1, sessionText, -1, nil)
                                    Self.bind(raw, 2, path)
                                    sqlite3_bind_text(raw, 3, operation, -1, nil)
                                    sqlite3_bind_int64(raw, 4, Int64(key.result))
                                    Self.bind(raw, 5, program)
                                    if let flags = value.flags { sqlite3_bind_int64(raw, 6, Int64(flags)) } else { sqlite3_bind_null(raw, 6) }
                                    sqlite3_bind_int64(raw, 7, value.count)
                                    sqlite3_bind_int64(raw, 8, value.firstSeen)
                                    sqlite3_bind_int64(raw, 9, value.lastSeen)
                                    let code = sqlite3_step(raw)
                                    sqlite3_reset(raw)
                                    sqlite3_clear_bindings(raw)  // nothing keeps pointing at these buffers
                                    return code
                                }
                            }
                        }
                    }
                    guard code == SQLITE_DONE else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: code),
                                            message: db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) })
                    }
                }
            }
            if !batch.binds.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO binds (session_id, family, proto, address, port, program, result, count, last_pid,
                      first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, family, proto, address, port, program, result) DO UPDATE SET
                      count = count + excluded.count,
                      last_pid = CASE WHEN excluded.last_pid = 0 THEN last_pid ELSE excluded.last_pid END,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    """)
                for (key, value) in batch.binds {
                    try statement.execute(arguments: [
                        session, key.family, key.proto, key.address, Int64(key.port), key.program, key.result,
                        value.count, value.lastPID, value.firstSeen, value.lastSeen,
                    ])
                }
            }
            if !batch.findings.isEmpty {
                let statement = try db.cachedStatement(sql: """
                    INSERT INTO findings (session_id, kind, subject, detail, example, count, first_seen, last_seen)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, kind, subject) DO UPDATE SET
                      count = count + excluded.count,
                      first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)
                    """)
                for (key, value) in batch.findings {
                    try statement.execute(arguments: [
                        session, key.kind.rawValue, key.subject, value.detail, value.example, value.count,
                        value.firstSeen, value.lastSeen,
                    ])
                }
            }
        }
    }

    /// Binds sandbox bytes as RawText's databaseValue does: TEXT when valid UTF-8, else BLOB (never altered).
    /// The buffer must stay valid until the statement has run (no copy).
    static func bind(_ statement: OpaquePointer, _ index: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        let base = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
        if isValidUTF8(bytes) {
            sqlite3_bind_text(statement, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        } else {
            sqlite3_bind_blob(statement, index, base, Int32(bytes.count), nil)
        }
    }

    /// ASCII at word speed, anything else through the standard library's validation.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var ascii = true
        for byte in bytes where byte >= 0x80 { ascii = false; break }
        return ascii || String(validating: bytes, as: UTF8.self) != nil
    }

    /// Runs a read-only block (for reports and tests).
    package func read<T>(_ block: (Database) throws -> T) throws -> T {
        try pool.read(block)
    }

    /// A read for a command: whatever SQLite or GRDB throws on a damaged or edited file (a missing column,
    /// a value GRDB cannot decode) becomes the usual error shape instead of a raw SQLite message.
    func guardedRead<T>(_ block: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(block)
        } catch let error as CagentError {
            throw error
        } catch let error as DatabaseError {
            throw StoredRow.damaged("\(TerminalEscape.escape(error.message ?? "\(error.resultCode)"))")
        } catch {
            throw StoredRow.damaged(TerminalEscape.escape("\(error)"))
        }
    }

    /// Checkpoints the WAL into the main file (smaller files at rest; used before measuring size).
    package func checkpoint() throws {
        try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }
}

/// A session's identity and where it came from.
package struct SessionInfo: Sendable {
    package var id: String
    /// "learn", "enforce", "import", "synthetic".
    package var kind: String
    /// What fed it, e.g. "tracee:/path/trace.json".
    package var source: String
    /// The agent's command line.
    package var command: [RawText]
    /// The DNS gate's address, when the session had one.
    package var gate: String?
    package var startedAt: Nanoseconds

    package init(id: String, kind: String, source: String = "", command: [RawText] = [], gate: String? = nil,
                startedAt: Nanoseconds = Clock.now()) {
        self.id = id; self.kind = kind; self.source = source; self.command = command; self.gate = gate
        self.startedAt = startedAt
    }
}

package enum Clock {
    package static func now() -> Nanoseconds {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// Sandbox text goes to SQLite as TEXT when it is valid UTF-8 (readable with any SQLite tool) and as a
/// BLOB otherwise, so that every byte is kept. Always bound as a parameter, never spliced into SQL.
extension RawText: DatabaseValueConvertible {
    package var databaseValue: DatabaseValue {
        if let text = validString { return text.databaseValue }
        return Data(bytes).databaseValue
    }

    package static func fromDatabaseValue(_ value: DatabaseValue) -> RawText? {
        switch value.storage {
        case .string(let text): return RawText(text)
        case .blob(let data): return RawText(bytes: [UInt8](data))
        case .null: return nil
        case .int64(let number): return RawText(String(number))
        case .double(let number): return RawText(String(number))
        }
    }
}

enum Schema {
    /// The tables every reader queries.
    static let tables = ["sessions", "processes", "dns", "dns_answers", "flows", "files", "findings", "binds"]

    /// A database written by a newer cagent (a migration this one does not know) is neither migrated nor read.
    static func refuseNewer(_ db: Database, path: String) throws {
        guard try db.tableExists("grdb_migrations") else { return }
        let applied = try String?.fetchAll(db, sql: "SELECT CAST(identifier AS TEXT) FROM grdb_migrations").compactMap { $0 }
        let unknown = applied.filter { !migrator.migrations.contains($0) }
        if !unknown.isEmpty {
            throw CagentError(stage: "store", "\(TerminalEscape.escape(path)) was written by a newer cagent (schema "
                              + unknown.map { TerminalEscape.escape($0) }.joined(separator: ", ") + ")",
                              hint: "use that cagent version to read it, or pass --db with another database")
        }
    }

    /// For read-only opens: the schema is exactly this cagent's (all migrations, every table).
    static func check(_ db: Database, path: String) throws {
        let shown = TerminalEscape.escape(path)
        guard try db.tableExists("grdb_migrations") else {
            throw CagentError(stage: "store", "\(shown) is not a cagent database (no schema)",
                              hint: "pass --db with a cagent database")
        }
        try refuseNewer(db, path: path)
        let applied = Set(try String?.fetchAll(db, sql: "SELECT CAST(identifier AS TEXT) FROM grdb_migrations").compactMap { $0 })
        let missing = migrator.migrations.filter { !applied.contains($0) }
        if !missing.isEmpty {
            throw CagentError(stage: "store", "\(shown) has an older schema (missing \(missing.joined(separator: ", ")))",
                              hint: "record into it once (cagent import or learn with --db) to upgrade it; read commands never write")
        }
        for table in tables where try !db.tableExists(table) {
            throw CagentError(stage: "store", "\(shown) is damaged: the table \(table) is missing",
                              hint: "restore a backup, or move it away to start a new database")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // Sandbox-derived columns (names, paths, argv, programs) hold TEXT or, for invalid UTF-8, BLOB.
            // Key columns are NOT NULL: SQLite treats NULLs as distinct in a UNIQUE index.
            try db.execute(sql: """
                CREATE TABLE sessions (
                  id TEXT PRIMARY KEY,
                  kind TEXT NOT NULL,
                  source TEXT NOT NULL DEFAULT '',
                  command BLOB,
                  gate TEXT,
                  started_at INTEGER NOT NULL,
                  ended_at INTEGER,
                  events INTEGER NOT NULL DEFAULT 0,
                  first_event INTEGER,
                  last_event INTEGER
                );
                CREATE TABLE processes (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  executable TEXT NOT NULL,
                  argv BLOB NOT NULL,
                  parent_executable TEXT NOT NULL,
                  program TEXT NOT NULL DEFAULT '',
                  count INTEGER NOT NULL,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  last_pid INTEGER NOT NULL DEFAULT 0,
                  last_ppid INTEGER NOT NULL DEFAULT 0,
                  last_exit INTEGER,
                  last_end INTEGER,
                  UNIQUE (session_id, executable, argv, parent_executable)
                );
                CREATE TABLE dns (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  name TEXT NOT NULL,
                  type TEXT NOT NULL,
                  resolver TEXT NOT NULL,
                  source TEXT NOT NULL,
                  program TEXT NOT NULL,
                  queries INTEGER NOT NULL,
                  responses INTEGER NOT NULL,
                  rcode TEXT NOT NULL DEFAULT '',
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (session_id, name, type, resolver, source, program)
                );
                CREATE TABLE dns_answers (
                  id INTEGER PRIMARY KEY,
                  dns_id INTEGER NOT NULL REFERENCES dns(id) ON DELETE CASCADE,
                  name TEXT NOT NULL,
                  type TEXT NOT NULL,
                  data TEXT NOT NULL,
                  ttl INTEGER NOT NULL,
                  count INTEGER NOT NULL,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (dns_id, name, type, data)
                );
                CREATE TABLE flows (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  proto TEXT NOT NULL,
                  address TEXT NOT NULL,
                  port INTEGER NOT NULL,
                  verdict TEXT NOT NULL,
                  program TEXT NOT NULL,
                  result INTEGER NOT NULL,
                  name TEXT,
                  name_source TEXT,
                  connections INTEGER NOT NULL,
                  bytes_out INTEGER NOT NULL,
                  bytes_in INTEGER NOT NULL,
                  packets INTEGER NOT NULL,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (session_id, proto, address, port, verdict, program, result)
                );
                CREATE TABLE files (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  path TEXT NOT NULL,
                  operation TEXT NOT NULL,
                  result INTEGER NOT NULL,
                  program TEXT NOT NULL,
                  flags INTEGER,
                  count INTEGER NOT NULL,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (session_id, path, operation, result, program)
                );
                CREATE TABLE findings (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  kind TEXT NOT NULL,
                  subject TEXT NOT NULL,
                  detail TEXT NOT NULL,
                  example TEXT NOT NULL,
                  count INTEGER NOT NULL,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (session_id, kind, subject)
                );
                """)
        }
        migrator.registerMigration("v2") { db in
            // Sockets the sandbox bound (bind(2)): listening ports and chosen source addresses.
            try db.execute(sql: """
                CREATE TABLE binds (
                  id INTEGER PRIMARY KEY,
                  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                  family TEXT NOT NULL,
                  proto TEXT NOT NULL,
                  address TEXT NOT NULL,
                  port INTEGER NOT NULL,
                  program TEXT NOT NULL,
                  result INTEGER NOT NULL,
                  count INTEGER NOT NULL,
                  last_pid INTEGER NOT NULL DEFAULT 0,
                  first_seen INTEGER NOT NULL,
                  last_seen INTEGER NOT NULL,
                  UNIQUE (session_id, family, proto, address, port, program, result)
                );
                """)
        }
        return migrator
    }
}
