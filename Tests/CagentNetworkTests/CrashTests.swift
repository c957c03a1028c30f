import Foundation
import Testing
import CagentCore
import Netlab
@testable import CagentNetwork

/// The built `cagent` executable (swift build --build-tests builds it beside the tests).
func cagentExecutable() throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.appendingPathComponent(".build/debug/cagent").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw CagentError(stage: "test setup", "needs the cagent executable at \(path)", hint: "swift build --build-tests")
    }
    return path
}

@Suite("Network crash safety", .serialized)
struct CrashTests {
    @Test("SIGKILL at each setup step and mid-session, in a loop: nothing unallowed gets out, clean-up leaves nothing, a live session is untouched",
          .enabled(if: Requirements.mayRun(root: true, tools: labTools), "needs root, ip, nft, python3, netlab tools"))
    func killAtEveryStep() throws {
        try Requirements.root()
        let cagent = try cagentExecutable()
        let lab = try UplinkLab()
        defer { lab.destroy() }
        let paths = try testPaths()
        defer { _ = try? sh("rm -rf '\(paths.runtime)'") }
        let liveSandbox = try lab.newSandbox()
        let live = try setUpSession(lab, sandbox: liveSandbox, paths: paths)
        defer { try? tearDown(live) }

        let points: [NetworkSession.Step?] = NetworkSession.Step.allCases + [nil]   // nil: mid-session
        for round in 0..<2 {
            for point in points {
                let label = "round \(round) \(point?.rawValue ?? "mid-session")"
                let sandbox = try lab.newSandbox()
                let id = "crash\(randomID(5))"
                let output = lab.lab.directory + "/\(id).out"
                var arguments = [cagent, "_network-session", "--sandbox-netns", "/run/netns/\(sandbox)",
                                 "--host-netns", "/run/netns/\(lab.host)", "--id", id, "--runtime", paths.runtime,
                                 "--allow", UplinkLab.allowedNet4, "--allow", "\(UplinkLab.endpoint4):443/tcp"]
                if let point { arguments += ["--crash-after", point.rawValue] }
                let process = try SpawnedProcess.start(arguments, stdout: output, stderr: output + ".err")
                if point == nil {
                    let deadline = Date().addingTimeInterval(20)
                    while Date() < deadline, !(FileSystem.readText(output) ?? "").contains("ready") { usleep(20_000) }
                    #expect((FileSystem.readText(output) ?? "").contains("ready"), "\(label): \(FileSystem.readText(output + ".err") ?? "")")
                    #expect(try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] == "open", "\(label)")
                    kill(process.pid, SIGKILL)
                }
                let status = process.wait(timeout: 20)
                #expect(status == 128 + SIGKILL, "\(label): exit status \(status): \(FileSystem.readText(output + ".err") ?? "")")

                // Whatever the step, the dead session's interface lets nothing unallowed out.
                let after = try lab.probe(in: sandbox, ["tcp \(UplinkLab.attacker4) 80", "udp \(UplinkLab.attacker4) 443",
                                                        "tcp \(UplinkLab.attacker6) 80", "icmp \(UplinkLab.attacker4)"])
                for (target, result) in after { #expect(result != "open" && result != "reply", "\(label): \(target) got out") }

                // The next start (here: its clean-up step, as `cagent doctor --clean` runs it) removes it all.
                _ = try onDedicatedThread { try NetworkLeftovers.clean(paths: paths, namespace: NetworkNamespace(path: "/run/netns/\(lab.host)")) }
                let ruleset = try lab.nftRuleset()
                #expect(!ruleset.contains("cgs\(id)"), "\(label): chains left behind")
                #expect(!(try sh("ip -n \(lab.host) -o link show").output.contains("cgs\(id)")), "\(label): link left behind")
                #expect(!FileSystem.exists(paths.leases + "/net-\(id).lease"), "\(label): lease left behind")
                // And afterwards the sandbox gets nothing out at all, not even what its profile allowed.
                let closed = try lab.probe(in: sandbox, ["tcp \(UplinkLab.allowedInNet4) 80", "tcp \(UplinkLab.attacker4) 80"])
                for (target, result) in closed { #expect(result != "open", "\(label): \(target) reachable after clean-up") }
                // The concurrent live session is untouched.
                #expect(try lab.probe(in: liveSandbox, ["tcp \(UplinkLab.allowedInNet4) 80"])["tcp \(UplinkLab.allowedInNet4) 80"] == "open",
                        "\(label): the live session lost its network")
                #expect(ruleset.contains(live.interface + "_fwd"))
            }
        }
        #expect(lab.lab.sinkRecords().isEmpty, "the attacker sink recorded: \(lab.lab.sinkRecords().prefix(5))")
        try tearDown(live)
        // The table stays for the next session, with no session's part in it (docs/network.md "The kept table").
        let kept = try lab.nftRuleset()
        #expect(kept.contains("table inet cagent"), "the kept table is gone")
        #expect(NftLeftovers.find(ruleset: kept).isEmpty, "a session's part outlived the last session: \(kept)")
        // Positive control, through the kept table (its rules match only cgs* interfaces; the host's own traffic
        // passes it untouched): each probe the dead sessions' sandboxes tried reaches the sink from the simulated
        // host (TCP opens, ICMP is answered, the datagram is in the sink's record).
        let control = try lab.probe(in: lab.host, ["tcp \(UplinkLab.attacker4) 80", "udp \(UplinkLab.attacker4) 443",
                                                   "tcp \(UplinkLab.attacker6) 80", "icmp \(UplinkLab.attacker4)"])
        #expect(control["tcp \(UplinkLab.attacker4) 80"] == "open" && control["tcp \(UplinkLab.attacker6) 80"] == "open"
                && control["icmp \(UplinkLab.attacker4)"] == "reply", "control: \(control)")
        #expect(lab.lab.sinkRecords().joined(separator: "\n").contains("\(UplinkLab.attacker4).443:"), "control: the sink has no record of the datagram")
        #expect(!lab.lab.sinkRecords().isEmpty, "the positive control did not reach the sink")
    }
}
