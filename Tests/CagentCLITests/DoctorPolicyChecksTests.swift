import Testing
@testable import CagentCLI
@testable import CagentCore

@Suite struct DoctorPolicyChecksTests {
    @Test("doctor reports the seccomp filter, the Landlock ABI and the cgroup layout")
    func policyChecksPresent() {
        let filter = SystemChecks.seccompFilter()
        #expect(filter.status == .ok && filter.detail.contains("ENOSYS"), "\(filter)")
        let landlock = SystemChecks.landlock()
        #expect(landlock.detail.contains("ABI") || landlock.status == .warn, "\(landlock)")
        let cgroups = SystemChecks.cgroups()
        #expect(cgroups.detail.contains("pids") && cgroups.detail.contains("memory"), "\(cgroups)")
    }
}
