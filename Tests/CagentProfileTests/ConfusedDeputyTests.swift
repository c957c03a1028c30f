import Netlab
import CagentCore
import Foundation
import Testing
@testable import CagentProfile

/// A user who may run cagent through sudo must not read root's files through it: every profile, `extends`
/// target and workspace file is opened with the invoking user's rights (docs/security.md, "cagent as a
/// confused deputy"). Simulated sudo: the test, as root, runs cagent with SUDO_UID/SUDO_GID/SUDO_USER of a
/// user it creates. Each probe has its positive control: the same file handed to the user is read.
@Suite("cagent as a confused deputy: profiles", .serialized)
struct ConfusedDeputyProfileTests {
    static var mayRun: Bool { ProfileCLITests.mayRun && Requirements.mayRun(root: true, tools: ["useradd", "userdel"]) }

    struct Setup {
        let sandbox: ProfileSandbox
        let user: TestUser
        let marker: String
        let secret: String

        init() throws {
            sandbox = try ProfileSandbox()
            // A home of its own (not the shared /nonexistent: a home one test's cagent made would be another's).
            let home = sandbox.root + "/home"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            user = try TestUser(home: home)
            chown(home, user.uid, user.gid)
            marker = "CAGENT-MARKER-\(UInt64.random(in: 0...UInt64.max))"
            // The user must reach the files at all (mkdtemp made the root 0700).
            chmod(sandbox.root, 0o755)
            secret = try sandbox.write("rootonly/shadow.yaml", "cagent: 1\ndescription: \(marker)\n\(marker): 1\n")
            chmod(secret, 0o600)
        }

        func run(_ arguments: [String], timeout: Double = 60) throws -> ProfileCLITests.Result {
            let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid),
                               "SUDO_GID": String(user.gid), "SUDO_USER": user.name, "SUDO_COMMAND": "cagent",
                               "CAGENT_PROFILES_DIR": repositoryProfiles()]
            let result = try Netlab.execute([ProfileCLITests.executable] + arguments, timeout: timeout,
                                            environment: environment, directory: sandbox.workspace)
            return ProfileCLITests.Result(status: result.status, output: result.stdout, errors: result.stderr)
        }

        /// The probe, then the same probe after the file was handed to the user.
        func probe(_ arguments: [String], listing: Bool = false, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            chown(secret, 0, 0)
            let denied = try run(arguments)
            let all = denied.output + denied.errors
            #expect(!all.contains(marker), "the root-only file's content was printed: \(all)", sourceLocation: sourceLocation)
            // A listing shows the unreadable entry with its problem and succeeds; everything else fails.
            #expect(listing || denied.status != 0, sourceLocation: sourceLocation)
            #expect(all.contains("as user \(user.name): Permission denied"), "\(all)", sourceLocation: sourceLocation)

            chown(secret, user.uid, user.gid)
            defer { chown(secret, 0, 0) }
            let control = try run(arguments)
            #expect((control.output + control.errors).contains(marker),
                    "positive control: the user's own file was not read: \(control.output)\(control.errors)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test("--profile / a path naming a root-only file", .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func namedByPath() throws {
        try Requirements.root()
        let setup = try Setup()
        try setup.probe(["profile", "show", setup.secret])
        try setup.probe(["profile", "lint", setup.secret])
        // The lean front's own loader (enforce): the profile stage fails before any sandbox is made, in the
        // control too (the marker is an unknown key, named in the error).
        try setup.probe(["enforce", "--profile", setup.secret, "--workspace", setup.sandbox.workspace, "--", "/bin/true"])
    }

    @Test("extends: a root-only file", .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func extendsRootOnly() throws {
        try Requirements.root()
        let setup = try Setup()
        let main = try setup.sandbox.write("ws/main.yaml", "cagent: 1\nextends: [\(setup.secret)]\n")
        try setup.probe(["profile", "show", "--resolved", main])
    }

    @Test("a .cagent/x.yaml symlink to a root-only file", .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func workspaceSymlink() throws {
        try Requirements.root()
        let setup = try Setup()
        let link = setup.sandbox.workspace + "/.cagent/x.yaml"
        #expect(symlink(setup.secret, link) == 0)
        try setup.probe(["profile", "show", ".cagent/x.yaml"])
        try setup.probe(["profile", "list"], listing: true)
    }

    @Test("profile trust writes the user's trust file with the user's rights, never through a symlink into root's directory",
          .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func trustFileAsUser() throws {
        try Requirements.root()
        let sandbox = try ProfileSandbox()
        chmod(sandbox.root, 0o755)
        let home = sandbox.root + "/home"
        let user = try TestUser(home: home)
        try FileManager.default.createDirectory(atPath: home + "/.config", withIntermediateDirectories: true)
        chown(home, user.uid, user.gid); chown(home + "/.config", user.uid, user.gid)
        // The user's config directory is a symlink to a directory only root may write.
        let rootDirectory = sandbox.root + "/rootdir"
        try FileManager.default.createDirectory(atPath: rootDirectory, withIntermediateDirectories: true)
        #expect(symlink(rootDirectory, home + "/.config/cagent") == 0)
        try sandbox.write("ws/.cagent/p.yaml", "cagent: 1\ndescription: project\n")
        chown(sandbox.workspace, user.uid, user.gid)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid), "SUDO_GID": String(user.gid),
                           "SUDO_USER": user.name, "CAGENT_PROFILES_DIR": repositoryProfiles()]
        let denied = try Netlab.execute([ProfileCLITests.executable, "profile", "trust", ".cagent/p.yaml"], timeout: 60,
                                        environment: environment, directory: sandbox.workspace)
        #expect(denied.status != 0, "\(denied.stdout)")
        #expect(FileSystem.list(rootDirectory).isEmpty, "cagent wrote into root's directory: \(FileSystem.list(rootDirectory))")
        // Positive control: the user's own config directory gets the trust file, owned by the user.
        unlink(home + "/.config/cagent")
        let trusted = try Netlab.execute([ProfileCLITests.executable, "profile", "trust", ".cagent/p.yaml"], timeout: 60,
                                         environment: environment, directory: sandbox.workspace)
        #expect(trusted.status == 0, "\(trusted.stderr)")
        var info = stat()
        #expect(stat(home + "/.config/cagent/trusted-profiles", &info) == 0 && info.st_uid == user.uid)
    }

    @Test("profile list does not show the names in a root-only directory the user's profile directory points to",
          .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func listingAsUser() throws {
        try Requirements.root()
        let sandbox = try ProfileSandbox()
        chmod(sandbox.root, 0o755)
        let home = sandbox.root + "/home"
        let user = try TestUser(home: home)
        try FileManager.default.createDirectory(atPath: home + "/.config/cagent", withIntermediateDirectories: true)
        for path in [home, home + "/.config", home + "/.config/cagent"] { chown(path, user.uid, user.gid) }
        let rootDirectory = sandbox.root + "/rootdir"
        let marker = "marker\(UInt32.random(in: 0...UInt32.max))"
        try sandbox.write("rootdir/\(marker).yaml", "cagent: 1\n")
        chmod(rootDirectory, 0o700)
        #expect(symlink(rootDirectory, home + "/.config/cagent/profiles") == 0)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid), "SUDO_GID": String(user.gid),
                           "SUDO_USER": user.name, "CAGENT_PROFILES_DIR": repositoryProfiles()]
        let denied = try Netlab.execute([ProfileCLITests.executable, "profile", "list"], timeout: 60,
                                        environment: environment, directory: sandbox.workspace)
        #expect(!(denied.stdout + denied.stderr).contains(marker), "a root-only directory was listed: \(denied.stdout)")
        // Positive control: the directory opened to the user is listed.
        chmod(rootDirectory, 0o755)
        let listed = try Netlab.execute([ProfileCLITests.executable, "profile", "list"], timeout: 60,
                                        environment: environment, directory: sandbox.workspace)
        #expect(listed.stdout.contains(marker), "\(listed.stdout) \(listed.stderr)")
    }

    @Test("output files the user names (--dump-plan, policy --bpf) are written with the user's rights",
          .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func outputFilesAsUser() throws {
        try Requirements.root()
        let setup = try Setup()
        let rootDirectory = setup.sandbox.root + "/rootdir"  // 0755 root: the user may not create files in it
        let userDirectory = setup.sandbox.root + "/userdir"
        for directory in [rootDirectory, userDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        chown(userDirectory, setup.user.uid, setup.user.gid)
        chown(setup.sandbox.workspace, setup.user.uid, setup.user.gid)
        let commands: [(String) -> [String]] = [
            { ["policy", "seccomp", "--bpf", $0 + "/filter.bpf"] },
            { ["enforce", "--profile", "default", "--workspace", setup.sandbox.workspace, "--dump-plan", $0 + "/plan", "--", "/bin/true"] },
        ]
        for command in commands {
            let denied = try setup.run(command(rootDirectory))
            #expect(denied.status != 0, "\(command(rootDirectory)): \(denied.output)")
            #expect(FileSystem.list(rootDirectory).isEmpty, "root's directory was written: \(FileSystem.list(rootDirectory))")
            #expect(denied.errors.contains("as user \(setup.user.name): Permission denied"), "\(denied.errors)")
            // Positive control: the user's own directory gets the file, owned by the user.
            let written = try setup.run(command(userDirectory))
            #expect(written.status == 0, "\(command(userDirectory)): \(written.errors)")
            let name = command(userDirectory).first { $0.hasPrefix(userDirectory) } ?? ""
            var info = stat()
            #expect(stat(name, &info) == 0 && info.st_uid == setup.user.uid, "\(name) missing or not the user's")
        }
    }

    @Test("a user whose home does not exist: cagent refuses to make it (as root, owned by the user) and says why",
          .enabled(if: Self.mayRun, "needs root, useradd and the built executable"))
    func missingHomeIsNotCreated() throws {
        let sandbox = try ProfileSandbox()
        chmod(sandbox.root, 0o755)
        let home = "/nonexistent-cgt-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let user = try TestUser(home: home)
        defer { try? FileManager.default.removeItem(atPath: home) }
        chown(sandbox.workspace, user.uid, user.gid)
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root", "SUDO_UID": String(user.uid), "SUDO_GID": String(user.gid),
                           "SUDO_USER": user.name, "SUDO_COMMAND": "cagent", "CAGENT_PROFILES_DIR": repositoryProfiles()]
        let state = sandbox.root + "/state"   // the user's: the plan goes there too
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        chown(state, user.uid, user.gid)
        let plan = state + "/plan"
        let run = try Netlab.execute([ProfileCLITests.executable, "enforce", "--profile", "default", "--workspace", sandbox.workspace,
                                      "--dump-plan", plan, "--", "/bin/true"], timeout: 60, environment: environment,
                                     directory: sandbox.workspace)
        #expect(!FileSystem.exists(home), "cagent created the user's home \(home)")
        #expect(run.status == 125 && run.stderr.contains("does not exist"), "status \(run.status): \(run.stderr)")
        // Positive control: with the state elsewhere (--state-dir), the same user's plan is written.
        let elsewhere = try Netlab.execute([ProfileCLITests.executable, "enforce", "--profile", "default", "--workspace", sandbox.workspace,
                                            "--state-dir", state, "--dump-plan", plan, "--", "/bin/true"], timeout: 60,
                                           environment: environment, directory: sandbox.workspace)
        #expect(elsewhere.status == 0 && FileSystem.exists(plan), "control: \(elsewhere.stderr)")
        #expect(!FileSystem.exists(home), "cagent created the user's home \(home) with --state-dir")
    }

    @Test("a FIFO where a profile is looked for: list and lint return with an error",
          .enabled(if: ProfileCLITests.mayRun, "needs the built executable"))
    func fifoProfile() throws {
        let sandbox = try ProfileSandbox()
        try sandbox.write("ws/.cagent/good.yaml", "cagent: 1\ndescription: fine\n")
        #expect(mkfifo(sandbox.workspace + "/.cagent/evil.yaml", 0o644) == 0)
        for arguments in [["profile", "list"], ["profile", "lint"], ["profile", "lint", ".cagent/evil.yaml"]] {
            let started = Date()
            let result = try ProfileCLITests.run(arguments, in: sandbox, directory: sandbox.workspace, timeout: 20)
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed < 15, "\(arguments) hung for \(elapsed) s")
            #expect((result.output + result.errors).contains("is a FIFO, not a regular file"),
                    "\(arguments): \(result.status) \(result.output) \(result.errors)")
            // Positive control: the regular profile next to it is still listed/linted.
            if arguments.count == 2 {
                #expect(result.output.contains("good"), "\(arguments): \(result.output)")
            }
        }
    }
}

