import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab

/// A throwaway world for one sandbox test: a workspace, a fake home full of fake secrets, cagent's state
/// directory, all under a fresh directory in /tmp, and an invoking user (uid 1000) constructed here.
/// Nothing of the real /root is used. `remove()` deletes it all.
final class SandboxFixture {
    static let agentUID: UInt32 = 1000
    let root: String
    let workspace: String
    let home: String
    let state: String
    let user: InvokingUser

    /// Fake secrets in the fake home (threat H1), relative to it.
    static let secrets = [".ssh/id_rsa", ".aws/credentials", ".netrc", ".git-credentials", ".config/gh/hosts.yml",
                          ".docker/config.json", ".kube/config", ".npmrc", ".pypirc", ".gnupg/private-keys-v1.d/key"]
    static let secretText = "FAKE-SECRET-cagent-test"

    init() throws {
        var template = Array("/tmp/cgsb-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CagentError.system("fixture", "mkdtemp") }
        root = String(cString: made)
        chmod(root, 0o755)   // the agent user must traverse it (root-owned 0700 would stop it)
        workspace = root + "/ws"
        home = root + "/home"
        state = root + "/state"
        user = InvokingUser(uid: Self.agentUID, gid: Self.agentUID, name: "agent", home: home)
        try makeDirectory(workspace)
        try makeDirectory(home)
        for secret in Self.secrets { try write(home + "/" + secret, Self.secretText) }
        try write(home + "/.gitconfig", "[user]\n\tname = Fake User\n")
        try write(workspace + "/README", "hello\n")
    }

    var paths: CagentPaths { CagentPaths(runtime: root + "/run", data: state, config: root + "/config") }

    func makeDirectory(_ path: String, owner: UInt32 = SandboxFixture.agentUID) throws {
        var built = ""
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o755) == 0 { chown(built, owner, owner) }
        }
    }

    func write(_ path: String, _ text: String, owner: UInt32 = SandboxFixture.agentUID) throws {
        let parent = String(path[..<path.lastIndex(of: "/")!])
        try makeDirectory(parent, owner: owner)
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw CagentError(stage: "fixture", "cannot write \(path)")
        }
        chown(path, owner, owner)
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The enforce plan for `command` with an optional profile.
    func plan(_ command: [String], profile: Profile = Profile(agent: "test"), environment: [String: String]? = nil,
              terminal: SandboxPlan.TerminalSize? = nil) throws -> SandboxPlan {
        var request = EnforceRequest(profile: profile, workspace: workspace, user: user, paths: paths,
                                     command: command, environment: environment ?? ProcessEnvironment.current)
        request.terminal = terminal
        return try EnforcePlanner.plan(request)
    }

    struct Outcome {
        var status: Int32
        var output: String
        var error: String
        /// What the launcher told the user about the bounded volume (Launcher.volumeNotices).
        var notices: [String] = []
    }

    /// Runs a plan in a real sandbox with stdin from /dev/null and the output captured; a watchdog kills
    /// the sandbox after `timeout` seconds so that a broken test fails instead of hanging.
    func run(_ plan: SandboxPlan, timeout: Double = 60, streams: StandardStreams? = nil,
             started: ((Int32) -> Void)? = nil) throws -> Outcome {
        let outPath = root + "/.out-\(UUID().uuidString)", errPath = root + "/.err-\(UUID().uuidString)"
        let out = open(outPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let err = open(errPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(out); close(err); close(null); unlink(outPath); unlink(errPath) }
        let launcher = Launcher(initPath: Products.initPath,
                                streams: streams ?? StandardStreams(input: null, output: out, error: err),
                                forwardSignals: false)
        let watchdog = Watchdog(seconds: timeout)
        launcher.beforeRelease = { pid in watchdog.arm(pid) }
        launcher.onStarted = started
        defer { watchdog.disarm() }
        let status = try launcher.run(plan)
        return Outcome(status: status, output: read(outPath) ?? "", error: read(errPath) ?? "", notices: launcher.volumeNotices)
    }

    /// The agent's shadow home as the volume's root directory fd (mounted detached, as the Launcher does):
    /// host-side code reaches its files only through *at() calls on it. The image must exist (a run made it).
    func withShadowHome<T>(agent: String = "test", _ body: (Int32) throws -> T) throws -> T {
        let spec = SandboxPlan.VolumeSpec(image: ShadowHome.path(paths: paths, agent: agent),
                                          sizeBytes: ResourceLimits.defaults.diskBytes, journal: true, purpose: "shadow home")
        let volume = try DiskVolume(spec, uid: user.uid, gid: user.gid)
        defer { volume.close() }
        return try body(volume.mountFD)
    }

    /// Runs a shell script in the sandbox.
    func sh(_ script: String, profile: Profile = Profile(agent: "test"), environment: [String: String]? = nil) throws -> Outcome {
        try run(plan(["/bin/sh", "-c", script], profile: profile, environment: environment))
    }

    /// Runs a shell script outside cagent as the agent's user (setpriv, plain posix_spawn: it inherits every
    /// descriptor without CLOEXEC): the positive control of a "hidden / denied" check made by the same probe.
    func outside(_ script: String) throws -> Outcome {
        let result = try Netlab.execute(["/usr/bin/setpriv", "--reuid=\(Self.agentUID)", "--regid=\(Self.agentUID)", "--clear-groups",
                                         "/bin/sh", "-c", script], timeout: 30)
        return Outcome(status: result.status, output: result.stdout, error: result.stderr)
    }

    /// Runs a python program in the sandbox.
    func python(_ program: String, profile: Profile = Profile(agent: "test")) throws -> Outcome {
        try run(plan(["/usr/bin/python3", "-c", program], profile: profile))
    }
}

/// Kills a sandbox's init after a deadline (SIGKILL to pid 1 of the pid namespace ends all of it).
final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var pid: Int32 = 0
    private var done = false
    let seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    func arm(_ pid: Int32) {
        lock.withLock { self.pid = pid }
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: seconds)
            lock.withLock { if !done && self.pid > 0 { kill(self.pid, SIGKILL) } }
        }
    }

    func disarm() { lock.withLock { done = true } }
}

/// Where the package's executables are (the test bundle sits next to them in .build/debug).
enum Products {
    static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return (exe as NSString).deletingLastPathComponent
    }
    static var cagent: String { directory + "/cagent" }
    static var initPath: String { directory + "/cagent-init" }
}

/// Processes whose command line mentions `marker` (a session id or a unique argument).
func processes(mentioning marker: String) -> [Int32] {
    var found: [Int32] = []
    for entry in FileSystem.list("/proc") {
        guard let pid = Int32(entry), pid != getpid(), let bytes = FileSystem.read("/proc/\(entry)/cmdline") else { continue }
        let text = String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        if text.contains(marker) && !text.contains("swift-test") && !text.contains("xctest") { found.append(pid) }
    }
    return found
}

/// Processes of user `uid` whose command line mentions `marker`: one session's helpers (a test user's own
/// slirp4netns), not those of another suite's session running at the same time.
func processes(mentioning marker: String, uid: UInt32) -> [Int32] {
    processes(mentioning: marker).filter { pid in
        let status = FileSystem.readText("/proc/\(pid)/status") ?? ""
        return status.split(separator: "\n").contains {
            $0.hasPrefix("Uid:") && $0.split(separator: "\t").dropFirst().first.map(String.init) == String(uid)
        }
    }
}

/// Host mounts whose mount point lies under `path`.
func hostMounts(under path: String) -> [String] {
    (FileSystem.readText("/proc/self/mountinfo") ?? "").split(separator: "\n").filter {
        $0.split(separator: " ").count > 4 && $0.split(separator: " ")[4].hasPrefix(path)
    }.map(String.init)
}
