import CagentCore
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Learning from denials (what AppArmor's aa-logprof does), end to end with the real binaries in the netlab:
/// `cagent enforce` under a profile that allows www.allowed.test runs a workload that also fetches
/// api.allowed.test — exactly one denial, whose live line ends with the command that proposes allowing it.
/// The session is in the store (`cagent sessions`, `cagent report`); that command, run as printed with -o,
/// adds exactly that entry; enforce with the updated profile runs the workload with no denial. The control of
/// "no denial" is the first run under the original profile (the same workload, denied).
@Suite(.serialized) struct DenialLoopTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "python3"]

    static let workload = """
    curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/
    curl -sS -m 5 -o /dev/null -w 'api %{http_code}\\n' http://api.allowed.test/ 2>/dev/null || echo api-refused
    echo workload-done
    """

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"))
    func enforceDenialProposeEnforce() throws {
        try Requirements.root()
        for tool in Self.tools { try Requirements.tool(tool) }
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/p.yaml"
        let original = "cagent: 1\nextends: [base]\nnetwork:\n  domains:\n    - www.allowed.test\n"
        try original.write(toFile: profile, atomically: true, encoding: .utf8)
        // The store is the session user's (`--user`): its spool is written with their rights, so its directory is theirs.
        try world.makeDirectory(world.root + "/store")
        let database = world.root + "/store/enforce.db"
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        try world.write(world.workspace + "/run.sh", Self.workload)

        func enforce(_ profile: String) throws -> Netlab.Output {
            try Netlab.execute(
                ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profile,
                 "--user", String(SandboxFixture.agentUID), "--workspace", world.workspace, "--state-dir", world.state,
                 "--upstream-dns", NetlabAddresses.dns4, "--db", database, "--", "/bin/sh", world.workspace + "/run.sh"],
                timeout: 90, environment: environment)
        }
        func denials(_ output: Netlab.Output) -> [String] {
            output.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("cagent: refused") || $0.hasPrefix("cagent: blocked") }
        }

        // 1. Enforce: exactly one denial, and its line names the command that proposes allowing it.
        let first = try enforce(profile)
        #expect(first.status == 0 && first.stdout.contains("www 200") && first.stdout.contains("api-refused")
                && first.stdout.contains("workload-done"), "\(first.stdout)\n\(first.stderr)")
        let denied = denials(first)
        #expect(denied.count == 1, "\(first.stderr)")
        let line = try #require(denied.first { $0.hasPrefix("cagent: refused DNS api.allowed.test (not in profile) — allow: ") },
                                "\(first.stderr)")
        let command = String(line[line.range(of: " — allow: ")!.upperBound...])
        let words = command.split(separator: " ").map(String.init)
        let session = try #require(words.firstIndex(of: "--session").map { words[$0 + 1] })
        #expect(command == "cagent profile propose --update \(profile) --session \(session) --db \(database)", "\(command)")

        // 2. The session waits in the store's spool (enforce's end opens no database: the front links no SQLite and
        // its exit is not delayed), and the next command that opens the store records it: listed as enforce, its
        // report shows the denial.
        let spooled = database + ".pending/\(session).json"
        #expect(FileSystem.exists(spooled), "the record waits in the spool")
        let listed = try Netlab.execute([Products.cagent, "sessions", "--db", database], timeout: 30, environment: environment)
        #expect(listed.status == 0 && listed.stdout.split(separator: "\n").contains { $0.hasPrefix(session) && $0.contains("enforce") },
                "\(listed.stdout)\(listed.stderr)")
        #expect(!FileSystem.exists(spooled), "recorded, then removed from the spool")
        let report = try Netlab.execute([Products.cagent, "report", session, "--db", database], timeout: 30, environment: environment)
        #expect(report.status == 0 && report.stdout.contains("Denials (1)") && report.stdout.contains("refused DNS api.allowed.test"),
                "\(report.stdout)\(report.stderr)")

        // 3. The printed command proposes exactly that entry, as a diff; -o writes the updated profile.
        let updated = world.root + "/p-updated.yaml"
        let proposed = try Netlab.execute([Products.cagent] + words.dropFirst() + ["-o", updated], timeout: 60, environment: environment)
        #expect(proposed.status == 0, "\(proposed.stdout)\(proposed.stderr)")
        let added = proposed.stdout.split(separator: "\n").filter { $0.hasPrefix("+") && !$0.hasPrefix("+++") }
        let entries = added.filter { !$0.drop { $0 == "+" || $0 == " " }.hasPrefix("#") }
        #expect(entries == ["+    - api.allowed.test"], "\(proposed.stdout)")
        #expect(added.contains { $0.contains(" denial") && $0.contains(" UTC") }, "evidence: \(proposed.stdout)")
        let text = world.read(updated) ?? ""
        #expect(text.hasPrefix(original) && text.contains("\n    - api.allowed.test\n"), "\(text)")
        // Never over an existing file without --force.
        let again = try Netlab.execute([Products.cagent] + words.dropFirst() + ["-o", updated], timeout: 60, environment: environment)
        #expect(again.status != 0 && again.stderr.contains("exists"), "\(again.stderr)")

        // 4. Enforce with the updated profile: the same workload, no denial.
        let second = try enforce(updated)
        #expect(second.status == 0 && second.stdout.contains("www 200") && second.stdout.contains("api 200")
                && second.stdout.contains("workload-done"), "\(second.stdout)\n\(second.stderr)")
        #expect(denials(second).isEmpty, "\(second.stderr)")
    }
}
