import CagentCore
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// The `cagent` binary end to end: exit status, fail-closed status 125, and "the sandbox dies with cagent".
@Suite(.serialized) struct EnforceCommandTests {
    func cagent(_ arguments: [String], world: SandboxFixture) throws -> TestProcess {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: Products.cagent)
        process.arguments = ["enforce", "--profile", "default", "--user", String(SandboxFixture.agentUID),
                             "--workspace", world.workspace, "--state-dir", world.state,
                             // On this machine's own namespace: no uplink (the network is tested in the netlab).
                             "--offline"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        process.environment = environment
        try process.run()
        return process
    }

    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func exitStatusAndSetupFailure() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let ok = try cagent(["--", "/bin/sh", "-c", "exit 3"], world: world)
        ok.waitUntilExit()
        #expect(ok.terminationStatus == 3)
        let failed = try cagent(["--fail-at-stage", "pivot-root", "--", "/bin/true"], world: world)
        failed.waitUntilExit()
        #expect(failed.terminationStatus == 125)
    }

    /// H17: kill -9 of cagent takes the whole sandbox down (parent-death signal and control-socket EOF).
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func h17SandboxDiesWithCagent() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let marker = "900.\(Int.random(in: 100000...999999))"
        let process = try cagent(["--", "/bin/sh", "-c", "sleep \(marker) & sleep \(marker)"], world: world)
        var waited = 0.0
        // cagent, the shell and two sleeps mention the marker.
        while processes(mentioning: "sleep \(marker)").count < 4 && waited < 10 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
        #expect(processes(mentioning: "sleep \(marker)").count == 4, "positive control: the agent runs")
        let sessionCgroups = processes(mentioning: "sleep \(marker)").filter { $0 != process.processIdentifier }
            .first.map(Self.sessionCgroups(of:)) ?? []
        #expect(!sessionCgroups.isEmpty, "the agent runs in its session's cgroups")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        waited = 0
        while !processes(mentioning: "sleep \(marker)").isEmpty && waited < 5 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
        #expect(processes(mentioning: "sleep \(marker)").isEmpty, "the sandbox outlived cagent")
        // A killed cagent cannot remove its session's cgroups (`cagent doctor --clean` does, later): they
        // must be empty, and the test removes them so that nothing of it remains.
        for directory in sessionCgroups {
            // pid 1 exits last and tears down the mount namespace (the shadow home's ext4 unmounts then): allow it.
            waited = 0
            while !(FileSystem.readText(directory + "/cgroup.procs") ?? "").isEmpty && waited < 5 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
            #expect((FileSystem.readText(directory + "/cgroup.procs") ?? "").isEmpty, "a process remained in \(directory)")
            rmdir(directory)
        }
    }

    /// The session cgroup directories (named cagent-*) a process is in, one per hierarchy.
    static func sessionCgroups(of pid: Int32) -> [String] {
        let layout = CgroupLayout.detect()
        var directories: [String] = []
        for line in (FileSystem.readText("/proc/\(pid)/cgroup") ?? "").split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2].split(separator: "/").last?.hasPrefix("cagent-") == true else { continue }
            let controllers = fields[1].split(separator: ",")
            let hierarchy = fields[0] == "0" ? layout.unified
                : controllers.contains("pids") ? layout.pids : controllers.contains("memory") ? layout.memory : nil
            if let hierarchy { directories.append(hierarchy.mountPoint + fields[2]) }
        }
        return directories
    }
}
