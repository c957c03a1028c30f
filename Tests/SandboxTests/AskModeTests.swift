import CagentCore
import Foundation
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cagent enforce --ask` on a terminal the test drives (`script` gives cagent a pty; the test reads what cagent
/// shows and types the answer): the gate holds api.allowed.test (not in the profile) and cagent asks.
/// Allow once lets the connection through and leaves the profile as it was; add to the profile lets it through
/// and writes the entry with its evidence; no answer denies. Each answer's control is another: the same
/// workload is refused when nobody answers, and goes through when someone does.
@Suite(.serialized) struct AskModeTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dnsmasq", "python3", "script"]
    static let original = "cagent: 1\nextends: [base]\nnetwork:\n  domains:\n    - www.allowed.test\n"

    /// A running `script -qfec COMMAND /dev/null`: its output so far, and a way to type into it.
    final class Buffer: @unchecked Sendable {
        private let lock = NSLock()
        private var text = ""
        func append(_ more: String) { lock.lock(); text += more; lock.unlock() }
        var value: String { lock.lock(); defer { lock.unlock() }; return text }
    }

    final class Driven: @unchecked Sendable {
        let process: Process
        let input: Pipe
        let text = Buffer()
        init(_ command: String, environment: [String: String]) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            process.arguments = ["-qfec", command, "/dev/null"]
            process.environment = environment
            input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            let text = text
            output.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                text.append(String(decoding: data, as: UTF8.self))
            }
            try process.run()
        }
        var output: String { text.value }
        func waitFor(_ needle: String, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if output.contains(needle) { return true }
                usleep(50_000)
            }
            return output.contains(needle)
        }
        func type(_ keys: String) { input.fileHandleForWriting.write(Data(keys.utf8)) }
        func finish(seconds: Double) -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { process.terminate(); return nil }
            usleep(100_000)
            return process.terminationStatus
        }
    }

    func run(_ lab: Netlab, _ world: SandboxFixture, profile: String, timeout: Double,
             answer: String?) throws -> (output: String, status: Int32?) {
        try world.write(world.workspace + "/run.sh", """
        curl -sS -m 30 -o /dev/null -w 'api %{http_code}\\n' http://api.allowed.test/ || echo api-failed
        echo workload-done
        """)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = world.home
        environment["CAGENT_RUNTIME_DIR"] = world.root + "/run"
        let command = "nsenter --net=/run/netns/\(lab.hostNamespace) \(Products.cagent) enforce --ask --ask-timeout \(timeout) "
            + "--profile \(profile) --user \(SandboxFixture.agentUID) --workspace \(world.workspace) --state-dir \(world.state) "
            + "--upstream-dns \(NetlabAddresses.dns4) -- /bin/sh \(world.workspace)/run.sh"
        let driven = try Driven(command, environment: environment)
        let asked = driven.waitFor("[o] allow once", seconds: 30)
        if asked, let answer { driven.type(answer) }
        let status = driven.finish(seconds: 90)
        #expect(asked, "never asked: \(driven.output)")
        return (driven.output, status)
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces, the netlab's tools and script"))
    func allowOnceAddToProfileAndNoAnswer() throws {
        try Requirements.root()
        for tool in Self.tools { try Requirements.tool(tool) }
        let lab = try Netlab(); defer { lab.shutdown() }
        let world = try SandboxFixture(); defer { world.remove() }
        let profile = world.root + "/p.yaml"
        try Self.original.write(toFile: profile, atomically: true, encoding: .utf8)

        // No answer: denied after the timeout, the refusal reported, the profile unchanged.
        let silent = try run(lab, world, profile: profile, timeout: 2, answer: nil)
        #expect(silent.status == 0 && silent.output.contains("api-failed") && silent.output.contains("workload-done"), "\(silent.output)")
        #expect(silent.output.contains("no answer in time: denied") && silent.output.contains("refused DNS api.allowed.test"), "\(silent.output)")

        // Allow once: the connection goes through; the profile is as it was.
        let once = try run(lab, world, profile: profile, timeout: 20, answer: "o")
        #expect(once.status == 0 && once.output.contains("api 200") && once.output.contains("workload-done"), "\(once.output)")
        #expect(!once.output.contains("refused DNS api.allowed.test"), "\(once.output)")
        #expect(world.read(profile) == Self.original)

        // Add to the profile: through, and the profile gains the entry with its evidence (the diff is shown).
        let added = try run(lab, world, profile: profile, timeout: 20, answer: "p")
        #expect(added.status == 0 && added.output.contains("api 200"), "\(added.output)")
        let text = world.read(profile) ?? ""
        #expect(text.hasPrefix(Self.original) && text.contains("# added at the --ask prompt in session ")
                && text.hasSuffix("\n    - api.allowed.test\n"), "\(text)")
        #expect(added.output.contains("+    - api.allowed.test"), "the diff: \(added.output)")
    }
}
