import CagentCore
import Foundation
import Netlab
import Testing

/// The `cagent` front: `enforce` runs in a process that links no Foundation, SQLite, libpcap or ArgumentParser (what keeps
/// an agent's start near bubblewrap's: docs/benchmarks.md "Sandbox start"); every other command reaches
/// `cagent-full` with its arguments intact.
@Suite struct FrontTests {
    static let products = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug").path
    static let mayRun = Requirements.mayRun(tools: ["readelf"])

    /// The shared libraries an executable asks the dynamic loader for (DT_NEEDED).
    static func neededLibraries(_ path: String) throws -> [String] {
        let result = try Netlab.execute(["readelf", "--dynamic", "--wide", path], timeout: 30)
        try #require(result.succeeded, "readelf \(path): \(result.stderr)")
        return result.stdout.split(separator: "\n").compactMap { line in
            guard line.contains("(NEEDED)"), let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
            return String(line[line.index(after: open)..<close])
        }
    }

    @Test(.enabled(if: mayRun, "needs readelf (binutils) and a built .build/debug"))
    func theFrontLinksNoFoundationSQLiteOrPcap() throws {
        let front = try Self.neededLibraries(Self.products + "/cagent")
        let full = try Self.neededLibraries(Self.products + "/cagent-full")
        // Control: the full command set does load them, so the check reads real linkage.
        #expect(full.contains { $0.hasPrefix("libFoundation.so") }, "\(full)")
        #expect(full.contains { $0.hasPrefix("libsqlite3") }, "\(full)")
        // FoundationEssentials would come with ArgumentParser: the front leaves help and errors to cagent-full.
        for heavy in ["libFoundation.so", "libFoundationEssentials", "libFoundationInternationalization", "lib_FoundationICU",
                      "libsqlite3", "libpcap", "libbpf"] {
            #expect(!front.contains { $0.hasPrefix(heavy) }, "cagent links \(heavy): \(front)")
        }
        // libpcap is loaded on first use only, by both.
        #expect(!full.contains { $0.hasPrefix("libpcap") }, "\(full)")
    }

    @Test(.enabled(if: mayRun, "needs a built .build/debug"))
    func everyOtherCommandIsTheFullSet() throws {
        let version = try Netlab.execute([Self.products + "/cagent", "--version"], timeout: 30)
        #expect(version.succeeded && version.stdout.hasPrefix("0."), "\(version.stdout) \(version.stderr)")
        // Arguments arrive intact, usage errors come from the full tree with its name.
        let unknown = try Netlab.execute([Self.products + "/cagent", "profile", "show", "base", "--no-such-flag"], timeout: 30)
        #expect(!unknown.succeeded)
        #expect(unknown.stderr.contains("--no-such-flag") && unknown.stderr.contains("cagent profile show"), "\(unknown.stderr)")
        // enforce's help and usage errors come from the full set (ArgumentParser), under the same name.
        let help = try Netlab.execute([Self.products + "/cagent", "enforce", "--help"], timeout: 30)
        #expect(help.stdout.contains("USAGE: cagent enforce"), "\(help.stdout)")
        let missing = try Netlab.execute([Self.products + "/cagent", "enforce", "--", "/bin/true"], timeout: 30)
        #expect(missing.status == 125 && missing.stderr.contains("--profile"), "\(missing.status) \(missing.stderr)")
    }
}
