/// A list a profile can add to (and remove from). The raw value is the key's path in the YAML.
package enum ListKey: String, Sendable, CaseIterable, Hashable {
    case domains = "network.domains"
    case endpoints = "network.endpoints"
    case cidrs = "network.cidrs"
    case read = "filesystem.read"
    case write = "filesystem.write"
    case hide = "filesystem.hide"
    case pass = "env.pass"

    var section: String { String(rawValue.prefix(while: { $0 != "." })) }
    var key: String { String(rawValue.drop(while: { $0 != "." }).dropFirst()) }
}

/// A resource limit; the raw value is its path in the YAML.
package enum LimitKey: String, Sendable, CaseIterable, Hashable {
    case memory = "limits.memory"
    case processes = "limits.processes"
    case openFiles = "limits.open_files"
    case tmp = "limits.tmp"
    case shm = "limits.shm"
    case disk = "limits.disk"

    var key: String { String(rawValue.dropFirst("limits.".count)) }
    var isSize: Bool { self == .memory || self == .tmp || self == .shm || self == .disk }
}

/// A value with the place it was written and the comment written with it (kept for provenance).
package struct Located<Value: Sendable & Equatable>: Sendable, Equatable {
    package var value: Value
    package var location: SourceLocation
    /// The comment lines directly above the entry (joined with newlines), if any.
    package var comment: String?
    /// The comment after the entry on its line, if any.
    package var remark: String?

    package init(_ value: Value, at location: SourceLocation, comment: String? = nil, remark: String? = nil) {
        self.value = value; self.location = location; self.comment = comment; self.remark = remark
    }
}

/// One entry of a list: a canonical value to add, or (written `"!value"`) an inherited value to remove.
package struct ListEntry: Sendable, Equatable {
    package var value: String
    package var removes: Bool
    package var location: SourceLocation
    /// The comment lines directly above the entry, and the comment after it on its line.
    package var comment: String?
    package var remark: String?

    package init(value: String, removes: Bool = false, location: SourceLocation, comment: String? = nil, remark: String? = nil) {
        self.value = value; self.removes = removes; self.location = location; self.comment = comment; self.remark = remark
    }
}

/// What one file says, before `extends` is resolved: the parser's output, the merger's input.
package struct ProfileLayer: Sendable, Equatable {
    package var version: Int = 1
    package var agent: Located<String>?
    package var description: Located<String>?
    package var extends: [Located<String>] = []
    package var lists: [ListKey: [ListEntry]] = [:]
    /// Sizes in bytes, counts as numbers.
    package var limits: [LimitKey: Located<UInt64>] = [:]

    package init() {}
}

/// Where a profile file came from, which decides whether it may be used without the user's say-so.
package struct ProfileSource: Sendable, Equatable {
    package enum Origin: String, Sendable {
        /// Shipped with cagent (`<prefix>/share/cagent/profiles`, the repository's `profiles/`).
        case bundled
        /// The user's configuration directory (`~/.config/cagent/profiles`).
        case user
        /// Inside the workspace or cagent's data directory: a place the repository or the agent can write.
        case workspace
        /// Anywhere else, named by path.
        case other
    }

    /// The file's real path (symlinks resolved).
    package var path: String
    /// How messages show it.
    package var display: String
    package var origin: Origin
    package var sha256: String
    /// The text exactly as read (what was hashed and parsed).
    package var text: String

    package init(path: String, display: String, origin: Origin, sha256: String, text: String) {
        self.path = path; self.display = display; self.origin = origin; self.sha256 = sha256; self.text = text
    }
}
