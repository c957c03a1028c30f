import CagentCore
@testable import CagentSandbox
import Testing

/// Typed stages: the names a user reads and `--fail-at-stage` takes map to one SetupStage each and back, and
/// the exit status of a failed start is decided on the stage, not on the message's text.
@Suite struct SetupStageTests {
    @Test func namesRoundTrip() {
        for name in ["network", "dns-gate", "proxy", "nflog", "cgroup", "child-credentials", "exec-init", "exec-agent",
                     "interrupted", "bind /usr", "mount-proc"] {
            #expect(SetupStage(name).description == name)
        }
        #expect(SetupStage("cgroup").runner == .supervisor)
        #expect(SetupStage("exec-init").runner == .child)
        #expect(SetupStage("bind /usr").runner == .initProcess)
    }

    @Test func setupFailuresPrintTheStageAndKeepTheirType() {
        let inner = CagentError(stage: "nft: add table", "refused")
        let wrapped = inner.duringSetup(hint: "the agent did not start")
        #expect(wrapped.stage == .sandboxSetup(.named("nft: add table")))
        #expect(wrapped.stage.isSandboxSetup && !inner.stage.isSandboxSetup)
        #expect(wrapped.description == "sandbox setup: nft: add table failed: refused\n  hint: the agent did not start")
        #expect(wrapped.duringSetup() == wrapped)
        #expect(CagentError(stage: .step(.dnsGate), "x").duringSetup().description.hasPrefix("sandbox setup: dns-gate failed: x"))
        #expect(throws: CagentError(stage: .step(.cgroup), "failing as asked (--fail-at-stage)")) {
            try SetupStage.inject(at: .cgroup, asked: .cgroup)
        }
        #expect(throws: Never.self) { try SetupStage.inject(at: .cgroup, asked: .network) }
    }

    @Test func agentExecStatusComesFromTheStage() {
        let missing = Launcher.setupError("stage exec-agent failed: ENOENT No such file or directory (execve)")
        let denied = Launcher.setupError("stage exec-agent failed: EACCES Permission denied (execve)")
        let mount = Launcher.setupError("stage bind /usr failed: ENOENT No such file or directory (mount)")
        #expect(missing.description.hasPrefix("sandbox setup: exec-agent failed: ENOENT No such file"))
        #expect(Launcher.agentExecStatus(missing) == 127)
        #expect(Launcher.agentExecStatus(denied) == 126)
        #expect(Launcher.agentExecStatus(mount) == nil)
        #expect(mount.stage == .sandboxSetup(.step(.initStep("bind /usr"))))
        #expect(Launcher.setupError("garbled").stage == .sandboxSetup(nil))
    }
}
