import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Testing

/// Issue #12 section 6: the agent must not fill the host's disk through what cagent owns. The agent tries
/// to write past the profile's bound into the shadow home (enforce), /tmp, and the scratch layer (learn);
/// each write must stop with ENOSPC at the bound while the host loses no more than the bound. A write
/// below the bound succeeds in the same run (positive control).
@Suite(.serialized) struct DiskBoundTests {
    static let bound: UInt64 = 32 << 20
    static let profile = Profile(agent: "disk-test", limits: Limits(tmpBytes: 16 << 20, diskBytes: bound))

    /// Writes `small` MiB (must fit) then `large` MiB (must not) into `directory`, printing what happened.
    static func script(_ directory: String, small: Int, large: Int) -> String {
        """
        cd "\(directory)" || { echo NO-DIR; exit 3; }
        dd if=/dev/zero of=small bs=1M count=\(small) status=none && echo SMALL-OK
        [ -s small ] && echo SMALL-PRESENT
        rm -f small
        fallocate -l \(large)M fallocated 2>&1 && echo FALLOCATE-FIT
        rm -f fallocated
        dd if=/dev/zero of=filled bs=1M count=\(large) status=none 2>&1 && echo DD-FIT
        echo PROBE-DONE
        """
    }

    /// Bytes the host's disk gave a file (a sparse image: what the agent wrote into it, plus metadata).
    static func allocated(_ path: String) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return UInt64(info.st_blocks) * 512
    }

    /// The dd that hit the bound left its partial file: the image holds about the bound, never more.
    /// (The host's free space is not compared: other processes write to the same disk meanwhile.)
    static func checkImage(_ image: String, _ what: String) {
        let used = allocated(image)
        #expect(used <= bound, "\(what): the image takes \(used >> 20) MiB of the host's disk, more than the bound")
        #expect(used >= bound / 2, "\(what): the image holds \(used >> 20) MiB: the write did not land in it")
    }

    /// Loop devices whose backing file lies under `path` (none may remain after a session).
    static func loopDevices(backing path: String) -> [String] {
        FileSystem.list("/sys/block").filter { $0.hasPrefix("loop") }.filter {
            (FileSystem.readText("/sys/block/\($0)/loop/backing_file") ?? "").hasPrefix(path)
        }
    }

    static func check(_ outcome: SandboxFixture.Outcome, _ what: String) {
        #expect(outcome.output.contains("PROBE-DONE"), "\(what): the probe did not run: \(outcome.output) \(outcome.error)")
        #expect(outcome.output.contains("SMALL-OK") && outcome.output.contains("SMALL-PRESENT"),
                "\(what): a write below the bound failed: \(outcome.output)")
        #expect(!outcome.output.contains("FALLOCATE-FIT"), "\(what): fallocate past the bound succeeded: \(outcome.output)")
        #expect(!outcome.output.contains("DD-FIT"), "\(what): dd past the bound succeeded: \(outcome.output)")
        #expect(outcome.output.contains("No space left on device") || outcome.output.contains("Disk quota exceeded"),
                "\(what): no ENOSPC/EDQUOT: \(outcome.output)")
    }

    @Test("enforce: the shadow home and /tmp stop at the profile's bound (ENOSPC), the host keeps its space",
          .enabled(if: Requirements.mayRun(root: true, tools: ["fallocate", "dd"]), "needs root"))
    func enforceHomeAndTmp() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let home = try fixture.sh(Self.script("$HOME", small: 4, large: 48), profile: Self.profile)
        Self.check(home, "shadow home")
        Self.checkImage(ShadowHome.path(paths: fixture.paths, agent: Self.profile.agent), "shadow home")
        let tmp = try fixture.sh(Self.script("/tmp", small: 4, large: 24), profile: Self.profile)
        Self.check(tmp, "/tmp")
        #expect(Self.loopDevices(backing: fixture.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: fixture.root).isEmpty, "a mount was left behind")
    }

    @Test("learn: the scratch layer stops at the profile's bound (ENOSPC), the host keeps its space",
          .enabled(if: Requirements.mayRun(root: true, tools: ["fallocate", "dd"]), "needs root"))
    func learnScratch() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        var request = LearnRequest(profile: Self.profile, workspace: fixture.workspace, user: fixture.user,
                                   paths: fixture.paths, command: ["/bin/sh", "-c", Self.script("$HOME", small: 4, large: 48)],
                                   environment: ["PATH": "/usr/bin:/bin"], sessionID: EnforcePlanner.newSessionID())
        request.tmpBytes = 16 << 20
        let plan = try LearnPlanner.plan(request)
        let outcome = try fixture.run(plan)
        Self.check(outcome, "learn scratch")
        // The write really went to the scratch layer: not into the host's home.
        #expect(!FileSystem.exists(fixture.home + "/small") && !FileSystem.exists(fixture.home + "/filled"))
        Self.checkImage(request.scratch, "learn scratch")
        #expect(Self.loopDevices(backing: fixture.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: fixture.root).isEmpty, "a mount was left behind")
    }
}
