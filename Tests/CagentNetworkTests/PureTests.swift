import Testing
import CShim
#if canImport(Glibc)
import Glibc
#endif
import CagentCore
@testable import CagentNetwork

@Suite("Addresses and pool")
struct AddressTests {
    @Test("Strict parsing: decimal, hex and octal spellings are not addresses")
    func parsing() {
        #expect(IPAddress("203.0.113.66")?.bytes == [203, 0, 113, 66])
        #expect(IPAddress("3405803842") == nil)
        #expect(IPAddress("0xcb007142") == nil)
        #expect(IPAddress("0313.0.0161.0102") == nil)
        #expect(IPAddress("2001:db8::1")?.family == .v6)
        #expect(IPAddress("[2001:db8::1]")?.description == "2001:db8::1")
        #expect(IPNetwork("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(IPNetwork("10.0.0.0/33") == nil)
        #expect(IPNetwork("2001:db8::/32")!.contains(IPAddress("2001:db8:1::5")!))
        #expect(!IPNetwork("2001:db8::/32")!.contains(IPAddress("203.0.113.1")!))
        #expect(IPNetwork("203.0.113.10/31")!.last.description == "203.0.113.11")
    }

    @Test("Default pool avoids this machine's networks, the test ranges and metadata")
    func defaultPool() throws {
        let pool = AddressPool.standard
        let first = pool.addresses(slot: 0)
        #expect(first.network4?.description == "100.72.0.0/30")
        #expect(first.gateway4?.description == "100.72.0.1")
        #expect(first.sandbox4?.description == "100.72.0.2")
        #expect(first.network6?.description == "fd63:6167:656e::/64")
        #expect(first.sandbox6?.description == "fd63:6167:656e::2")
        #expect(pool.addresses(slot: 3).network6?.description == "fd63:6167:656e:3::/64")
        #expect(pool.addresses(slot: 3).network4?.description == "100.72.0.12/30")
        let avoid = ["192.0.2.0/24", "fd00::/64", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
            .map { IPNetwork($0)! }
        for slot in [0, 1, 100, pool.slotCount - 1] {
            let addresses = pool.addresses(slot: slot)
            #expect(!avoid.contains { $0.overlaps(addresses.network4!) || $0.overlaps(addresses.network6!) })
        }
    }

    @Test("A slot whose block overlaps a host route or a live session is skipped; default routes do not count")
    func allocation() throws {
        let pool = AddressPool.standard
        let routes = ["0.0.0.0/0", "::/0", "100.72.0.0/29", "fd63:6167:656e:2::/64"].map { IPNetwork($0)! }
        // Slots 0 and 1 overlap the /29, slot 2 the IPv6 route, slot 3 is taken by a live session.
        #expect(try pool.firstFree(taken: [3], occupied: routes) == 4)
        // A host route covering the whole pool exhausts it, with a hint.
        #expect(throws: CagentError.self) { try pool.firstFree(taken: [], occupied: [IPNetwork("100.64.0.0/10")!]) }
        let custom = try AddressPool(pool4: "10.99.0.0/24", pool6: nil)
        #expect(custom.addresses(slot: 1).gateway4?.description == "10.99.0.5")
        #expect(throws: CagentError.self) { try AddressPool(pool4: "10.99.0.0/31", pool6: nil) }
        #expect(throws: CagentError.self) { try AddressPool(pool4: "fd00::/48", pool6: nil) }
    }

    @Test("Profile entries: literal cidrs and endpoints become set elements, names go to the gate")
    func entries() throws {
        let parsed = try AllowEntry.parse(cidrs: ["203.0.113.0/24", "2001:db8::1"],
                                          endpoints: [("198.51.100.7", 22, "tcp"), ("github.com", 22, "tcp"), ("2001:db8::5", 443, "udp")])
        #expect(parsed.entries.map(\.description) == ["203.0.113.0/24", "2001:db8::1/128", "198.51.100.7:22/tcp", "[2001:db8::5]:443/udp"])
        #expect(parsed.named.map(\.host) == ["github.com"])
        #expect(throws: CagentError.self) { try AllowEntry.parse(cidrs: ["example.com"], endpoints: []) }
        #expect(throws: CagentError.self) { try AllowEntry.parse(cidrs: [], endpoints: [("1.2.3.4", 1, "sctp")]) }
    }
}

@Suite("Ruleset batches")
struct BatchTests {
    static let spec = Firewall.SessionSpec(
        interface: "cgstest", gateway4: IPAddress("100.72.0.1"), gateway6: IPAddress("fd63:6167:656e::1"), gatePort: 15353,
        nflogGroup: 40000,
        entries: [.network(IPNetwork("203.0.113.0/24")!), .network(IPNetwork("203.0.113.10/31")!), // nested: kept once
                  .endpoint(IPAddress("198.51.100.7")!, .tcp, 22), .endpoint(IPAddress("2001:db8::5")!, .udp, 443)])

    @Test("Permanent part and one session's part equal the golden batch")
    func golden() throws {
        var batch = Firewall.permanentBatch()
        batch.operations += Firewall.sessionBatch(Self.spec).operations
        try expectGolden(batch.text, "batch-permanent-and-session.txt")
        try expectGolden(Firewall.removeSessionBatch(interface: "cgstest").text, "batch-remove-session.txt")
    }

    @Test("Learn mode: the session's part equals the golden batch (LAN and metadata dropped, new flows logged)")
    func learnGolden() throws {
        var spec = Self.spec
        spec.mode = .learn
        spec.unreachable = [AddressPool.standard.pool4, AddressPool.standard.pool6]
        let text = Firewall.sessionBatch(spec).text
        try expectGolden(text, "batch-learn-session.txt")
        // The flow log comes after every drop, and nothing of the allow sets is consulted.
        let lines = text.split(separator: "\n").map(String.init)
        let flow = try #require(lines.firstIndex { $0.contains("log prefix \"cagent-flow \"") })
        for network in ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fd00:ec2::254"] {
            let index = try #require(lines.firstIndex { $0.contains("daddr \(network) ") }, "\(network) not dropped")
            #expect(index < flow && lines[index].hasSuffix("drop"))
        }
        // The session pool: one rule per family (the pool rule, as in enforce mode), none from `unreachable`.
        for network in ["100.72.0.0/16", "fd63:6167:656e::/48"] {
            let matching = lines.indices.filter { lines[$0].contains("daddr \(network) ") }
            #expect(matching.count == 1 && matching.allSatisfy { $0 < flow }, "\(network): \(matching)")
        }
        #expect(!text.contains("@cgstest_allow4"))
        #expect(Firewall.removeSessionBatch(interface: "cgstest").text == Firewall.removeSessionBatch(interface: "cgstest").text)
    }

    @Test("Nothing enters a sandbox ahead of every session's chain; the pool is dropped before any accept, in both modes")
    func inboundIsolation() throws {
        let permanent = Firewall.permanentBatch().text.split(separator: "\n").map(String.init)
        let forward = permanent.filter { $0.hasPrefix("add rule inet cagent forward ") }
        let map = try #require(forward.firstIndex { $0.contains("vmap @sessions_fwd") })
        #expect(forward.firstIndex { $0.hasSuffix("iifname \"cgs*\" oifname \"cgs*\" drop") } ?? .max < map)
        #expect(forward.firstIndex { $0.hasSuffix("forward oifname \"cgs*\" drop") } ?? .max < map)
        let output = permanent.filter { $0.hasPrefix("add rule inet cagent output ") }
        #expect(output.last?.hasSuffix("oifname \"cgs*\" drop") == true, "\(output)")
        #expect(output.allSatisfy { $0.contains("oifname \"cgs*\"") }, "the output chain touches only sandbox interfaces")
        // The upgrade of an older table: its forward rules replaced, the output chain added, as in a fresh table.
        let upgrade = Firewall.permanentUpgradeBatch().text.split(separator: "\n").map(String.init)
        #expect(upgrade.first == "flush chain inet cagent forward")
        #expect(Array(upgrade.dropFirst()) == permanent.filter { $0.contains(" forward ") || $0.contains(" output ") }
            .filter { !$0.hasPrefix("add chain inet cagent forward") }, "\(upgrade)")
        for mode in [Firewall.Mode.enforce, .learn] {
            var spec = Self.spec
            spec.mode = mode
            spec.entries = [.network(IPNetwork("0.0.0.0/0")!), .network(IPNetwork("::/0")!)]
            let lines = Firewall.sessionBatch(spec).text.split(separator: "\n").map(String.init).filter { $0.contains("cgstest_fwd ") }
            let firstAccept = try #require(lines.indices.first { lines[$0].hasSuffix("accept") && !lines[$0].contains("ct state established") })
            for network in ["100.72.0.0/16", "fd63:6167:656e::/48"] {
                let index = try #require(lines.firstIndex { $0.contains("daddr \(network) ") }, "\(mode): \(network) not dropped")
                #expect(index < firstAccept && lines[index].hasSuffix("drop"), "\(mode): \(network)")
            }
        }
    }

    @Test("The session chain exists before anything sends traffic into it: map entries come last")
    func ordering() {
        let operations = Firewall.sessionBatch(Self.spec).operations
        let firstMapEntry = operations.firstIndex {
            if case .addElements(let set, _) = $0 { return set.hasPrefix("sessions_") } else { return false }
        }!
        let lastChainOrRule = operations.lastIndex {
            switch $0 { case .addChain, .addRule: return true; default: return false }
        }!
        #expect(lastChainOrRule < firstMapEntry)
    }

    @Test("Encoding: every message is acknowledged; element chunks stay under 64 KiB")
    func encoding() throws {
        var batch = NftBatch(table: Firewall.table)
        let elements = (0..<2000).map { Firewall.element(IPAddress(bytes: [10, 0, UInt8($0 / 256), UInt8($0 % 256)])!, .tcp, 443, timeout: 60_000) }
        batch.operations.append(.addElements(set: "cgstest_allow4", elements))
        let (bytes, acks, _) = try batch.encode(firstSequence: 1)
        #expect(acks == 5)   // 2000 elements in chunks of 400
        var offset = 0, messages = 0
        while offset < bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16
            #expect(length < 65536)
            offset += (length + 3) & ~3
            messages += 1
        }
        #expect(messages == 7)  // begin + 5 + end
    }

    @Test("Element keys: address . proto . port, each field padded to 32 bits")
    func keys() {
        #expect(Firewall.key(IPAddress("203.0.113.5")!, 6, 443) == [203, 0, 113, 5, 6, 0, 0, 0, 1, 187, 0, 0])
        let block = Firewall.networkElement(IPNetwork("10.0.0.0/8")!)
        #expect(block.key == [10, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0])
        #expect(block.keyEnd == [10, 255, 255, 255, 6, 0, 0, 0, 255, 255, 0, 0])
    }
}

@Suite("Detached teardown")
struct DetachTests {
    /// A fork of a multithreaded process may copy a lock another thread holds (the allocator's, the Swift
    /// runtime's): cg_detach forks only a single-threaded process and otherwise leaves the teardown to the
    /// caller (NetworkSession.tearDownDetached returns false). With a second thread surely running, it refuses.
    @Test("cg_detach forks nothing while another thread runs")
    func refusesWithThreads() throws {
        let release = Latch()
        let other = try DedicatedThread.start(name: "cagent-test-other") { release.wait() }
        defer { release.open(); other.join() }
        errno = 0
        let pid = cg_detach(-1, nil)
        let error = errno
        #expect(pid == -1 && error == EBUSY, "cg_detach forked (pid \(pid), errno \(error)) with two threads running")
    }
}
