@testable import CagentLaunch
import CagentSandbox
import Testing

/// The --ask question: never about a name that looks like data sent out without saying so.
@Suite struct DenialAskerTests {
    @Test func anExfiltrationLookingNameIsAskedAboutOnlyWithAWarning() {
        let asker = DenialAsker(questions: QuestionChannel(), timeout: 30, profile: "p\u{1B}.yaml")
        let plain = asker.prompt(shown: "api.allowed.test", key: "api.allowed.test")
        #expect(plain.contains("api.allowed.test") && plain.contains("[o] allow once") && !plain.contains("WARNING"), "\(plain)")
        #expect(!plain.unicodeScalars.contains { $0.value == 0x1B }, "the profile name is escaped: \(plain)")
        let name = "mzxw6ytboi2dqnzrgq3tmnbvgu2dcnjx.t.attacker.test"
        let encoded = asker.prompt(shown: name, key: name)
        #expect(encoded.contains("WARNING: \(name) looks like data sent out as a DNS name"), "\(encoded)")
    }

    /// Outside a session with a terminal nobody can answer: no question waits, the answer is deny.
    @Test func withoutATerminalTheAnswerIsDenyAtOnce() {
        let asker = DenialAsker(questions: QuestionChannel(), timeout: 30, profile: "p.yaml")
        #expect(asker.decide(shown: "api.allowed.test", key: "api.allowed.test") == .deny)
        #expect(asker.addToProfile.withLock { $0 }.isEmpty)
    }
}
