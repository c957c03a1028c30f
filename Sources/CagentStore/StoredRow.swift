import CagentCore
import CagentEvents
import GRDB

/// Reads one row of the database defensively: anyone who can write the file can put TEXT in an INTEGER
/// column, NULL in a NOT NULL one or a value near Int64.max in a count. GRDB's `row["x"]` traps on a value
/// it cannot convert; this throws a CagentError (stage "store") naming the table and column instead.
struct StoredRow {
    let row: Row
    let table: String

    init(_ row: Row, _ table: String) { self.row = row; self.table = table }

    private func value(_ column: String) throws -> DatabaseValue {
        guard row.hasColumn(column) else { throw StoredRow.damaged("the column \(table).\(column) is missing") }
        return row[column] as DatabaseValue
    }

    private func wrong(_ column: String, _ value: DatabaseValue, _ expected: String) -> CagentError {
        let found: String
        switch value.storage {
        case .null: found = "NULL"
        case .int64: found = "an integer"
        case .double: found = "a real number"
        case .string: found = "text"
        case .blob: found = "a blob"
        }
        return StoredRow.damaged("\(table).\(column) holds \(found) where \(expected) belongs")
    }

    static func damaged(_ what: String) -> CagentError {
        CagentError(stage: "store", "the database is damaged: \(what)",
                    hint: "it was edited or corrupted; restore a backup, or record the session again into a new --db")
    }

    func optionalInteger(_ column: String) throws -> Int64? {
        let stored = try value(column)
        switch stored.storage {
        case .null: return nil
        case .int64(let number): return number
        default: throw wrong(column, stored, "an integer")
        }
    }

    func integer(_ column: String) throws -> Int64 {
        let stored = try value(column)
        guard let number = try optionalInteger(column) else { throw wrong(column, stored, "an integer") }
        return number
    }

    /// A count: an integer, never negative (sums of counts saturate, see `Int64.saturatingAdd`).
    func count(_ column: String) throws -> Int64 {
        let number = try integer(column)
        guard number >= 0 else { throw StoredRow.damaged("\(table).\(column) holds a negative count (\(number))") }
        return number
    }

    func optionalText(_ column: String) throws -> String? {
        let stored = try value(column)
        switch stored.storage {
        case .null: return nil
        case .string(let text): return text
        default: throw wrong(column, stored, "text")
        }
    }

    func text(_ column: String) throws -> String {
        let stored = try value(column)
        guard let text = try optionalText(column) else { throw wrong(column, stored, "text") }
        return text
    }

    /// Sandbox text: TEXT, or a BLOB for invalid UTF-8.
    func optionalRaw(_ column: String) throws -> RawText? {
        let stored = try value(column)
        switch stored.storage {
        case .null: return nil
        case .string(let text): return RawText(text)
        case .blob(let data): return RawText(bytes: [UInt8](data))
        default: throw wrong(column, stored, "text")
        }
    }

    func raw(_ column: String) throws -> RawText {
        let stored = try value(column)
        guard let raw = try optionalRaw(column) else { throw wrong(column, stored, "text") }
        return raw
    }
}

extension Int64 {
    /// Sums of stored counts: a hostile database must not overflow (trap) the report; the sum stops at the top.
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if !overflow { return sum }
        return other > 0 ? .max : .min
    }
}
