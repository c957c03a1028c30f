import CagentCore
import Testing
@testable import CagentProfile

@Suite("Profile resolution")
struct ResolverTests {
    static let everyKey = """
        # A profile that uses every key once.
        cagent: 1
        agent: every-key
        description: "Every key, once: with a colon"
        extends: [layer-base]
        network:
          domains:
            # The API.
            - Example.COM.          # trailing dot and case are normalized
            - "*.cdn.example.net"
            - "**.svc.example.org"
            - xn--bcher-kva.example
            - "!removed.example"
          endpoints: ["github.com:22/tcp", "[2001:DB8::1]:443/udp", "192.0.2.7:8443"]
          cidrs: [192.0.2.0/24, "2001:db8::/32", 198.51.100.7]
        filesystem:
          read: [/usr, ~/.gitconfig, "/opt//tools/"]
          write: [~/.cache/agent]
          hide:
            - ~/.secret
            - "!~/.base-secret"
        env:
          pass: [ANTHROPIC_API_KEY, "!BASE_VAR"]
        limits:
          memory: 2GiB   # enough for node
          processes: 512
          open_files: 4096
          tmp: 512MiB
          shm: 64MiB
          disk: 4GiB

        """

    static let layerBase = """
        cagent: 1
        description: the base layer
        network:
          domains: [removed.example, kept.example]
        filesystem:
          hide: [~/.base-secret, ~/.base-kept]
        env:
          pass: [BASE_VAR, LANGUAGE]
        limits:
          memory: 1GiB
          processes: 100

        """

    @Test("every key round-trips: file -> resolved -> show --resolved -> lint -> same profile")
    func roundTrip() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/layer-base.yaml", Self.layerBase)
        try sandbox.write("bundled/every-key.yaml", Self.everyKey)
        let resolved = try sandbox.resolver().resolve("every-key")
        let profile = resolved.profile

        #expect(profile.version == 1)
        #expect(profile.agent == "every-key")
        #expect(profile.description == "Every key, once: with a colon")
        #expect(profile.extends == ["layer-base"])
        #expect(profile.network.domains == ["kept.example", "example.com", "*.cdn.example.net", "**.svc.example.org",
                                            "xn--bcher-kva.example"])
        #expect(profile.network.endpoints == [Endpoint(host: "github.com", port: 22, proto: .tcp),
                                              Endpoint(host: "2001:db8::1", port: 443, proto: .udp),
                                              Endpoint(host: "192.0.2.7", port: 8443, proto: .tcp)])
        #expect(profile.network.cidrs == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"])
        #expect(profile.filesystem.read == ["/usr", "~/.gitconfig", "/opt/tools"])
        #expect(profile.filesystem.write == ["~/.cache/agent"])
        #expect(profile.filesystem.hide == ["~/.base-kept", "~/.secret"])
        #expect(profile.env.pass == ["LANGUAGE", "ANTHROPIC_API_KEY"])
        #expect(profile.limits == Limits(processes: 512, memoryBytes: 2 << 30, openFiles: 4096, tmpBytes: 512 << 20, shmBytes: 64 << 20,
                                             diskBytes: 4 << 30))
        #expect(resolved.warnings.isEmpty, "\(resolved.warnings)")

        // show --resolved writes every key; reading that output back gives the same profile.
        let shown = ProfileRenderer.render(resolved, name: "every-key")
        for key in ["cagent:", "agent:", "description:", "network:", "domains:", "endpoints:", "cidrs:", "filesystem:",
                    "read:", "write:", "hide:", "env:", "pass:", "limits:", "memory:", "processes:", "open_files:", "tmp:", "shm:"] {
            #expect(shown.contains("\n" + key) || shown.contains(" " + key), "\(key) missing")
        }
        let again = try sandbox.write("shown.yaml", shown)
        let reread = try sandbox.resolver().resolve(again)
        var expected = profile
        expected.extends = []
        #expect(reread.profile == expected)
        #expect(reread.warnings.isEmpty)
        // And rendering is stable.
        let twice = ProfileRenderer.render(reread, name: "every-key")
        #expect(twice.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
                == shown.split(separator: "\n").filter { !$0.hasPrefix("#") }.count)

        // show of one file is the file as written.
        let single = try sandbox.resolver().loadFile("every-key")
        #expect(single.source.text == Self.everyKey)
        #expect(single.source.sha256 == SHA256.hex(Array(Self.everyKey.utf8)))
    }

    @Test("show --resolved names the file and line of each entry and keeps its comments")
    func provenance() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/layer-base.yaml", Self.layerBase)
        try sandbox.write("bundled/every-key.yaml", Self.everyKey)
        let resolved = try sandbox.resolver().resolve("every-key")
        #expect(resolved.origin(of: .domains, "kept.example")?.description == "bundled/layer-base.yaml:4:30")
        #expect(resolved.origin(of: .domains, "example.com")?.description == "bundled/every-key.yaml:9:7")
        #expect(resolved.origin(of: .memory)?.description == "bundled/every-key.yaml:25:11")
        #expect(resolved.layers.map(\.display) == ["bundled/layer-base.yaml", "bundled/every-key.yaml"])

        let shown = ProfileRenderer.render(resolved).split(separator: "\n").map(String.init)
        let entry = try #require(shown.firstIndex(of: "    - example.com  # from bundled/every-key.yaml:9 -- trailing dot and case are normalized"))
        #expect(shown[entry - 1] == "    # The API.")
        #expect(shown.contains("    - kept.example  # from bundled/layer-base.yaml:4"))
        #expect(shown.contains("  memory: 2GiB  # from bundled/every-key.yaml:25 -- enough for node"))
        #expect(shown.contains("    - \"*.cdn.example.net\"  # from bundled/every-key.yaml:10"))
        #expect(shown.contains("    - \"[2001:db8::1]:443/udp\"  # from bundled/every-key.yaml:14"))
    }

    @Test("lists merge in order, later layers override single values, \"!x\" removes, with warnings")
    func mergeAndRemoval() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/base.yaml", "cagent: 1\nfilesystem:\n  read: [/usr, /etc/ssl]\n  hide: [~/.a]\nlimits:\n  processes: 100\n")
        try sandbox.write("bundled/agent.yaml", "cagent: 1\nagent: one\nextends: [base]\nfilesystem:\n  read: [/opt, /usr]\nlimits:\n  processes: 200\n")
        try sandbox.write("bundled/project.yaml", """
            cagent: 1
            extends: [agent, base]
            agent: two
            filesystem:
              read: ["!/etc/ssl", /srv, "!/nowhere"]
              hide: ["!~/.ssh"]

            """)
        let resolved = try sandbox.resolver().resolve("project")
        #expect(resolved.profile.agent == "two")
        #expect(resolved.profile.filesystem.read == ["/usr", "/opt", "/srv"])
        #expect(resolved.profile.filesystem.hide == ["~/.a"])
        #expect(resolved.profile.limits.processes == 200)
        // base is read once although two layers extend it; the merge order puts it first.
        #expect(resolved.layers.map(\.display) == ["bundled/base.yaml", "bundled/agent.yaml", "bundled/project.yaml"])
        #expect(resolved.warnings.map(\.location.description) == ["bundled/project.yaml:5:29", "bundled/project.yaml:6:10"])
        #expect(resolved.warnings[0].message == "removes '/nowhere' from filesystem.read, but no profile it extends lists it")
        #expect(resolved.warnings[1].message.contains("hidden by cagent's built-in list"))
    }

    @Test("a cycle in extends is an error naming the chain")
    func cycles() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/a.yaml", "cagent: 1\nextends: [b]\n")
        try sandbox.write("bundled/b.yaml", "cagent: 1\nextends: [./c.yaml]\n")
        try sandbox.write("bundled/c.yaml", "cagent: 1\nextends:\n  - a\n")
        let error = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("a") }
        #expect(error?.stage == "profile")
        #expect(error?.message == "bundled/c.yaml:3:5: extends cycle: bundled/a.yaml -> bundled/b.yaml -> bundled/c.yaml -> bundled/a.yaml")

        try sandbox.write("bundled/self.yaml", "cagent: 1\nextends: self\n")
        let selfError = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("self") }
        #expect(selfError?.message == "bundled/self.yaml:2:10: a profile cannot extend itself, and no other profile is named 'self'")
        try sandbox.write("bundled/loop.yaml", "cagent: 1\nextends: ./loop.yaml\n")
        let loopError = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("loop") }
        #expect(loopError?.message == "bundled/loop.yaml:2:10: extends cycle: bundled/loop.yaml -> bundled/loop.yaml")
    }

    @Test("look-up by name: the user's directory first, then bundled; unknown names list where they were searched")
    func byName() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/tool.yaml", "cagent: 1\nagent: bundled-tool\n")
        #expect(try sandbox.resolver().resolve("tool").profile.agent == "bundled-tool")
        #expect(try sandbox.resolver().resolve("tool").source.origin == .bundled)
        try sandbox.write("config/profiles/tool.yaml", "cagent: 1\nagent: user-tool\n")
        #expect(try sandbox.resolver().resolve("tool").profile.agent == "user-tool")
        #expect(try sandbox.resolver().resolve("tool").source.origin == .user)

        let error = #expect(throws: CagentError.self) { try sandbox.resolver().resolve("nothing") }
        #expect(error?.message == "command line: no profile named 'nothing'")
        #expect(error?.hint?.contains("searched config/profiles, bundled, ws/.cagent") == true, "\(error?.hint ?? "")")

        // A user profile can extend the bundled profile of the same name.
        try sandbox.write("config/profiles/tool.yaml", "cagent: 1\nextends: [tool]\nnetwork:\n  domains: [mine.example]\n")
        let layered = try sandbox.resolver().resolve("tool")
        #expect(layered.profile.agent == "bundled-tool")
        #expect(layered.layers.map(\.display) == ["bundled/tool.yaml", "config/profiles/tool.yaml"])

        let catalog = ProfileCatalog(resolver: sandbox.resolver()).entries()
        #expect(catalog.map { "\($0.name):\($0.origin.rawValue):\($0.shadowed)" } == ["tool:user:false", "tool:bundled:true"])
    }

    @Test("the bundled profiles lint clean and extend base")
    func bundledProfiles() throws {
        let sandbox = try ProfileSandbox()
        let resolver = sandbox.resolver(bundled: [repositoryProfiles()])
        for name in ["base", "github", "claude-code", "codex", "aider"] {
            let (resolved, diagnostics) = resolver.resolveCollecting(name)
            #expect(diagnostics.isEmpty, "\(name): \(diagnostics)")
            let profile = try #require(resolved?.profile)
            if name == "github" { continue }
            #expect(profile.filesystem.read.contains("/usr"), "\(name)")
            #expect(profile.limits.processes != nil, "\(name)")
        }
        let claude = try resolver.resolve("claude-code").profile
        #expect(claude.network.domains.contains("api.anthropic.com"))
        #expect(claude.network.endpoints.contains(Endpoint(host: "github.com", port: 22, proto: .tcp)))
        #expect(try resolver.resolve("codex").profile.network.domains.contains("api.openai.com"))
    }

    @Test("diff lists what was added, removed and changed, with origins")
    func diff() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("bundled/a.yaml", "cagent: 1\nnetwork:\n  domains: [one.example, two.example]\nlimits:\n  memory: 1GiB\n")
        try sandbox.write("bundled/b.yaml", "cagent: 1\nnetwork:\n  domains: [two.example, three.example]\nlimits:\n  memory: 2GiB\n")
        let resolver = sandbox.resolver()
        let lines = ProfileDiff.lines(from: try resolver.resolve("a"), to: try resolver.resolve("b"))
        #expect(lines == ["- network.domains: one.example  (bundled/a.yaml:3)",
                          "+ network.domains: three.example  (bundled/b.yaml:3)",
                          "~ limits.memory: 1GiB -> 2GiB  (bundled/b.yaml:5)"])
        #expect(ProfileDiff.lines(from: try resolver.resolve("a"), to: try resolver.resolve("a")).isEmpty)
    }
}
