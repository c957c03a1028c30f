import Foundation
import Netlab
import Testing
@testable import CagentCLI
@testable import CagentCore

@Suite struct DoctorRenderingTests {
    let checks = [
        DoctorCheck("privileges", .ok, "root"),
        DoctorCheck("landlock", .warn, "not \"available\"\u{1B}[31m", remedy: "boot with lsm=landlock"),
        DoctorCheck("nftables netlink", .fail, "no socket", remedy: "run as root", required: true),
    ]

    @Test func jsonIsValidAndSaysNotOK() throws {
        let text = DoctorRenderer.json(checks, cleaned: ["netns cagent-1"])
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object?["ok"] as? Bool == false)
        #expect((object?["checks"] as? [[String: Any]])?.count == 3)
        #expect((object?["cleaned"] as? [String]) == ["netns cagent-1"])
    }

    @Test func tableEscapesAndShowsRemedies() {
        let text = DoctorRenderer.table(checks)
        #expect(text.contains("-> boot with lsm=landlock"))
        #expect(text.contains("\\x1B[31m"))
        #expect(!text.contains("\u{1B}"))
    }
}

@Suite struct DoctorMachineTests {
    /// The real checks on this machine: under CI they must all pass what cagent requires.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root"))
    func requiredChecksPassWhenRoot() throws {
        try Requirements.root()
        let environment = ProcessEnvironment.current
        let user = InvokingUser.current(environment: environment)
        let checks = SystemChecks.all(environment: environment, paths: CagentPaths.standard(user: user, environment: environment))
        let failed = checks.filter { $0.required && $0.status == .fail }
        #expect(failed.isEmpty, "required checks failed: \(failed)")
        #expect(checks.contains { $0.name == "nftables netlink" && $0.status == .ok })
    }
}

@Suite struct DoctorDiskTests {
    @Test("the workspace check says when disk use is unbounded, and how to enable a project quota")
    func workspaceVerdicts() {
        let off = DiskChecks.workspaceVerdict(type: 0xEF53, quotaState: ESRCH, directory: "/w")
        #expect(off.status == .warn && off.detail.contains("not bounded") && off.detail.contains("ext4"))
        #expect(off.remedy?.contains("prjquota") == true && off.remedy?.contains("project,quota") == true)
        let xfs = DiskChecks.workspaceVerdict(type: 0x5846_5342, quotaState: ENOSYS, directory: "/w")
        #expect(xfs.status == .warn && xfs.remedy?.contains("pquota") == true)
        let on = DiskChecks.workspaceVerdict(type: 0xEF53, quotaState: 0, directory: "/w")
        #expect(on.status == .info && on.detail.contains("project quota on"))
    }
}
