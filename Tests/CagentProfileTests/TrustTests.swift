import CagentCore
import Foundation
import Testing
@testable import CagentProfile

/// A repository, or the agent, must not write its own policy (H22).
@Suite("Profile trust")
struct TrustTests {
    @Test("a workspace profile found by name is refused until trusted, and again once it changes")
    func workspaceByName() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/base.yaml", "cagent: 1\n")
        let file = try sandbox.write("ws/.cagent/project.yaml", "cagent: 1\nextends: [base]\nnetwork:\n  domains: [evil.example]\n")

        let refused = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("project") }
        #expect(refused?.stage == "profile")
        #expect(refused?.message == "command line: 'ws/.cagent/project.yaml' is inside the workspace and not trusted: "
                + "a repository, or the agent, must not choose its own policy")
        #expect(refused?.hint == "review it, then run `cagent profile trust ws/.cagent/project.yaml`, or name it by path")

        // Lint reads it (checking applies no policy) and says enforce would refuse it.
        let (linted, warnings) = sandbox.resolver(policy: .warn).resolveCollecting("project")
        #expect(linted != nil)
        #expect(warnings.first?.message.hasSuffix("; enforce will refuse it") == true)

        let store = sandbox.resolver().trustStore
        let loaded = try sandbox.resolver().loadFile(file)
        try store.trust(path: loaded.source.path, sha256: loaded.source.sha256)
        #expect(try sandbox.resolver().resolve("project").profile.network.domains == ["evil.example"])
        #expect(try sandbox.resolver().resolve("project").source.origin == .workspace)

        // Trust is for the exact content: an edit (by the agent, say) is refused again.
        try sandbox.write("ws/.cagent/project.yaml", "cagent: 1\nnetwork:\n  domains: [\"**.example\"]\n")
        let changed = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("project") }
        #expect(changed?.message.contains("changed since it was trusted") == true, "\(changed?.message ?? "")")
        #expect(changed?.hint?.contains("cagent profile trust") == true)

        let stored = try String(contentsOfFile: sandbox.config + "/trusted-profiles", encoding: .utf8)
        #expect(stored.contains("sha256:\(loaded.source.sha256) \(loaded.source.path)\n"))
    }

    @Test("a workspace profile named by path is used, with a warning; what it extends in the workspace needs trust")
    func workspaceByPath() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/base.yaml", "cagent: 1\n")
        let explicit = try sandbox.write("ws/team.yaml", "cagent: 1\nextends: [base]\n")
        let resolved = try sandbox.resolver().resolve(explicit)
        #expect(resolved.warnings.first?.message.hasPrefix("using 'ws/team.yaml' from the workspace because it was named by path") == true)

        let chained = try sandbox.write("ws/project.yaml", "cagent: 1\nextends:\n  - ./team.yaml\n")
        let refused = #expect(throws: CagentError.self) { try sandbox.resolver().resolve(chained) }
        #expect(refused?.message == "ws/project.yaml:3:5: 'ws/team.yaml' is inside the workspace and not trusted: "
                + "a repository, or the agent, must not choose its own policy")
    }

    @Test("extends by name never reaches the workspace; symlinks do not launder workspace files")
    func noShadowing() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("ws/.cagent/base.yaml", "cagent: 1\nnetwork:\n  domains: [evil.example]\n")
        try sandbox.write("bundled/agent.yaml", "cagent: 1\nextends: [base]\n")
        let error = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("agent") }
        #expect(error?.message == "bundled/agent.yaml:2:11: no profile named 'base'")

        let target = try sandbox.write("ws/planted.yaml", "cagent: 1\n")
        #expect(symlink(target, sandbox.bundled + "/linked.yaml") == 0)
        let linked = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("linked") }
        #expect(linked?.message.contains("is inside the workspace and not trusted") == true)

        // cagent's data directory (shadow homes) is written by the agent too.
        try sandbox.write("data/homes/x/p.yaml", "cagent: 1\n")
        #expect(sandbox.resolver().origin(ofRealPath: sandbox.root + "/data/homes/x/p.yaml") == .workspace)
    }
}
