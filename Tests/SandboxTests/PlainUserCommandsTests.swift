import CagentCore
import Foundation
import Netlab
import Testing

/// Issue #18, "after installation, every command works as a plain user": a user the test creates (its own
/// HOME, no sudo, a clean environment) runs each command a user would run, in order, in the netlab's simulated
/// host: doctor, policy, profile (list/show/lint/diff/trust/export, propose from an import and from an enforce
/// session's denials), enforce offline and online, sessions, report, import, trace, docker run --print. Each
/// works, or fails with one line saying that it needs root. Every file a command writes is the user's.
@Suite("Every command as a plain user", .serialized)
struct PlainUserCommandsTests {
    struct Outcome: CustomStringConvertible {
        let status: Int32, out: String, err: String
        var description: String { "status \(status)\nstdout: \(out)\nstderr: \(err)" }
    }

    @Test("each command works as a plain user or says in one line that it needs root",
          .enabled(if: Requirements.mayRun(root: true, tools: ["setpriv", "useradd", "slirp4netns", "curl", "dnsmasq", "tcpdump"]),
                   "root: creates the test user and the netlab"))
    func everyCommand() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try RootlessEnforceTests.World(); defer { world.remove() }
        let home = world.home, workspace = world.workspace
        func cagent(_ arguments: [String], timeout: Double = 90) throws -> Outcome {
            let argv = ["ip", "netns", "exec", lab.hostNamespace, "/usr/bin/setpriv", "--reuid", String(world.user.uid),
                        "--regid", String(world.user.gid), "--clear-groups", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                        "HOME=\(home)", "USER=\(world.user.name)", "/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", workspace,
                        Products.cagent] + arguments
            let run = try Netlab.execute(argv, timeout: timeout)
            return Outcome(status: run.status, out: run.stdout, err: run.stderr)
        }
        func ownedByUser(_ path: String) -> Bool {
            var info = stat()
            return lstat(path, &info) == 0 && info.st_uid == world.user.uid
        }
        func write(_ path: String, _ text: String) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chown(path, world.user.uid, world.user.gid)
        }

        // Nothing of root's is needed for the basics.
        let version = try cagent(["--version"])
        #expect(version.status == 0 && !version.out.isEmpty, "\(version)")

        // doctor: what rootless mode has here and lacks, exit 0 (nothing required is missing for a user).
        let doctor = try cagent(["doctor"])
        #expect(doctor.status == 0, "\(doctor)")
        for line in ["privileges", "rootless", "limits", "namespace user", "seccomp", "landlock", "state"] {
            #expect(doctor.out.split(separator: "\n").contains { $0.hasPrefix(line + " ") }, "doctor has no '\(line)' line: \(doctor)")
        }
        let rootlessLine = doctor.out.split(separator: "\n").first { $0.hasPrefix("rootless ") }.map(String.init) ?? ""
        #expect(rootlessLine.contains("slirp4netns") && rootlessLine.contains("/dev/net/tun") && rootlessLine.contains("user namespaces"), "\(rootlessLine)")
        #expect(rootlessLine.contains("limits: rlimits") || rootlessLine.contains("limits: a delegated cgroup"), "the rootless line says which limits hold: \(rootlessLine)")
        #expect(!rootlessLine.contains("no --proxy"), "--proxy works rootless: \(rootlessLine)")
        let doctorJSON = try cagent(["doctor", "--json"])
        let parsed = try? JSONSerialization.jsonObject(with: Data(doctorJSON.out.utf8)) as? [String: Any]
        let names = (parsed?["checks"] as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
        #expect(doctorJSON.status == 0 && names.contains("rootless") && names.contains("limits"), "\(doctorJSON)")

        // policy seccomp, and its BPF written as the user.
        let policy = try cagent(["policy", "seccomp", "--bpf", workspace + "/filter.bpf"])
        #expect(policy.status == 0 && ownedByUser(workspace + "/filter.bpf"), "\(policy)")
        let policyText = try cagent(["policy", "seccomp"])
        #expect(policyText.status == 0 && policyText.out.contains("\tread\t"), "\(policyText)")

        // profile: list, show, show --resolved, lint, diff, trust, export.
        let list = try cagent(["profile", "list"])
        #expect(list.status == 0 && list.out.contains("base") && list.out.contains("claude-code"), "\(list)")
        let show = try cagent(["profile", "show", "base"])
        #expect(show.status == 0 && show.out.contains("bundled"), "\(show)")
        let resolved = try cagent(["profile", "show", "--resolved", "claude-code"])
        #expect(resolved.status == 0 && resolved.out.contains("api.anthropic.com"), "\(resolved)")
        let lint = try cagent(["profile", "lint"])
        #expect(lint.status == 0 && lint.out.contains("ok "), "\(lint)")
        let diff = try cagent(["profile", "diff", "base", "claude-code"])
        #expect(diff.status == 1 && diff.out.contains("+ network.domains: api.anthropic.com"), "\(diff)")
        mkdir(workspace + "/.cagent", 0o755); chown(workspace + "/.cagent", world.user.uid, world.user.gid)
        try write(workspace + "/.cagent/project.yaml", "cagent: 1\nextends: [base]\nnetwork:\n  domains:\n    - www.allowed.test\n")
        let trust = try cagent(["profile", "trust", ".cagent/project.yaml"])
        #expect(trust.status == 0 && ownedByUser(home + "/.config/cagent/trusted-profiles"), "\(trust)")
        let export = try cagent(["profile", "export", "--format", "cilium", "project", "-o", workspace + "/policy.yaml"])
        #expect(export.status == 0 && ownedByUser(workspace + "/policy.yaml"), "\(export)")
        let exportAlias = try cagent(["export", "--format", "kubernetes", "base"])
        #expect(exportAlias.status == 0 && exportAlias.out.contains("NetworkPolicy"), "\(exportAlias)")

        // enforce, offline and online (the trusted workspace profile: the allowed name works, another is refused).
        let offline = try cagent(["enforce", "--profile", "default", "--offline", "--", "/bin/echo", "offline-ran"])
        #expect(offline.status == 0 && offline.out.contains("offline-ran"), "\(offline)")
        let online = try cagent(["enforce", "--profile", "project", "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c",
                                 "curl -sS -m 5 -o /dev/null -w 'www %{http_code}\\n' http://www.allowed.test/; curl -sS -m 5 http://api.allowed.test/ 2>/dev/null || echo api-failed"])
        #expect(online.status == 0 && online.out.contains("www 200") && online.out.contains("api-failed"), "\(online)")
        #expect(online.err.contains("cagent: refused DNS api.allowed.test"), "\(online)")

        // The record: sessions, report, propose --update from the enforce session's denial.
        let sessions = try cagent(["sessions"])
        #expect(sessions.status == 0 && sessions.out.split(separator: "\n").filter { $0.contains(" enforce ") }.count == 2, "\(sessions)")
        #expect(ownedByUser(home + "/.local/share/cagent/cagent.db"), "the store is the user's")
        let report = try cagent(["report"])
        #expect(report.status == 0 && report.out.contains("(enforce)"), "\(report)")
        let update = try cagent(["profile", "propose", "--update", ".cagent/project.yaml"])
        #expect(update.status == 0 && update.out.contains("api.allowed.test"), "\(update)")

        // import tracee, then propose from it.
        let fixture = FileSystem.readText(((#filePath as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent + "/CagentStoreTests/Fixtures/tracee/constructed-v1beta1.jsonl") ?? ""
        #expect(!fixture.isEmpty, "the Tracee fixture")
        try write(workspace + "/trace.jsonl", fixture)
        let imported = try cagent(["import", "tracee", "trace.jsonl"])
        #expect(imported.status == 0 && imported.out.contains("imported "), "\(imported)")
        let session = imported.out.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let proposal = try cagent(["profile", "propose", "--session", session, "-o", workspace + "/proposal.yaml"])
        #expect(proposal.status == 0 && ownedByUser(workspace + "/proposal.yaml"), "\(proposal)")

        // trace (diagnostics: a learn-mode tracer around one command), docker run --print.
        let trace = try cagent(["trace", "--", "/bin/true"])
        #expect(trace.status == 0 && trace.err.contains("exit 0, "), "\(trace)")
        let docker = try cagent(["docker", "run", "--print", "--profile", "base", "debian:12", "--", "/bin/true"])
        #expect(docker.status == 0 && docker.out.hasPrefix("docker run "), "\(docker)")

        // What needs root says so, in one line, with status 125: acting for another user, the root session's
        // network diagnostics. learn works (rootless learn, seccomp-notify: RootlessLearnTests).
        let other = try cagent(["sessions", "--user", "0"])
        #expect(other.status == 125 && other.err.contains("needs root"), "\(other)")
        let networkSession = try cagent(["_network-session", "--sandbox-netns", "/proc/self/ns/net", "--id", "x1"])
        #expect(networkSession.status == 125 && networkSession.err.contains("needs root"), "\(networkSession)")
        let learn = try cagent(["learn", "--", "/bin/true"])
        #expect(learn.status == 0 && learn.err.contains("rootless: tracing with seccomp-notify"), "\(learn)")
    }
}
