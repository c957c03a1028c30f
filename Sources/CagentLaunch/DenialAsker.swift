import CagentCore
import CagentDNS
import CagentSandbox
import Synchronization

/// `cagent enforce --ask`: the gate holds a refused name's answer and this asks the user on the terminal
/// (QuestionChannel): allow once, allow for this session, add to the profile (for the rest of the session;
/// the profile file is updated when the session is recorded, with evidence, shown as a diff), or deny. No
/// answer within `timeout`: deny. A name that looks like data sent out (EncodedLabel) is asked about only
/// with a warning that says so.
final class DenialAsker: Sendable {
    let questions: QuestionChannel
    let timeout: Double
    let profile: String
    /// Names the user chose to add to the profile, in order (the session record carries them).
    let addToProfile = Mutex<[String]>([])
    private let threads = Mutex<[DedicatedThread]>([])

    init(questions: QuestionChannel, timeout: Double, profile: String) {
        self.questions = questions; self.timeout = timeout; self.profile = profile
    }

    /// The gate's asker: never blocks the gate thread.
    var gateAsker: GateAsker {
        { [self] name, answer in
            let shown = TerminalEscape.escape(name.display)
            let key = name.lowercased().display
            do {
                let thread = try DedicatedThread.start(name: "cagent-ask") { [self] in
                    answer(decide(shown: shown, key: key))
                }
                threads.withLock { $0.append(thread) }
            } catch {
                answer(.deny)
            }
        }
    }

    func prompt(shown: String, key: String) -> String {
        var text = "cagent: the agent looks up \(shown), which the profile \(TerminalEscape.escape(profile)) does not allow.\n"
        if EncodedLabel.nameLooksEncoded(key) {
            text += "cagent: WARNING: \(shown) looks like data sent out as a DNS name (a long or high-entropy label): possible exfiltration.\n"
        }
        text += "cagent: [o] allow once  [s] allow for this session  [p] add to the profile  [d] deny"
            + "  (no answer in \(Int(timeout)) s: deny) "
        return text
    }

    func decide(shown: String, key: String) -> AskDecision {
        switch questions.ask(prompt(shown: shown, key: key), keys: ["o", "s", "p", "d"], timeout: timeout) {
        case "o": return .allowOnce
        case "s": return .allowSession
        case "p":
            addToProfile.withLock { if !$0.contains(key) { $0.append(key) } }
            return .allowSession
        default: return .deny
        }
    }

    /// Waits for the asking threads (each ends at its answer or timeout; the relay's end answers the rest).
    func join() {
        for thread in threads.withLock({ list in let all = list; list = []; return all }) { thread.join() }
    }
}
