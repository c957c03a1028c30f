import CagentCore
import Foundation
import Netlab
import Testing

/// Issue #15, items 3 and 8: whose places cagent uses (`--user`, sudo), and how it fails off the happy path.
/// Every case runs the real `cagent` as a subprocess: as root, under a simulated sudo (SUDO_UID/SUDO_GID/
/// SUDO_USER as root), or as a plain test user.
@Suite("user places and exit statuses", .serialized)
struct UserPlacesTests {
    /// A throwaway world: a test user whose passwd home is a real directory it owns, a workspace it owns, and
    /// root's own "plain" places (XDG_DATA_HOME, XDG_CONFIG_HOME, HOME) in temporary directories, so that
    /// nothing of the real /root is read or written.
    final class World {
        let root: String
        let user: TestUser
        var home: String { root + "/home" }
        var workspace: String { root + "/ws" }
        var rootData: String { root + "/root-data" }
        var rootConfig: String { root + "/root-config" }
        /// The test user's default database.
        var userDatabase: String { home + "/.local/share/cagent/cagent.db" }

        init() throws {
            var template = Array("/tmp/cgup-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CagentError.system("fixture", "mkdtemp") }
            root = String(cString: made)
            chmod(root, 0o755)
            user = try TestUser(home: root + "/home")
            for directory in [home, workspace, home + "/.config", home + "/.config/cagent", home + "/.config/cagent/profiles"] {
                mkdir(directory, 0o755)
                chown(directory, user.uid, user.gid)
            }
            for directory in [rootData, rootConfig] { mkdir(directory, 0o700) }
        }

        /// A profile in the test user's own profile directory (~/.config/cagent/profiles/NAME.yaml).
        func writeUserProfile(_ name: String) throws {
            let path = home + "/.config/cagent/profiles/\(name).yaml"
            try "cagent: 1\nagent: \(name)\nextends: [base]\n".write(toFile: path, atomically: false, encoding: .utf8)
            chown(path, user.uid, user.gid)
        }

        /// `env -i` with root's places pointed into this world; `extra` adds variables (e.g. SUDO_*).
        func environment(_ extra: [String] = []) -> [String] {
            ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(root)", "XDG_DATA_HOME=\(rootData)",
             "XDG_CONFIG_HOME=\(rootConfig)"] + extra
        }

        /// SUDO_* as sudo sets them when the test user runs cagent through it.
        var sudo: [String] { ["SUDO_UID=\(user.uid)", "SUDO_GID=\(user.gid)", "SUDO_USER=\(user.name)"] }

        /// The argv prefix that runs a command as the test user (its uid, gid and no other groups).
        var asUser: [String] {
            ["setpriv", "--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups",
             "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(home)"]
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The command a learn summary printed after "session ID: ", split into words, `cagent` replaced by the
    /// binary under test and a leading `sudo` taken as "root with SUDO_* already set" (the caller's env).
    static func printedCommand(_ stderr: String, after prefix: String) -> (sudo: Bool, argv: [String])? {
        guard let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        guard let colon = line.range(of: ": ", range: line.index(line.startIndex, offsetBy: prefix.count)..<line.endIndex)
        else { return nil }
        var words = line[colon.upperBound...].split(separator: " ").map(String.init)
        let sudo = words.first == "sudo"
        if sudo { words.removeFirst() }
        guard words.first == "cagent" else { return nil }
        words[0] = Products.cagent
        return (sudo, words)
    }

    static func learnArguments(_ world: World, _ extra: [String]) -> [String] {
        [Products.cagent, "learn", "--quiet", "--tracer", "seccomp", "--workspace", world.workspace] + extra + ["--", "/bin/true"]
    }

    /// `cagent learn --user U` as root: the database is U's, the `cagent report` the summary prints finds the
    /// session as typed (it used to look in root's database), and U's own profile is found.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft", "setpriv"]), "needs root"))
    func learnForAnotherUserUsesItsPlacesAndPrintsWorkingCommands() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        try world.writeUserProfile("userplaces")
        let lab = try Netlab(services: [.dns])
        defer { lab.shutdown() }
        let uid = String(world.user.uid)

        let learn = try lab.run(in: .host, world.environment() + Self.learnArguments(world, ["--user", uid]), timeout: 60)
        #expect(learn.status == 0, "learn --user: \(learn.status) \(learn.stderr)")
        // The database is U's own, owned by U (and nothing went to root's places).
        var info = stat()
        #expect(stat(world.userDatabase, &info) == 0 && info.st_uid == world.user.uid, "no database of U's: \(learn.stderr)")
        #expect(FileManager.default.fileExists(atPath: world.rootData + "/cagent/cagent.db") == false)

        // The printed follow-up commands, run exactly as printed (by root, as the learn was), find the session.
        let report = try #require(Self.printedCommand(learn.stderr, after: "cagent learn: session "), "\(learn.stderr)")
        #expect(!report.sudo && report.argv.contains("--user"), "\(report.argv)")
        let reported = try Netlab.execute(world.environment() + report.argv, timeout: 30)
        #expect(reported.status == 0, "printed report command: \(report.argv) -> \(reported.status) \(reported.stderr)")
        #expect(reported.stdout.contains("learn"), "\(reported.stdout)")
        let propose = try #require(Self.printedCommand(learn.stderr, after: "cagent learn: propose a profile from it"))
        // Written with U's rights: into a directory U may write.
        let output = world.workspace + "/proposal.yaml"
        let proposeArgv = propose.argv.map { $0 == "profile.yaml" ? output : $0 }
        let proposed = try Netlab.execute(world.environment() + proposeArgv, timeout: 30)
        #expect(proposed.status == 0, "printed propose command: \(proposeArgv) -> \(proposed.status) \(proposed.stderr)")

        // A profile that lives only in U's ~/.config/cagent/profiles: found only through U's places.
        let withProfile = try lab.run(in: .host, world.environment() + Self.learnArguments(world, ["--user", uid, "--agent", "userplaces"]),
                                      timeout: 60)
        #expect(withProfile.status == 0, "learn --user --agent: \(withProfile.status) \(withProfile.stderr)")

        // Under a simulated sudo by U itself, learn prints the plain command, and U runs it without root.
        let underSudo = try lab.run(in: .host, world.environment(world.sudo) + Self.learnArguments(world, ["--agent", "userplaces"]),
                                    timeout: 60)
        #expect(underSudo.status == 0, "sudo learn: \(underSudo.status) \(underSudo.stderr)")
        let plain = try #require(Self.printedCommand(underSudo.stderr, after: "cagent learn: session "), "\(underSudo.stderr)")
        #expect(!plain.sudo && !plain.argv.contains("--user") && !plain.argv.contains("--db"), "\(plain.argv)")
        let asUser = try Netlab.execute(world.asUser + plain.argv, timeout: 30)
        #expect(asUser.status == 0, "report as the user: \(plain.argv) -> \(asUser.status) \(asUser.stderr)")

        // `sudo cagent learn --user U` by another sudoer (here: SUDO_* naming root's uid 0 is not a sudoer
        // case; a daemon account stands in): the printed command carries sudo and --user, and works so.
        let daemon = try #require(getpwnam("daemon"))
        let other = ["SUDO_UID=\(daemon.pointee.pw_uid)", "SUDO_GID=\(daemon.pointee.pw_gid)", "SUDO_USER=daemon"]
        let forU = try lab.run(in: .host, world.environment(other) + Self.learnArguments(world, ["--user", uid]), timeout: 60)
        #expect(forU.status == 0, "sudo learn --user: \(forU.status) \(forU.stderr)")
        let sudoReport = try #require(Self.printedCommand(forU.stderr, after: "cagent learn: session "), "\(forU.stderr)")
        #expect(sudoReport.sudo && sudoReport.argv.contains("--user"), "\(sudoReport.argv)")
        let viaSudo = try Netlab.execute(world.environment(other) + sudoReport.argv, timeout: 30)
        #expect(viaSudo.status == 0, "printed sudo report: \(sudoReport.argv) -> \(viaSudo.status) \(viaSudo.stderr)")
    }

    /// As a plain user, what needs root says so in one line (exit 125), instead of an EACCES from somewhere
    /// inside setup; the commands that need no root work. enforce and learn are no longer among the refused: as a
    /// plain user they run in rootless mode (RootlessEnforceTests, RootlessLearnTests); only learn's eBPF tracer is.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["setpriv"]), "needs root to become a test user"))
    func plainUserIsToldWhatNeedsRoot() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        let ebpf = try Netlab.execute(world.asUser + [Products.cagent, "learn", "--tracer", "ebpf", "--workspace", world.workspace,
                                                      "--", "/bin/true"], timeout: 30)
        #expect(ebpf.status == 125 && ebpf.stderr.contains("--tracer ebpf needs root; rootless learn traces with seccomp-notify"),
                "learn --tracer ebpf as a plain user: \(ebpf.status) \(ebpf.stderr)")
        // Control: the same user runs the commands that need no root.
        try world.writeUserProfile("userplaces")
        for arguments in [["profile", "list"], ["profile", "show", "userplaces"], ["profile", "lint", "userplaces"]] {
            let run = try Netlab.execute(world.asUser + [Products.cagent] + arguments, timeout: 30)
            #expect(run.status == 0, "\(arguments) as a plain user: \(run.status) \(run.stderr)")
        }
        // Acting for another user takes root: one line, 125.
        let other = try Netlab.execute(world.asUser + [Products.cagent, "sessions", "--user", "0"], timeout: 30)
        #expect(other.status == 125 && other.stderr.contains("needs root"), "\(other.status) \(other.stderr)")
    }

    /// One scheme: the agent's status when it ran; 125 for every cagent failure before it (profile, user,
    /// usage, workspace, setup); 126/127 for an agent command that cannot be executed / is not found.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func exitStatusesAndHints() throws {
        try Requirements.root()
        let world = try World(); defer { world.remove() }
        let uid = String(world.user.uid)
        func enforce(_ arguments: [String], _ command: [String]) throws -> Netlab.Output {
            try Netlab.execute(world.environment() + [Products.cagent, "enforce", "--offline", "--state-dir", world.root + "/state"]
                               + arguments + ["--"] + command, timeout: 60)
        }
        let common = ["--profile", "default", "--user", uid, "--workspace", world.workspace]
        // Control: the agent's own status passes through.
        let ran = try enforce(common, ["/bin/sh", "-c", "exit 3"])
        #expect(ran.status == 3, "\(ran.stderr)")

        let cases: [(String, [String], [String], Int32, String)] = [
            ("unknown profile", ["--profile", "no-such-profile", "--user", uid, "--workspace", world.workspace], ["/bin/true"], 125, "hint:"),
            ("unknown user", ["--profile", "default", "--user", "3999999999", "--workspace", world.workspace], ["/bin/true"], 125, "hint:"),
            ("missing workspace", ["--profile", "default", "--user", uid, "--workspace", world.root + "/no-such-ws"], ["/bin/true"],
             125, "hint: the workspace is the agent's project directory and must exist"),
            ("usage error", ["--user", uid], ["/bin/true"], 125, "--profile"),
            ("command not found", common, ["/no/such/agent"], 127, "hint: the agent did not start"),
            ("command not on PATH", common, ["no-such-agent-cagent-test"], 127, "hint: the agent did not start"),
            ("not executable", common, ["/etc/hostname"], 126, "hint: the agent did not start"),
        ]
        for (name, arguments, command, status, hint) in cases {
            let run = try enforce(arguments, command)
            #expect(run.status == status, "\(name): \(run.status) \(run.stderr)")
            #expect(run.stderr.contains(hint), "\(name): \(run.stderr)")
        }
    }

    /// `--help` reads well at 80 columns: no line wider than the terminal.
    @Test(.enabled(if: Requirements.mayRun(), "needs a built cagent"))
    func helpFitsEightyColumns() throws {
        for command in [["enforce"], ["learn"], ["report"], ["profile", "propose"]] {
            let run = try Netlab.execute(["env", "COLUMNS=80", Products.cagent] + command + ["--help"], timeout: 30)
            #expect(run.status == 0, "\(command): \(run.stderr)")
            #expect(run.stdout.contains("USAGE:"), "\(command): \(run.stdout)")
            for line in run.stdout.split(separator: "\n") where line.count > 80 {
                Issue.record("cagent \(command.joined(separator: " ")) --help: \(line.count) columns: \(line)")
            }
        }
    }
}
