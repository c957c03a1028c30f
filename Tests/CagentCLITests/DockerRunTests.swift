import CagentCLI
import CagentProfile
import Testing

/// `cagent docker run`'s command line (pure; the real run is DockerContainerTests).
@Suite struct DockerRunTests {
    @Test func hiddenPathsAreCoveredAndCagentIsTheEntrypoint() {
        let run = DockerRun(image: "cagent:latest", workspace: "/home/u/project", homeVolume: "cagent-home-x",
                            profileFile: "/home/u/.local/share/cagent/docker/x.yaml",
                            hidden: [.init(path: "/home/agent/.ssh", isDirectory: true), .init(path: "/workspace/.env", isDirectory: false)],
                            interactive: false, extra: ["--dns=1.1.1.1"], command: ["claude", "--flag"])
        let arguments = run.arguments
        #expect(Array(arguments.prefix(5)) == ["run", "--rm", "-i", "--cap-add", "NET_ADMIN"])
        #expect(arguments.contains("type=bind,source=/home/u/project,target=/workspace"))
        #expect(arguments.contains("type=volume,source=cagent-home-x,target=/home/agent"))
        #expect(arguments.contains("type=bind,source=/home/u/.local/share/cagent/docker/x.yaml,target=/etc/cagent/profile.yaml,readonly"))
        #expect(arguments.contains("type=tmpfs,target=/home/agent/.ssh,tmpfs-size=4096,tmpfs-mode=0555"))
        #expect(arguments.contains("type=bind,source=/dev/null,target=/workspace/.env,readonly"))
        #expect(Array(arguments.suffix(10)) == ["--entrypoint", "/usr/local/bin/cagent", "cagent:latest", "enforce", "--in-container",
                                                 "--profile", "/etc/cagent/profile.yaml", "--", "claude", "--flag"])
        // The extra argument comes before the image (docker would pass it to cagent otherwise).
        #expect(arguments.firstIndex(of: "--dns=1.1.1.1")! < arguments.firstIndex(of: "cagent:latest")!)
    }

    @Test func homeEntriesBecomeFilesOrDirectories() {
        var profile = Profile(agent: "x")
        profile.filesystem.hide = ["~/.vault-token", "~/.config/gcloud", "~/.bash_history", "~/.terraform.d/credentials.tfrc.json", "/etc/secret"]
        let hidden = DockerRun.hiddenHomePaths(profile)
        func kind(_ path: String) -> Bool? { hidden.first { $0.path == path }?.isDirectory }
        #expect(kind("/home/agent/.ssh") == true)
        #expect(kind("/home/agent/.netrc") == false)
        #expect(kind("/home/agent/.vault-token") == false)
        #expect(kind("/home/agent/.bash_history") == false)
        #expect(kind("/home/agent/.terraform.d/credentials.tfrc.json") == false)
        #expect(kind("/home/agent/.config/gcloud") == true)
        #expect(kind("/etc/secret") == true)
        // What the host has at the same place decides when it exists.
        let fromHost = DockerRun.hiddenHomePaths(profile, hostHome: "/h") { $0 == "/h/.config/gcloud" ? false : nil }
        #expect(fromHost.first { $0.path == "/home/agent/.config/gcloud" }?.isDirectory == false)
    }

    @Test func learnMountsTheStateAndKeepsPtraceForCagent() {
        let run = DockerRun(image: "img", workspace: "/w", homeVolume: "h", profileFile: "/p.yaml", hidden: [], interactive: true,
                            extra: [], command: ["agent"], learnState: "/home/u/state")
        let arguments = run.arguments
        #expect(arguments.contains("-it"))
        #expect(arguments.contains("SYS_PTRACE") && arguments.contains("type=bind,source=/home/u/state,target=/state"))
        #expect(Array(arguments.suffix(9)) == ["img", "learn", "--in-container", "--agent", "/etc/cagent/profile.yaml", "--db", "/state/cagent.db",
                                                "--", "agent"])
    }

    @Test func quoting() {
        #expect(DockerRun.shellQuoted("type=bind,source=/a") == "type=bind,source=/a")
        #expect(DockerRun.shellQuoted("it's") == "'it'\\''s'")
        #expect(DockerRun.shellQuoted("") == "''")
    }
}
