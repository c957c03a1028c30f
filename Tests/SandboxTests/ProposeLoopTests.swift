import CagentCore
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The loop, end to end with the real binaries in the netlab: `cagent learn` a small shell workload,
/// `cagent profile propose` from that session, then `cagent enforce --profile <proposal>` runs the same
/// workload with no denial — and a variant that reaches one more domain is refused, the refusal naming it.
/// The positive control of "no denial" is that variant (the same run does report denials when there are some);
/// the control of "the proposal is what made it work" is the same workload under enforce without the
/// proposal's entries (`extends: [base]` alone), which fails.
///
/// Part of the serialized "cagent learn" suite: learn mode overlays user-writable host directories under /opt,
/// so two learn tests at once would see (and race with) each other's.
extension LearnCommandTests {
    static let proposeTools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "python3"]

    /// A host file outside home and workspace the workload needs (a read entry), a name on port 80 (a domain
    /// entry), a direct IP on another port (an endpoint entry).
    static func proposeWorkload(data: String, extra: String = "") -> String {
        """
        set -e
        cd "$(dirname "$0")"
        cat README > /dev/null
        cat "\(data)/settings" > /dev/null
        cat "\(data)/more" "\(data)/third" > /dev/null
        curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/
        curl -sS -m 5 -o /dev/null -w 'static %{http_code}\\n' http://\(NetlabAddresses.web2)/
        \(extra)
        echo workload-done
        """
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: proposeTools), "needs root, namespaces and the netlab's tools"))
    func learnProposeEnforce() throws {
        try Requirements.root()
        for tool in Self.proposeTools { try Requirements.tool(tool) }
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let data = "/opt/cagent-propose-test-" + (world.root.split(separator: "-").last.map(String.init) ?? "x")
        defer { try? FileManager.default.removeItem(atPath: data) }
        // Root-owned (readable by the agent user, not writable): plain host data, no overlay in learn mode.
        for name in ["settings", "more", "third"] { try world.write(data + "/" + name, "\(name)\n", owner: 0) }
        try world.write(world.workspace + "/work.sh", Self.proposeWorkload(data: data))
        let database = world.root + "/learn.db"

        // 1. Learn.
        let cgroupMount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"$@\""
        let learned = try lab.run(in: .host, ["/bin/sh", "-c", cgroupMount, "sh", Products.cagent, "learn", "--quiet",
                                              "--user", String(SandboxFixture.agentUID), "--home", world.home,
                                              "--state-dir", world.state, "--db", database, "--workspace", world.workspace,
                                              "--", "/bin/sh", world.workspace + "/work.sh"], timeout: 120)
        #expect(learned.status == 0, "cagent learn failed: \(learned.stderr)")
        #expect(learned.stdout.contains("www 200") && learned.stdout.contains("static 200") && learned.stdout.contains("workload-done"),
                "\(learned.stdout)\n\(learned.stderr)")
        // The summary names the next step.
        #expect(learned.stderr.contains("propose a profile from it: cagent profile propose --session "), "\(learned.stderr)")

        // 2. Propose (the latest learn session by default), to a file; never over an existing one.
        let proposal = world.root + "/proposal.yaml"
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        let proposed = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                           "-o", proposal], timeout: 60, environment: environment)
        #expect(proposed.status == 0, "propose failed: \(proposed.stderr)")
        let text = world.read(proposal) ?? ""
        #expect(text.contains("\n    - www.allowed.test\n"), "\(text)")
        #expect(text.contains("- \"\(NetlabAddresses.web2):80/tcp\""), "\(text)")
        #expect(text.contains("\n    - \(data)\n"), "three files of one directory: the directory\n\(text)")
        #expect(text.contains("# RISK: direct IP"), "\(text)")
        #expect(!text.contains("api.allowed.test"), "\(text)")
        #expect(!text.contains("- /opt\n") && !text.contains(".ssh"), "\(text)")
        let again = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                        "-o", proposal], timeout: 60, environment: environment)
        #expect(again.status != 0 && again.stderr.contains("exists"), "\(again.stderr)")
        // Stable: the same session gives the same bytes.
        let stdout = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace],
                                        timeout: 60, environment: environment)
        #expect(stdout.stdout == text)
        // Under sudo, -o is written with the invoking user's rights: in a directory of theirs the file is theirs;
        // where only root may write, refused; a symlink planted at the name is replaced (--force), never followed.
        var sudo = environment
        sudo["SUDO_UID"] = String(SandboxFixture.agentUID)
        let mine = world.workspace + "/proposal.yaml"
        let asUser = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                         "-o", mine], timeout: 60, environment: sudo)
        var info = stat()
        #expect(asUser.status == 0 && stat(mine, &info) == 0 && info.st_uid == SandboxFixture.agentUID, "\(asUser.stderr)")
        let rootOnly = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                           "-o", world.root + "/root-only.yaml"], timeout: 60, environment: sudo)
        #expect(rootOnly.status != 0 && !FileSystem.exists(world.root + "/root-only.yaml"), "\(rootOnly.stderr)")
        let victim = world.root + "/victim"
        try "untouched\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let link = world.workspace + "/link.yaml"
        #expect(symlink(victim, link) == 0)
        let replaced = try Netlab.execute([Products.cagent, "profile", "propose", "--db", database, "--workspace", world.workspace,
                                           "-o", link, "--force"], timeout: 60, environment: sudo)
        #expect(replaced.status == 0 && world.read(victim) == "untouched\n" && world.read(link) == text, "\(replaced.stderr)")
        #expect(lstat(link, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG)

        let lint = try Netlab.execute([Products.cagent, "profile", "lint", "--strict", proposal], timeout: 30, environment: environment)
        #expect(lint.status == 0 && lint.stdout.hasPrefix("ok "), "\(lint.stdout)\(lint.stderr)")

        // 3. Enforce with the proposal: the same workload, no denial.
        func enforce(profile: String, script: String) throws -> Netlab.Output {
            try world.write(world.workspace + "/run.sh", script)
            var environment = ProcessInfo.processInfo.environment
            environment["HOME"] = world.home
            environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
            return try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", world.workspace + "/run.sh"],
                timeout: 90, environment: environment)
        }
        func denials(_ output: Netlab.Output) -> [String] {
            output.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("cagent: refused") || $0.hasPrefix("cagent: blocked") }
        }
        let same = try enforce(profile: proposal, script: Self.proposeWorkload(data: data))
        #expect(same.status == 0, "the proposal did not let the workload run: \(same.stdout)\n\(same.stderr)")
        #expect(same.stdout.contains("www 200") && same.stdout.contains("static 200") && same.stdout.contains("workload-done"),
                "\(same.stdout)\n\(same.stderr)")
        #expect(denials(same).isEmpty, "\(same.stderr)")

        // 4. One more domain: refused, and the refusal names it (the control that denials are reported).
        let more = try enforce(profile: proposal, script: Self.proposeWorkload(
            data: data, extra: "curl -sS -m 5 -o /dev/null http://api.allowed.test/ 2>/dev/null || echo api-refused"))
        #expect(more.stdout.contains("api-refused") && more.stdout.contains("workload-done"), "\(more.stdout)\n\(more.stderr)")
        #expect(denials(more).contains { $0.hasPrefix("cagent: refused DNS api.allowed.test") }, "\(more.stderr)")

        // 5. Control: without the proposal's entries the same workload fails.
        let bare = world.root + "/bare.yaml"
        try "cagent: 1\nextends: [base]\n".write(toFile: bare, atomically: true, encoding: .utf8)
        let without = try enforce(profile: bare, script: Self.proposeWorkload(data: data))
        #expect(without.status != 0 && !without.stdout.contains("workload-done"), "\(without.stdout)\n\(without.stderr)")
    }
}
