import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Two sessions of one agent at once (claude-code in two projects): both start and share the agent's
/// shadow home, which is one ext4 image that must never be mounted twice (DiskVolume). The bound holds for
/// what they write together, and nothing remains when the last one ends, even when a cagent was killed.
@Suite(.serialized) struct SharedVolumeTests {
    static let bound: UInt64 = 32 << 20
    static let profile = Profile(agent: "share-test", limits: Limits(diskBytes: bound))

    /// Polls for `file` (a path in the sandbox) for up to ten seconds.
    static func waitFor(_ file: String) -> String {
        "i=0; while [ ! -e \(file) ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done"
    }

    /// Waits until no loop device is backed by a file under `root` (a loop device detaches itself a few
    /// milliseconds after its filesystem's last mount went); returns those that remain.
    static func loopsAfterDetach(_ root: String) -> [String] {
        for _ in 0..<100 where !DiskBoundTests.loopDevices(backing: root).isEmpty { usleep(20_000) }
        return DiskBoundTests.loopDevices(backing: root)
    }

    /// Runs `body` on a thread of its own; `join` returns its result.
    final class Background<T>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<T, any Error>?
        private struct Unchecked: @unchecked Sendable { let body: () throws -> T }
        init(_ body: @escaping () throws -> T) {
            let unchecked = Unchecked(body: body)   // the fixture is only read from both threads
            Thread.detachNewThread { [self] in
                result = Result { try unchecked.body() }
                done.signal()
            }
        }
        func join() throws -> T { done.wait(); return try result!.get() }
    }

    @Test("two sessions of one agent at once both start, see each other's writes to ~, and the bound holds for their sum",
          .enabled(if: Requirements.mayRun(root: true, tools: ["dd", "df"]), "needs root: real sandboxes"))
    func concurrentSessionsShareTheHome() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        // Each writes 10 MiB (20 fit the 32 MiB image: SIZE says how much it holds), then waits for the
        // other's; A then writes 10 MiB more, which would fit on its own 10 but not on top of B's too.
        let a = """
            cd "$HOME" || exit 3
            df -Pk . | awk 'NR==2 {print "SIZE=" $2}'
            dd if=/dev/zero of=a.bin bs=1M count=10 status=none && echo A-WROTE
            touch a.done
            \(Self.waitFor("b.done"))
            [ -s b.bin ] && echo A-SAW-B
            dd if=/dev/zero of=a2.bin bs=1M count=10 status=none 2>&1 && echo A-SUM-FIT
            touch a.end
            echo PROBE-DONE
            """
        let b = """
            cd "$HOME" || exit 3
            dd if=/dev/zero of=b.bin bs=1M count=10 status=none && echo B-WROTE
            touch b.done
            \(Self.waitFor("a.done"))
            [ -s a.bin ] && echo B-SAW-A
            \(Self.waitFor("a.end"))
            echo PROBE-DONE
            """
        let planA = try fixture.plan(["/bin/sh", "-c", a], profile: Self.profile)
        let planB = try fixture.plan(["/bin/sh", "-c", b], profile: Self.profile)
        let sessionA = Background { try fixture.run(planA, timeout: 40) }
        let sessionB = Background { try fixture.run(planB, timeout: 40) }
        let outcomeB = try sessionB.join()
        let outcomeA = try sessionA.join()
        let size = outcomeA.output.split(separator: "\n").first { $0.hasPrefix("SIZE=") }.flatMap { UInt64($0.dropFirst(5)) } ?? 0
        #expect(size > 21 << 10, "the image holds \(size) KiB: 20 MiB of one session would not fit, the sum proves nothing")
        #expect(outcomeA.output.contains("A-WROTE") && outcomeA.output.contains("PROBE-DONE"), "A: \(outcomeA.output) \(outcomeA.error)")
        #expect(outcomeB.output.contains("B-WROTE") && outcomeB.output.contains("PROBE-DONE"), "B: \(outcomeB.output) \(outcomeB.error)")
        #expect(outcomeA.output.contains("A-SAW-B"), "A did not see B's write: \(outcomeA.output)")
        #expect(outcomeB.output.contains("B-SAW-A"), "B did not see A's write: \(outcomeB.output)")
        #expect(!outcomeA.output.contains("A-SUM-FIT") && outcomeA.output.contains("No space left on device"),
                "A's write past the bound (with B's) did not stop with ENOSPC: \(outcomeA.output)")
        #expect(DiskBoundTests.allocated(ShadowHome.path(paths: fixture.paths, agent: Self.profile.agent)) <= Self.bound)
        #expect(Self.loopsAfterDetach(fixture.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: fixture.root).isEmpty, "a mount was left behind")
    }

    @Test("a cagent killed while another session of its agent runs leaves that session its home, and nothing behind after it",
          .enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func killedCagentLeavesTheShareToTheOther() throws {
        try Requirements.root()
        let world = try SandboxFixture()
        defer { world.remove() }
        let marker = "900.\(Int.random(in: 100000...999999))"
        // A: the cagent binary (the profile `default`: agent "default"), killed with SIGKILL below.
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: Products.cagent)
        process.arguments = ["enforce", "--profile", "default", "--user", String(SandboxFixture.agentUID),
                             "--workspace", world.workspace, "--state-dir", world.state, "--offline", "--",
                             "/bin/sh", "-c", "echo kept > ~/from-a && touch \(world.workspace)/a-ready; sleep \(marker)"]
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        process.environment = environment
        try process.run()
        var waited = 0.0
        while !FileSystem.exists(world.workspace + "/a-ready") && waited < 20 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
        #expect(FileSystem.exists(world.workspace + "/a-ready"), "positive control: session A runs")
        let cgroupsA = processes(mentioning: "sleep \(marker)").filter { $0 != process.processIdentifier }
            .first.map(EnforceCommandTests.sessionCgroups(of:)) ?? []

        // B: in this process, the same agent, until A has been killed.
        let script = """
            cat ~/from-a && echo B-SAW-A
            touch \(world.workspace)/b-ready
            \(Self.waitFor(world.workspace + "/a-killed"))
            echo after > ~/from-b && [ "$(cat ~/from-b)" = after ] && echo B-WROTE-AFTER
            echo PROBE-DONE
            """
        let plan = try world.plan(["/bin/sh", "-c", script], profile: Profile(agent: "default"))
        let sessionB = Background { try world.run(plan, timeout: 40) }
        waited = 0
        while !FileSystem.exists(world.workspace + "/b-ready") && waited < 20 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
        #expect(DiskBoundTests.loopDevices(backing: world.root).count == 1, "both sessions use one loop device")

        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        waited = 0
        while !processes(mentioning: "sleep \(marker)").isEmpty && waited < 5 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
        #expect(processes(mentioning: "sleep \(marker)").isEmpty, "session A outlived its cagent")
        Thread.sleep(forTimeInterval: 0.2)   // A's sandbox's mount goes with its namespace
        #expect(DiskBoundTests.loopDevices(backing: world.root).count == 1, "B's filesystem went with A")
        _ = FileManager.default.createFile(atPath: world.workspace + "/a-killed", contents: nil)

        let outcome = try sessionB.join()
        #expect(outcome.output.contains("kept") && outcome.output.contains("B-SAW-A"), "B did not see A's write: \(outcome.output) \(outcome.error)")
        #expect(outcome.output.contains("B-WROTE-AFTER"), "B lost its home when A's cagent was killed: \(outcome.output) \(outcome.error)")
        #expect(outcome.output.contains("PROBE-DONE"), "\(outcome.output) \(outcome.error)")
        #expect(Self.loopsAfterDetach(world.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: world.root).isEmpty, "a mount was left behind")
        // What a killed cagent cannot remove itself (`cagent doctor --clean` does): its empty cgroups.
        for directory in cgroupsA {
            waited = 0
            while !(FileSystem.readText(directory + "/cgroup.procs") ?? "").isEmpty && waited < 5 { Thread.sleep(forTimeInterval: 0.05); waited += 0.05 }
            rmdir(directory)
        }
    }
}
