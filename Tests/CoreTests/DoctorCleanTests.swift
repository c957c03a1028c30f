import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent doctor --clean` end to end: a leftover it must find and remove, with the scan as its control.
@Suite struct DoctorCleanTests {
    static let cagent = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/cagent").path

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip"]), "needs root and iproute2"))
    func cleanRemovesALeftoverNamespace() throws {
        try Requirements.root()
        let name = "cagent-dt\(UInt32.random(in: 0...0xFFFFFF))"
        // A session namespace nobody holds: what a crashed cagent would leave.
        try #require(try Netlab.execute(["ip", "netns", "add", name], timeout: 10).succeeded)
        defer { _ = try? Netlab.execute(["ip", "netns", "delete", name], timeout: 10) }

        let scan = try Netlab.execute([Self.cagent, "doctor", "--json"], timeout: 60)
        #expect(scan.stdout.contains("netns \(name)"), "the scan finds it: \(scan.stdout)")
        // A deadlock here once hung `--clean` forever: the timeout makes that a failure.
        let clean = try Netlab.execute([Self.cagent, "doctor", "--clean", "--json"], timeout: 60)
        #expect(clean.status != 137, "doctor --clean did not finish")
        let object = try JSONSerialization.jsonObject(with: Data(clean.stdout.utf8)) as? [String: Any]
        #expect((object?["cleaned"] as? [String] ?? []).contains("netns \(name)"), "\(clean.stdout) \(clean.stderr)")
        #expect(!FileSystem.exists("/run/netns/\(name)"))
    }
}
