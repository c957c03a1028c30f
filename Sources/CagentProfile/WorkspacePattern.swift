#if canImport(Glibc)
import Glibc
#endif

/// A `filesystem.hide` entry that names files in the workspace (`.env`, `*.pem`, `./config/prod.yaml`,
/// `secrets/`): anything not starting with `/` or `~`. Gitignore-like, and only this much of it:
///
/// - no `/` except a trailing one (`.env`, `*.pem`, `secrets/`): the name matches at any depth;
/// - a `/` inside, or a leading `./` (`./.env`, `config/*.key`): anchored at the workspace root, one
///   component per level;
/// - a trailing `/`: directories only (the whole directory is covered);
/// - each component is a shell glob within that component (`*`, `?`, `[abc]`, `[!abc]`; fnmatch(3)
///   without escapes; `*` matches a leading dot too).
///
/// Refused, so that no entry means something other than it seems: `..` (would leave the workspace), `.`
/// past a leading `./`, `**`, backslashes, a pattern that matches every top-level entry (`*`), and `.git`
/// (cagent pins it; covering it would break git). Pure: the planner does the matching host-side.
package struct WorkspacePattern: Sendable, Equatable {
    /// The canonical text (what merging compares and `show --resolved` prints).
    package let text: String
    /// Anchored at the workspace root (else the last component matches at any depth).
    package let anchored: Bool
    package let directoryOnly: Bool
    package let components: [String]

    /// Whether a profile `hide` entry names workspace files (not `/...` or `~...`).
    package static func isWorkspaceEntry(_ entry: String) -> Bool {
        !entry.hasPrefix("/") && !entry.hasPrefix("~")
    }

    package init(_ raw: String) throws(ValueProblem) {
        if raw.isEmpty { throw ValueProblem("empty pattern") }
        if raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw ValueProblem("control character in a pattern")
        }
        if raw.contains("\\") {
            throw ValueProblem("backslashes are not allowed in a workspace pattern",
                               hint: "match a special character with a class, e.g. '[*]'")
        }
        var text = Substring(raw)
        var anchored = false
        if text.hasPrefix("./") { anchored = true; text = text.dropFirst(2) }
        let directoryOnly = text.hasSuffix("/")
        let components = text.split(separator: "/").map(String.init)
        if components.isEmpty {
            throw ValueProblem("this names the workspace itself", hint: "the workspace is always visible; name files in it")
        }
        for component in components {
            if component == ".." {
                throw ValueProblem("'..' would leave the workspace",
                                   hint: "a workspace pattern names files inside the workspace; write an absolute or '~/' path for others")
            }
            if component == "." { throw ValueProblem("'.' is allowed only as a leading './'") }
            if component.contains("**") {
                throw ValueProblem("'**' is not supported",
                                   hint: "a pattern without '/' (e.g. '*.pem') already matches at any depth")
            }
            if component == ".git" {
                throw ValueProblem("'.git' cannot be hidden: cagent pins it, and git needs it",
                                   hint: "hide the files inside the work tree instead")
            }
        }
        if components.count == 1 && components[0].allSatisfy({ $0 == "*" }) {
            throw ValueProblem("'\(raw)' would hide every file in the workspace", hint: "name the files or directories to hide")
        }
        if components.count > 1 { anchored = true }
        self.anchored = anchored
        self.directoryOnly = directoryOnly
        self.components = components
        self.text = (anchored && components.count == 1 ? "./" : "") + components.joined(separator: "/") + (directoryOnly ? "/" : "")
    }

    /// Whether the workspace entry at `path` (components relative to the workspace) matches.
    package func matches(_ path: [String], isDirectory: Bool) -> Bool {
        guard let last = path.last else { return false }
        return matches(directory: path.dropLast(), name: last, isDirectory: isDirectory)
    }

    /// The same, for an entry `name` in the directory `directory` (no array built per entry: the walk calls
    /// this for every entry of the workspace).
    package func matches(directory: ArraySlice<String>, name: String, isDirectory: Bool) -> Bool {
        if directoryOnly && !isDirectory { return false }
        if !anchored { return Self.glob(components[0], name) }
        guard directory.count + 1 == components.count, Self.glob(components[components.count - 1], name) else { return false }
        return zip(components, directory).allSatisfy { Self.glob($0, $1) }
    }

    /// The deepest level an anchored pattern can match at (nil: any depth).
    package var depth: Int? { anchored ? components.count : nil }

    static func glob(_ pattern: String, _ name: String) -> Bool {
        // The common shapes without fnmatch: a literal, `*suffix`, `prefix*` (most names match nothing).
        var special = 0, star = -1, index = 0
        for byte in pattern.utf8 {
            if byte == UInt8(ascii: "*") { special += 1; star = index }
            else if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "[") { special += 2 }
            index += 1
        }
        if special == 0 { return pattern.utf8.elementsEqual(name.utf8) }
        if special == 1 && star == 0 {
            return name.utf8.count >= index - 1 && name.utf8.suffix(index - 1).elementsEqual(pattern.utf8.dropFirst())
        }
        if special == 1 && star == index - 1 {
            return name.utf8.count >= index - 1 && name.utf8.prefix(index - 1).elementsEqual(pattern.utf8.dropLast())
        }
        return fnmatch(pattern, name, FNM_NOESCAPE) == 0
    }
}
