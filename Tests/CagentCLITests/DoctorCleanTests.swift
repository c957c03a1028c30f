import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent doctor --clean` end to end: a leftover it must find and remove, with the scan as its control.
///
/// Run in a mount and network namespace of its own, with a private /run/netns, its own sysfs (so its own
/// interfaces and no cgroup tree) and its own nftables: other tests' sessions run at the same time with
/// leases in their own state directories, which `doctor` (reading the default ones) cannot see; on the host
/// it would take their namespaces, veths and the `inet cagent` table for leftovers and remove them.
@Suite struct DoctorCleanTests {
    static let cagent = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/cagent").path

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft", "unshare"]), "needs root, iproute2, nft and unshare"))
    func cleanRemovesALeftoverNamespace() throws {
        try Requirements.root()
        let name = "cagent-dt\(UInt32.random(in: 0...0xFFFFFF))"
        var template = Array("/tmp/cgt-doctor-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let dir = try #require(made.map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A session namespace nobody holds (what a crashed cagent would leave), then the scan (the control) and
        // the clean; a deadlock once hung `--clean` forever: the timeout makes that a failure.
        let script = """
            set -e
            mount -t sysfs sysfs /sys
            mkdir -p /run/netns && mount -t tmpfs -o size=64k,mode=0755 none /run/netns
            ip netns add \(name)
            nft 'add table inet cagent; add chain inet cagent forward { type filter hook forward priority 0; policy accept; }'
            "\(Self.cagent)" doctor --json > \(dir)/scan.json
            "\(Self.cagent)" doctor --clean --json > \(dir)/clean.json 2> \(dir)/clean.err
            if [ -e /run/netns/\(name) ]; then echo "netns=present"; else echo "netns=gone"; fi
            if nft list tables | grep -q 'inet cagent'; then echo "table=present"; else echo "table=gone"; fi
            """
        let run = try Netlab.execute(["unshare", "--mount", "--net", "--propagation", "private", "/bin/sh", "-c", script], timeout: 120)
        #expect(run.status == 0, "doctor did not finish (137: hung): \(run.stdout) \(run.stderr)")
        let scan = (try? String(contentsOfFile: dir + "/scan.json", encoding: .utf8)) ?? ""
        let clean = (try? String(contentsOfFile: dir + "/clean.json", encoding: .utf8)) ?? ""
        #expect(scan.contains("netns \(name)"), "the scan finds it: \(scan)")
        // The kept table with no session's chains (docs/network.md "The kept table"): not a leftover in the
        // scan, said so; --clean removes it as no session is live.
        #expect(scan.contains("nft-table inet cagent: kept, empty") && !scan.contains("nft-table inet cagent,"), "\(scan)")
        let object = try JSONSerialization.jsonObject(with: Data(clean.utf8)) as? [String: Any]
        let cleaned = object?["cleaned"] as? [String] ?? []
        #expect(cleaned.contains("netns \(name)"), "\(clean) \(run.stderr)")
        #expect(run.stdout.contains("netns=gone"), "\(run.stdout)")
        // --clean removes the kept table only when no session is live; leases are machine-wide (the default
        // runtime directory), so other tests' sessions running now keep it: both outcomes are checked.
        if clean.contains("live sessions: 0") {
            #expect(cleaned.contains("nft-table inet cagent"), "\(clean)")
            #expect(run.stdout.contains("table=gone"), "\(run.stdout)")
        } else {
            #expect(!cleaned.contains("nft-table inet cagent") && clean.contains("kept, empty"), "\(clean)")
            #expect(run.stdout.contains("table=present"), "\(run.stdout)")
        }
        // Nothing of it outside its namespaces.
        #expect(!FileSystem.exists("/run/netns/\(name)"))
    }
}
