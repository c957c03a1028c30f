import CagentCore
import Foundation
import Netlab
import Testing
@testable import CagentProfile

/// The profile library in profiles/: every file lints clean, builds on base, cites its sources and
/// keeps base's secrets hidden.
@Suite("bundled profile library")
struct BundledProfileTests {
    static var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: repositoryProfiles())) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    static let agents = ["claude-code", "codex", "aider", "gemini-cli", "opencode", "amp", "crush", "cursor-agent",
                         "qwen-code", "goose", "copilot-cli"]

    @Test("every bundled profile resolves without a diagnostic; the agent profiles extend base and github")
    func everyProfileLintsClean() throws {
        let names = Self.names
        #expect(Set(Self.agents + ["base", "github"]).isSubset(of: Set(names)), "\(names)")
        let sandbox = try ProfileSandbox()
        let resolver = sandbox.resolver(bundled: [repositoryProfiles()])
        for name in names {
            let (resolved, diagnostics) = resolver.resolveCollecting(name)
            #expect(diagnostics.isEmpty, "\(name): \(diagnostics)")
            let profile = try #require(resolved?.profile, "\(name)")
            guard Self.agents.contains(name) else { continue }
            #expect(profile.agent == name, "\(name)")
            #expect(resolved?.layers.map { ($0.display as NSString).lastPathComponent } == ["base.yaml", "github.yaml", name + ".yaml"], "\(name)")
            #expect(!profile.network.domains.isEmpty, "\(name) allows no domain")
        }
    }

    @Test("no bundled profile un-hides a secret: base's hide list survives, nothing hidden is bound")
    func secretsStayHidden() throws {
        let sandbox = try ProfileSandbox()
        let resolver = sandbox.resolver(bundled: [repositoryProfiles()])
        let base = try resolver.resolve("base").profile
        let hidden = DefaultHidden.home + base.filesystem.hide
        #expect(hidden.count > DefaultHidden.home.count)   // base adds to the list: the check below has something to check
        for name in Self.names {
            let profile = try resolver.resolve(name).profile
            if name != "github" {
                let missing = base.filesystem.hide.filter { !profile.filesystem.hide.contains($0) }
                #expect(missing.isEmpty, "\(name) removes \(missing) from base's hide list")
            }
            for path in profile.filesystem.read + profile.filesystem.write {
                let exposed = hidden.filter { path == $0 || path.hasPrefix($0 + "/") || $0.hasPrefix(path + "/") }
                #expect(exposed.isEmpty, "\(name) binds \(path), which exposes \(exposed)")
            }
        }
    }

    @Test("every entry of an agent profile cites its source in a comment")
    func entriesCiteSources() throws {
        for name in Self.agents {
            let text = try String(contentsOfFile: repositoryProfiles() + "/\(name).yaml", encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (index, line) in lines.enumerated() where line.hasPrefix("    - ") {
                // The comment lines directly above the entry (a block of entries shares one), or a trailing remark.
                var above = index - 1
                while above >= 0, lines[above].hasPrefix("    - ") { above -= 1 }
                let comment = above >= 0 && lines[above].trimmingCharacters(in: .whitespaces).hasPrefix("#")
                    ? lines[..<(above + 1)].reversed().prefix { $0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }.joined(separator: " ")
                    : ""
                let cites = comment.contains("(") || line.contains("#")
                #expect(cites, "\(name).yaml:\(index + 1): '\(line)' has no source comment")
            }
        }
    }

    @Test("`cagent profile lint` with no argument lints every bundled profile",
          .enabled(if: ProfileCLITests.mayRun, "needs `swift build` to have built .build/debug/cagent"))
    func lintCommand() throws {
        let sandbox = try ProfileSandbox()
        let result = try ProfileCLITests.run(["profile", "lint", "--strict"], in: sandbox, directory: sandbox.workspace)
        #expect(result.status == 0, "\(result.output)")
        for name in Self.names {
            #expect(result.output.contains("ok " + repositoryProfiles() + "/\(name).yaml") || result.output.contains("ok profiles/\(name).yaml")
                    || result.output.contains("/\(name).yaml ("), "\(name): \(result.output)")
        }
        #expect(!result.output.contains("FAILED"))
    }
}
