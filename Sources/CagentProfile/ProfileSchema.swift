/// The keys a profile may contain, and the "did you mean" for the ones it may not.
/// docs/profiles.md documents every key listed here.
enum ProfileSchema {
    static let topLevel = ["cagent", "agent", "description", "extends", "network", "filesystem", "env", "limits"]
    static let sections: [String: [String]] = [
        "network": ["domains", "endpoints", "cidrs"],
        "filesystem": ["read", "write", "hide"],
        "env": ["pass"],
        "limits": ["memory", "processes", "open_files", "tmp", "shm", "disk"],
    ]

    /// Words people reach for that are spelled differently here.
    static let synonyms: [String: String] = [
        "version": "cagent", "schema": "cagent", "name": "agent", "inherits": "extends", "include": "extends",
        "includes": "extends", "base": "extends", "hosts": "domains", "allow": "domains", "ips": "cidrs",
        "addresses": "cidrs", "ports": "endpoints", "readonly": "read", "read_only": "read", "readwrite": "write",
        "read_write": "write", "rw": "write", "ro": "read", "deny": "hide", "mask": "hide", "secrets": "hide",
        "environment": "env", "variables": "pass", "passthrough": "pass", "mem": "memory", "pids": "processes",
        "nproc": "processes", "nofile": "open_files", "files": "open_files", "fs": "filesystem", "net": "network",
    ]

    /// A suggestion for an unknown `key` at `section` (nil: top level), as text ready for a message.
    static func suggestion(for key: String, in section: String?) -> String? {
        let allowed = section.map { sections[$0] ?? [] } ?? topLevel
        if let best = closest(key, among: allowed) { return "did you mean '\(best)'?" }
        // A key that exists, but in another section (e.g. `domains` at the top level).
        for (other, keys) in sections.sorted(by: { $0.key < $1.key }) where other != section {
            if let found = closest(key, among: keys) {
                return "did you mean '\(found)' under '\(other):'? ('\(other).\(found)')"
            }
        }
        if section != nil, closest(key, among: topLevel) != nil {
            return "'\(key)' is a top-level key; it does not belong under '\(section!):'"
        }
        return nil
    }

    static func closest(_ key: String, among candidates: [String]) -> String? {
        let folded = fold(key)
        if let exact = candidates.first(where: { fold($0) == folded }) { return exact }
        if let synonym = synonyms[folded], candidates.contains(synonym) { return synonym }
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(folded, fold(candidate))
            let allowed = candidate.count <= 4 ? 1 : 2
            if distance <= allowed, distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
        }
        return best?.0
    }

    /// Lowercase, without `_`/`-`, so `openFiles`, `open-files` and `Open_Files` meet.
    private static func fold(_ key: String) -> String {
        String(key.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" })
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions, adjacent transpositions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
