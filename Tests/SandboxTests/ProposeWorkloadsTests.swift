import CagentCore
import Foundation
import Netlab
import Testing

/// The loop (learn -> propose -> enforce) for more than one kind of workload, and the ablation of a proposal:
/// every entry it holds is needed (or says why it is optional). The shell workload's loop is
/// `learnProposeEnforce` (ProposeLoopTests.swift); here a Python one and git over HTTP plus a package
/// download, each with a variant that reaches one thing more and is stopped, the refusal naming it.
///
/// Part of the serialized "cagent learn" suite (learn mode overlays user-writable host directories under /opt).
extension LearnCommandTests {
    static let loopTools = proposeTools + ["git", "tar"]

    /// A lab, a sandbox fixture, a root-owned data directory under /opt (plain host data, no overlay in learn
    /// mode), and the three steps of the loop as the user runs them.
    final class LoopWorld {
        let lab: Netlab
        let world: SandboxFixture
        let data: String
        var database: String { world.root + "/learn.db" }

        init() throws {
            lab = try Netlab()
            do { world = try SandboxFixture() } catch { lab.shutdown(); throw error }
            data = "/opt/cagent-loop-test-" + (world.root.split(separator: "-").last.map(String.init) ?? "x")
        }

        func remove() {
            lab.shutdown(); world.remove()
            try? FileManager.default.removeItem(atPath: data)
        }

        var environment: [String: String] {
            var environment = ProcessInfo.processInfo.environment
            environment["HOME"] = world.home
            environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
            return environment
        }

        func learn(_ command: [String]) throws -> Netlab.Output {
            let cgroupMount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"$@\""
            return try lab.run(in: .host, ["/bin/sh", "-c", cgroupMount, "sh", Products.cagent, "learn", "--quiet",
                                           "--user", String(SandboxFixture.agentUID), "--home", world.home,
                                           "--state-dir", world.state, "--db", database, "--workspace", world.workspace,
                                           "--"] + command, timeout: 120)
        }

        func propose(to file: String) throws -> Netlab.Output {
            try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                "-o", file, "--force"], timeout: 60, environment: environment)
        }

        func enforce(profile: String, _ command: [String]) throws -> Netlab.Output {
            try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4, "--"] + command,
                timeout: 90, environment: environment)
        }

        static func denials(_ output: Netlab.Output) -> [String] {
            output.stderr.split(separator: "\n").map(String.init)
                .filter { $0.hasPrefix("cagent: refused") || $0.hasPrefix("cagent: blocked") }
        }

        /// A git repository (git's dumb HTTP) and a package, each served over plain HTTP from an address of its
        /// own in the lab's internet, named `git.allowed.test` and `pkgs.allowed.test` by the lab's DNS.
        /// (Own addresses: with both names on one address, learn names the flows after one of them only.)
        func serveGitAndPackage() throws {
            let source = world.root + "/source"
            let git = (address: "203.0.113.30", directory: world.root + "/served-git")
            let package = (address: "203.0.113.31", directory: world.root + "/served-package")
            let script = """
                set -e
                mkdir -p "\(git.directory)" "\(package.directory)" "\(source)/project" "\(source)/tool/bin"
                cd "\(source)/project"
                echo 'hello' > README
                git init -q -b main . && git add . && git -c user.name=t -c user.email=t@allowed.test commit -qm one
                git clone -q --bare . "\(git.directory)/project.git"
                git -C "\(git.directory)/project.git" update-server-info
                printf '#!/bin/sh\\necho tool-1.0\\n' > "\(source)/tool/bin/tool"; chmod 755 "\(source)/tool/bin/tool"
                tar -C "\(source)" -czf "\(package.directory)/tool.tgz" tool
                """
            let built = try Netlab.execute(["/bin/sh", "-c", script], timeout: 30)
            guard built.succeeded else { throw CagentError(stage: "test", "serving git: \(built.stderr)") }
            for server in [git, package] {
                try lab.run(in: .internet, ["ip", "addr", "add", server.address + "/32", "dev", "lo"])
                try lab.spawn(in: .internet, ["python3", "-u", "-m", "http.server", "--bind", server.address,
                                              "--directory", server.directory, "80"], readyOnStdout: "Serving HTTP")
            }
            try lab.setRecords(["git.allowed.test": git.address, "pkgs.allowed.test": package.address])
        }
    }

    /// One entry of a proposal's text: the `    - value` line and the comment lines just above it.
    struct ProposalEntry {
        var value: String
        var comments: [String]
        var lines: Range<Int>
        var optional: Bool { comments.contains { $0.contains("# optional:") } }
    }

    static func entries(of text: String) -> [ProposalEntry] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var out: [ProposalEntry] = []
        for (index, line) in lines.enumerated() where line.hasPrefix("    - ") {
            var start = index
            while start > 0 && lines[start - 1].hasPrefix("    # ") { start -= 1 }
            out.append(ProposalEntry(value: String(line.dropFirst(6)), comments: Array(lines[start..<index]), lines: start..<(index + 1)))
        }
        return out
    }

    /// The proposal without one entry; a list or section left empty goes too (an empty key is not a list).
    static func removing(_ entry: ProposalEntry, from text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeSubrange(entry.lines)
        func isKey(_ line: String, indent: Int) -> Bool {
            let prefix = String(repeating: " ", count: indent)
            return line.hasPrefix(prefix) && !line.hasPrefix(prefix + " ") && !line.hasPrefix(prefix + "#") && line.hasSuffix(":")
        }
        for indent in [2, 0] {
            var index = 0
            while index < lines.count {
                if isKey(lines[index], indent: indent) {
                    let body = lines[(index + 1)...].prefix { $0.isEmpty || $0.hasPrefix(String(repeating: " ", count: indent + 2)) }
                    let content = body.contains { !$0.isEmpty && !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
                    if !content { lines.remove(at: index); continue }
                }
                index += 1
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Ablation: each entry of the proposal removed in turn, the workload enforced again. Every entry must be
    /// needed (the replay fails without it) or say in its comment that it is optional and why. Returns one
    /// line per entry (for the test's record) and expects as it goes.
    static func ablate(_ loop: LoopWorld, proposal: String, command: [String], succeeded: (Netlab.Output) -> Bool) throws -> [String] {
        let text = loop.world.read(proposal) ?? ""
        let all = entries(of: text)
        #expect(!all.isEmpty, "no entries to ablate:\n\(text)")
        // Control first: the whole proposal does let it run (else every removal "fails" for nothing).
        let whole = try loop.enforce(profile: proposal, command)
        #expect(succeeded(whole), "\(whole.stdout)\n\(whole.stderr)")
        guard succeeded(whole) else { return [] }
        var record: [String] = []
        for (index, entry) in all.enumerated() {
            let ablated = loop.world.root + "/ablated-\(index).yaml"
            try removing(entry, from: text).write(toFile: ablated, atomically: true, encoding: .utf8)
            // The replay must fail for the missing entry, never for a profile the removal broke.
            let lint = try Netlab.execute([Products.cagent, "profile", "lint", ablated], timeout: 30, environment: loop.environment)
            #expect(lint.status == 0, "ablating \(entry.value) broke the profile: \(lint.stdout)\(lint.stderr)")
            let output = try loop.enforce(profile: ablated, command)
            let needed = !succeeded(output)
            record.append("\(entry.value): \(needed ? "needed" : entry.optional ? "optional (says so)" : "UNUSED")")
            #expect(needed || entry.optional,
                    "the proposal holds \(entry.value), which the workload does not need:\n\(entry.comments.joined(separator: "\n"))\n\(output.stdout)\n\(output.stderr)")
        }
        return record
    }

    /// Python: a host file read, a name connected to with urllib, a file written in the workspace.
    static func pythonWorkload(data: String, extra: String = "") -> String {
        """
        import pathlib, urllib.request
        settings = pathlib.Path("\(data)/settings").read_text()
        body = urllib.request.urlopen("http://api.allowed.test/", timeout=5).read().decode()
        pathlib.Path("out.txt").write_text(settings + body)
        print("python", "netlab-web" in body, flush=True)
        \(extra)
        print("workload-done", flush=True)
        """
    }

    /// git over HTTP and a package download, unpacked and run.
    static func gitWorkload(extra: String = "") -> String {
        """
        set -e
        cd "$(dirname "$0")"
        rm -rf project tool tool.tgz
        git clone -q http://git.allowed.test/project.git project
        echo "git $(git -C project log --oneline | wc -l) commit"
        curl -sS -m 5 -o tool.tgz http://pkgs.allowed.test/tool.tgz
        tar xzf tool.tgz && ./tool/bin/tool
        \(extra)
        echo workload-done
        """
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: loopTools), "needs root, namespaces and the netlab's tools"))
    func loopPythonWorkload() throws {
        try Requirements.root()
        for tool in Self.loopTools { try Requirements.tool(tool) }
        let loop = try LoopWorld(); defer { loop.remove() }
        let world = loop.world
        try world.write(loop.data + "/settings", "settings\n", owner: 0)
        let other = loop.data + "-other/secret.txt"
        try world.write(other, "other\n", owner: 0)
        defer { try? FileManager.default.removeItem(atPath: loop.data + "-other") }
        let script = world.workspace + "/work.py"
        try world.write(script, Self.pythonWorkload(data: loop.data))

        let learned = try loop.learn(["/usr/bin/python3", script])
        #expect(learned.status == 0 && learned.stdout.contains("python True") && learned.stdout.contains("workload-done"),
                "\(learned.stdout)\n\(learned.stderr)")
        let proposal = world.root + "/proposal.yaml"
        let proposed = try loop.propose(to: proposal)
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let text = world.read(proposal) ?? ""
        #expect(text.contains("\n    - api.allowed.test\n") && text.contains("\n    - \(loop.data)/settings\n"), "\(text)")

        let same = try loop.enforce(profile: proposal, ["/usr/bin/python3", script])
        #expect(same.status == 0 && same.stdout.contains("python True") && same.stdout.contains("workload-done"),
                "\(same.stdout)\n\(same.stderr)")
        #expect(LoopWorld.denials(same).isEmpty, "\(same.stderr)")

        // One more path (a host file outside the proposal): not there for the workload, the error names it.
        try world.write(script, Self.pythonWorkload(data: loop.data, extra: "print(open(\"\(other)\").read())"))
        let more = try loop.enforce(profile: proposal, ["/usr/bin/python3", script])
        #expect(more.status != 0 && more.stdout.contains("python True") && !more.stdout.contains("workload-done"),
                "\(more.stdout)\n\(more.stderr)")
        #expect(more.stderr.contains("No such file or directory: '\(other)'"), "\(more.stderr)")
        // Control: the same read works where the file is visible (learn mode sees the host's files).
        let control = try loop.learn(["/usr/bin/python3", script])
        #expect(control.status == 0 && control.stdout.contains("other") && control.stdout.contains("workload-done"),
                "\(control.stdout)\n\(control.stderr)")

        // Ablation: nothing in the proposal is unused.
        try world.write(script, Self.pythonWorkload(data: loop.data))
        let record = try Self.ablate(loop, proposal: proposal, command: ["/usr/bin/python3", script]) {
            $0.status == 0 && $0.stdout.contains("workload-done")
        }
        print("ablation (python):", record.joined(separator: "; "))
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: loopTools), "needs root, namespaces and the netlab's tools"))
    func loopGitAndPackageWorkload() throws {
        try Requirements.root()
        for tool in Self.loopTools { try Requirements.tool(tool) }
        let loop = try LoopWorld(); defer { loop.remove() }
        let world = loop.world
        try loop.serveGitAndPackage()
        let script = world.workspace + "/work.sh"
        try world.write(script, Self.gitWorkload())

        let learned = try loop.learn(["/bin/sh", script])
        #expect(learned.status == 0 && learned.stdout.contains("git 1 commit") && learned.stdout.contains("tool-1.0")
                && learned.stdout.contains("workload-done"), "\(learned.stdout)\n\(learned.stderr)")
        let proposal = world.root + "/proposal.yaml"
        let proposed = try loop.propose(to: proposal)
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let text = world.read(proposal) ?? ""
        #expect(text.contains("\n    - git.allowed.test\n") && text.contains("\n    - pkgs.allowed.test\n"), "\(text)")

        let same = try loop.enforce(profile: proposal, ["/bin/sh", script])
        #expect(same.status == 0 && same.stdout.contains("git 1 commit") && same.stdout.contains("tool-1.0")
                && same.stdout.contains("workload-done"), "\(same.stdout)\n\(same.stderr)")
        #expect(LoopWorld.denials(same).isEmpty, "\(same.stderr)")

        // One more domain (the same repository from another name): refused, the refusal naming it.
        try world.write(script, Self.gitWorkload(
            extra: "git clone -q http://api.allowed.test/project.git other 2>/dev/null || echo other-refused"))
        let more = try loop.enforce(profile: proposal, ["/bin/sh", script])
        #expect(more.stdout.contains("other-refused") && more.stdout.contains("workload-done"), "\(more.stdout)\n\(more.stderr)")
        #expect(LoopWorld.denials(more).contains { $0.hasPrefix("cagent: refused DNS api.allowed.test") }, "\(more.stderr)")

        // Ablation: nothing in the proposal is unused.
        try world.write(script, Self.gitWorkload())
        let record = try Self.ablate(loop, proposal: proposal, command: ["/bin/sh", script]) {
            $0.status == 0 && $0.stdout.contains("workload-done")
        }
        print("ablation (git and package):", record.joined(separator: "; "))
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: proposeTools), "needs root, namespaces and the netlab's tools"))
    func ablationShellWorkload() throws {
        try Requirements.root()
        for tool in Self.proposeTools { try Requirements.tool(tool) }
        let loop = try LoopWorld(); defer { loop.remove() }
        let world = loop.world
        for name in ["settings", "more", "third"] { try world.write(loop.data + "/" + name, "\(name)\n", owner: 0) }
        let script = world.workspace + "/work.sh"
        try world.write(script, Self.proposeWorkload(data: loop.data))
        let learned = try loop.learn(["/bin/sh", script])
        #expect(learned.status == 0 && learned.stdout.contains("workload-done"), "\(learned.stdout)\n\(learned.stderr)")
        let proposal = world.root + "/proposal.yaml"
        #expect(try loop.propose(to: proposal).status == 0)
        let text = world.read(proposal) ?? ""
        // The three kinds of entry are there to remove: a domain, an endpoint, a directory read.
        #expect(text.contains("- www.allowed.test") && text.contains(":80/tcp\"") && text.contains("- \(loop.data)\n"), "\(text)")
        let record = try Self.ablate(loop, proposal: proposal, command: ["/bin/sh", script]) {
            $0.status == 0 && $0.stdout.contains("workload-done")
        }
        print("ablation (shell):", record.joined(separator: "; "))
    }
}
