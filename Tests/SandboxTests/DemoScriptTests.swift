import CagentCore
import Foundation
import Netlab
import Testing

/// `make demo`'s script, run as the README's first command runs it: the story holds (the proposal lets the
/// agent work with no denial; the injected agent is stopped, each attempt named; the attacker got nothing),
/// the control holds (the same injected agent without cagent does reach the attacker, so "nothing" is not a
/// dead sink), and nothing is left behind. Serialized with the learn tests (learn mode overlays /opt).
extension LearnCommandTests {
    static let demoTools = ["ip", "nsenter", "setpriv", "dnsmasq", "python3", "git", "curl", "tar", "useradd"]

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: demoTools), "needs root, namespaces and the demo's tools"))
    func demoScriptTellsTheStory() throws {
        try Requirements.root()
        for tool in Self.demoTools { try Requirements.tool(tool) }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        var environment = ProcessInfo.processInfo.environment
        environment["CAGENT"] = Products.cagent
        // Its own names (files, user, namespaces): another run of this test at the same time shares none of them.
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        environment["CAGENT_DEMO_TAG"] = tag
        let run = try Netlab.execute([repository + "/scripts/demo.sh"], timeout: 120, environment: environment)
        let out = run.stdout + run.stderr
        #expect(run.status == 0, "\(out)")
        func section(_ number: Int) -> String {
            guard let start = out.range(of: "== \(number). ") else { return "" }
            let rest = out[start.upperBound...]
            return String(rest[..<(rest.range(of: "== \(number + 1). ")?.lowerBound ?? rest.endIndex)])
        }
        // 3: the proposal names what the agent used.
        for entry in ["- api.model.test", "- git.forge.test", "- packages.demo.test", "- ~/.config/demo-agent/config",
                      "- /opt/cagent-demo-\(tag)/demo-agent"] {
            #expect(section(3).contains(entry), "\(section(3))")
        }
        // 4: the same agent, no denial.
        #expect(section(4).contains("agent: tests: 2 passed") && section(4).contains("-> denials: 0"), "\(section(4))")
        // 5: injected, each attempt stopped and named.
        let injected = section(5)
        #expect(injected.contains("agent: ~/.ssh/id_rsa: not there"), "\(injected)")
        #expect(injected.contains("cagent: refused DNS exfil.attacker.test"), "\(injected)")
        #expect(injected.contains(".x.attacker.test") && injected.contains("DNS exfiltration: failed"), "\(injected)")
        #expect(injected.contains("cagent: blocked tcp 203.0.113.66:80"), "\(injected)")
        #expect(!injected.contains("SENT") && !injected.contains("answered"), "\(injected)")
        // 6: the attacker got nothing; 7, the control: without cagent it gets the key and the secret.
        #expect(section(6).contains("HTTP:      0 request(s)") && section(6).contains("DNS:       0 query"), "\(section(6))")
        #expect(section(7).contains("HTTP exfiltration: SENT") && section(7).contains("DEMO-SECRET-do-not-send")
                && section(7).contains("key=sk-demo-"), "\(section(7))")
        // Nothing left: the lab, the user, its home, the files.
        #expect(!FileSystem.list("/run/netns").contains { $0.hasPrefix("cgd-\(tag)-") })
        #expect(getpwnam("cgdemo-\(tag)") == nil)
        for path in ["/home/cgdemo-\(tag)", "/tmp/cagent-demo-\(tag)", "/opt/cagent-demo-\(tag)"] { #expect(!FileSystem.exists(path), "\(path)") }
        // The control: the names were this run's (the output says where its files were).
        #expect(out.contains("/tmp/cagent-demo-\(tag) are removed"), "\(out.suffix(300))")
    }
}
