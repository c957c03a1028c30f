import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// How a profile is named: a bare name is looked up in the profile directories, anything that looks like a
/// file (a `/`, or a `.yaml`/`.yml` ending) is a path.
package enum ProfileReference: Sendable, Equatable {
    case name(String)
    case path(String)

    package init?(_ text: String) {
        if text.isEmpty || text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return nil }
        if text.contains("/") || text.hasSuffix(".yaml") || text.hasSuffix(".yml") {
            self = .path(text)
            return
        }
        let ok = { (b: UInt8) in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x5F
        }
        guard text.utf8.allSatisfy(ok), text.utf8.first != 0x2E, text.utf8.first != 0x2D else { return nil }
        self = .name(text)
    }
}

/// Where profiles are looked up by name.
package enum ProfileDirectories {
    /// The workspace's own profiles: used only when trusted (`cagent profile trust`) or named by path.
    package static let workspaceSubdirectory = ".cagent"

    /// The user's profiles: trusted, searched first.
    package static func user(_ paths: CagentPaths) -> String { paths.config + "/profiles" }

    /// The profiles shipped with cagent: `$CAGENT_PROFILES_DIR` when set (tests, packaging); otherwise
    /// `<prefix>/share/cagent/profiles` next to the executable, or the repository's `profiles/` when cagent
    /// runs from its build directory (`<repo>/.build/...`).
    package static func bundled(environment: [String: String]) -> [String] {
        if let override = environment["CAGENT_PROFILES_DIR"], !override.isEmpty {
            return override.split(separator: ":").map(String.init)
        }
        guard let executable = FileSystem.realPath("/proc/self/exe") else { return [] }
        var directory = parent(executable)
        var candidates = [parent(directory) + "/share/cagent/profiles"]
        while directory != "/" && !directory.isEmpty {
            if directory.hasSuffix("/.build") { candidates.append(parent(directory) + "/profiles"); break }
            directory = parent(directory)
        }
        return candidates.filter { FileSystem.isDirectory($0) }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether `path` is `directory` or below it (both real paths).
    static func isInside(_ path: String, _ directory: String) -> Bool {
        directory == "/" || path == directory || path.hasPrefix(directory + "/")
    }
}
