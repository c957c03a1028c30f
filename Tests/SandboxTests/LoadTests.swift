import CagentCore
import Foundation
import Netlab
import Testing

/// Load (docs/testing.md "Load", figures in docs/benchmarks.md "Load"): ten `cagent enforce` sessions at once,
/// a DNS flood from inside one sandbox while another keeps resolving, and an open() storm under `cagent learn`.
/// All of it in one netlab (its simulated host runs every cagent), with this test's own runtime directory.
@Suite(.serialized) struct LoadTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dig", "dnsmasq", "tcpdump", "python3"]

    /// A profile allowing one name and one static endpoint.
    static func profile(agent: String, domain: String, endpoint: String) -> String {
        """
        cagent: 1
        agent: \(agent)
        extends: [base]
        network:
          domains: [\(domain)]
          endpoints: ["\(endpoint)"]

        """
    }

    struct Session {
        let process: SpawnedProcess
        let output: String
        let workspace: String
        var stdout: String { FileSystem.readText(output) ?? "" }
        var stderr: String { FileSystem.readText(output + ".err") ?? "" }
    }

    /// `cagent enforce` in the lab's simulated host, with its own workspace and state; the pid is cagent's.
    static func startEnforce(lab: Netlab, fixture: SandboxFixture, name: String, profile: String, script: String) throws -> Session {
        let workspace = fixture.root + "/ws-\(name)", state = fixture.root + "/state-\(name)"
        try fixture.makeDirectory(workspace)
        let profilePath = fixture.root + "/\(name).yaml"
        try profile.write(toFile: profilePath, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = fixture.home
        environment["CAGENT_RUNTIME_DIR"] = fixture.root + "/run"
        let output = fixture.root + "/\(name).out"
        let process = try SpawnedProcess.start(
            ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "enforce", "--profile", profilePath,
             "--user", String(SandboxFixture.agentUID), "--workspace", workspace, "--state-dir", state,
             "--upstream-dns", NetlabAddresses.dns4, "--", "/bin/sh", "-c", script],
            stdout: output, stderr: output + ".err", environment: environment)
        return Session(process: process, output: output, workspace: workspace)
    }

    static func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// The static endpoints the netlab serves: 4 web addresses x 3 ports, 10 of them used.
    static let endpoints: [(address: String, port: Int)] = NetlabAddresses.webTCPPorts.flatMap { port in
        NetlabAddresses.webAll4.map { ($0, port) }
    }

    @Test("Ten sandboxes at once: no address, name or nflog-group collision, and each enforces its own profile only",
          .enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"),
          .timeLimit(.minutes(5)))
    func tenSandboxesAtOnce() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let count = 10
        // Each sandbox's own name (a hosts record of the lab's DNS server, at an address no endpoint uses, so a
        // name pins nothing another sandbox's endpoint check could reach) and endpoint.
        let nameAddress = "203.0.113.20"
        var records: [String: String] = [:]
        for index in 0..<count { records["load\(index).allowed.test"] = nameAddress }
        try lab.setRecords(records)
        // The sandbox sees its workspace, not the rest of /tmp: the go file is written into each workspace.
        let go = "go"
        var sessions: [Session] = []
        defer { for session in sessions { session.process.stop() } }
        for index in 0..<count {
            let own = Self.endpoints[index]
            // Every sandbox tries every name and every endpoint: its own must work, the nine others' must not.
            var checks = ""
            for other in 0..<count {
                let endpoint = Self.endpoints[other]
                // Its own: up to three tries (the machine may be loaded); the others' must fail at the first.
                let tries = other == index ? 3 : 1
                checks += """
                for try in $(seq \(tries)); do
                  answer=$(dig +time=2 +tries=1 +short load\(other).allowed.test | head -1); [ -n "$answer" ] && break
                done
                echo "name\(other) $answer"
                for try in $(seq \(tries)); do
                  code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://\(endpoint.address):\(endpoint.port)/); [ "$code" = 200 ] && break
                done
                echo "endpoint\(other) $code"

                """
            }
            let script = """
            echo "address $(ip -4 -o addr show eth0 | awk '{print $4}')"
            echo up
            while [ ! -e \(go) ]; do sleep 0.05; done
            \(checks)
            echo done
            """
            sessions.append(try Self.startEnforce(
                lab: lab, fixture: fixture, name: "load\(index)",
                profile: Self.profile(agent: "load\(index)", domain: "load\(index).allowed.test", endpoint: "\(own.address):\(own.port)/tcp"),
                script: script))
        }
        // All ten up at once: their leases name distinct interfaces, slots (addresses) and nflog groups.
        let allUp = Self.eventually(120) { sessions.allSatisfy { $0.stdout.contains("up") } }
        #expect(allUp, "not all started: \(sessions.map { $0.stderr.suffix(200) })")
        let leases = FileSystem.list(fixture.root + "/run/sessions").filter { $0.hasPrefix("net-") }
            .map { FileSystem.readText(fixture.root + "/run/sessions/" + $0) ?? "" }
        func values(_ key: String) -> [String] {
            leases.flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(leases.count == count, "leases: \(leases)")
        for key in ["link", "slot", "nflog"] {
            #expect(values(key).count == count && Set(values(key)).count == count, "\(key) collides: \(values(key))")
        }
        let addresses = sessions.compactMap { session in
            session.stdout.split(separator: "\n").first { $0.hasPrefix("address ") }.map { String($0.dropFirst(8)) }
        }
        #expect(addresses.count == count && Set(addresses).count == count, "addresses collide: \(addresses)")
        let rules = try lab.run(in: .host, ["nft", "list", "chains"]).stdout
        #expect(rules.components(separatedBy: "_fwd").count - 1 >= count, "not every session has its chains: \(rules.prefix(300))")

        for session in sessions { _ = FileManager.default.createFile(atPath: session.workspace + "/" + go, contents: nil) }
        for (index, session) in sessions.enumerated() {
            let status = session.process.wait(timeout: 120)
            #expect(status == 0, "sandbox \(index): status \(status): \(session.stderr.suffix(400))")
        }
        for (index, session) in sessions.enumerated() {
            let lines = session.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains("done"), "sandbox \(index) did not finish: \(session.stdout)")
            for other in 0..<count {
                let name = lines.first { $0.hasPrefix("name\(other) ") }
                let endpoint = lines.first { $0.hasPrefix("endpoint\(other) ") }
                // A probe that did not run fails: each line must be there.
                #expect(name != nil && endpoint != nil, "sandbox \(index): probe \(other) did not run: \(session.stdout)")
                if other == index {
                    #expect(name == "name\(other) \(nameAddress)", "sandbox \(index): its own name: \(name ?? "-")")
                    #expect(endpoint == "endpoint\(other) 200", "sandbox \(index): its own endpoint: \(endpoint ?? "-")")
                } else {
                    #expect(name == "name\(other) ", "sandbox \(index) resolved sandbox \(other)'s name: \(name ?? "-")")
                    #expect(endpoint == "endpoint\(other) 000", "sandbox \(index) reached sandbox \(other)'s endpoint: \(endpoint ?? "-")")
                }
            }
        }
        // The control that the names resolve at all is each sandbox's own (above); the lab's server saw every name.
        for index in 0..<count { #expect(!lab.dnsQueries(containing: "load\(index).allowed.test").isEmpty) }
        DetachedTeardowns.wait(runtime: fixture.root + "/run")
        #expect(FileSystem.list(fixture.root + "/run/sessions").filter { $0.hasSuffix(".lease") }.isEmpty, "leases left")
        let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"]).stdout
        #expect(NftLeftovers.find(ruleset: ruleset).isEmpty, "nft left: \(ruleset)")
    }

    /// The flood: as many queries for fresh names as the gate takes (non-blocking sends, replies drained),
    /// for `seconds`; prints what it sent and what was answered.
    static let floodProgram = """
    import random, select, socket, struct, sys, time
    seconds = float(sys.argv[1])
    server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    def query(name):
        q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
        for label in name.split("."):
            q += bytes([len(label)]) + label.encode()
        return q + b"\\0" + struct.pack(">HH", 1, 1)
    sent = answered = 0
    start = time.time()
    end = start + seconds
    while time.time() < end:
        for _ in range(32):
            try:
                s.sendto(query("f%x.flood.attacker.test" % random.getrandbits(40)), (server, 53))
                sent += 1
            except BlockingIOError:
                break
        while True:
            try:
                s.recv(4096); answered += 1
            except BlockingIOError:
                break
    drain = time.time() + 1
    while time.time() < drain:
        if select.select([s], [], [], 0.1)[0]:
            try: s.recv(4096); answered += 1
            except BlockingIOError: pass
    print("flood sent %d answered %d seconds %.2f" % (sent, answered, seconds), flush=True)
    """

    /// The worker: one lookup of an allowed name every 10 ms, each timed (1 s timeout), until `stop` exists.
    static let workerProgram = """
    import os, random, socket, struct, sys, time
    stop, phase_file = sys.argv[1], sys.argv[2]
    server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
    def query(name, ident):
        q = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        for label in name.split("."):
            q += bytes([len(label)]) + label.encode()
        return q + b"\\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    print("ready", flush=True)
    while not os.path.exists(stop):
        phase = "flood" if os.path.exists(phase_file) else "quiet"
        ident = random.randrange(65536)
        began = time.time()
        try:
            s.sendto(query("www.allowed.test", ident), (server, 53))
            while True:
                data = s.recv(4096)
                if struct.unpack(">H", data[:2])[0] == ident:
                    break
            rcode = data[3] & 15
            answers = struct.unpack(">H", data[6:8])[0]
            ok = rcode == 0 and answers > 0
            print("lookup %s %s %.3f" % (phase, "ok" if ok else "bad", (time.time() - began) * 1000), flush=True)
        except socket.timeout:
            print("lookup %s timeout 1000" % phase, flush=True)
        time.sleep(0.01)
    """

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    /// VmHWM (peak resident set) of a live process, in KiB.
    static func peakRSS(_ pid: Int32) -> Int? {
        (FileSystem.readText("/proc/\(pid)/status") ?? "").split(separator: "\n")
            .first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
    }

    @Test("A DNS flood from one sandbox (bounded) while another keeps resolving: the other stays fast, cagent's memory stays bounded, drops are counted",
          .enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"),
          .timeLimit(.minutes(5)))
    func dnsFloodBesideAWorkingSandbox() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let seconds = ProcessInfo.processInfo.environment["CAGENT_FLOOD_SECONDS"].flatMap(Double.init) ?? 10
        // Each sandbox sees its own workspace (its working directory) and nothing else of /tmp: the programs and
        // the signal files (go, stop, end) are written there.
        let floodSpace = fixture.root + "/ws-flooder", workSpace = fixture.root + "/ws-worker"
        try fixture.write(floodSpace + "/flood.py", Self.floodProgram)
        try fixture.write(workSpace + "/worker.py", Self.workerProgram)
        let flooder = try Self.startEnforce(
            lab: lab, fixture: fixture, name: "flooder",
            profile: Self.profile(agent: "flooder", domain: "www.allowed.test", endpoint: "203.0.113.11:8080/tcp"),
            script: "echo up; while [ ! -e go ]; do sleep 0.05; done; python3 flood.py \(seconds); echo flooded; while [ ! -e end ]; do sleep 0.05; done")
        let worker = try Self.startEnforce(
            lab: lab, fixture: fixture, name: "worker",
            profile: Self.profile(agent: "worker", domain: "www.allowed.test", endpoint: "203.0.113.11:8080/tcp"),
            script: "python3 worker.py stop go")
        defer { flooder.process.stop(); worker.process.stop() }
        let started = Self.eventually(60) { flooder.stdout.contains("up") && worker.stdout.contains("ready") }
        #expect(started, "sessions did not start: \(flooder.stderr.suffix(300)) \(worker.stderr.suffix(300))")
        let rssBefore = Self.peakRSS(flooder.process.pid) ?? 0
        usleep(2_000_000)   // the worker's quiet baseline
        for space in [floodSpace, workSpace] { _ = FileManager.default.createFile(atPath: space + "/go", contents: nil) }
        let flooded = Self.eventually(seconds + 30) { flooder.stdout.contains("flooded") }
        #expect(flooded, "the flood did not finish: \(flooder.stdout) \(flooder.stderr.suffix(300))")
        // Read while both sessions live: cagent's peak memory, and the kernel's drop counters of the gates' sockets.
        let rssFlooder = Self.peakRSS(flooder.process.pid) ?? -1
        let rssWorker = Self.peakRSS(worker.process.pid) ?? -1
        let udp = try lab.run(in: .host, ["cat", "/proc/net/udp"]).stdout
        // Columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops. The unconnected sockets
        // of the lab's host are the gates' (their upstream sockets are connected).
        let gateDrops = udp.split(separator: "\n").dropFirst().compactMap { line -> Int? in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 13, f[2] == "00000000:0000" else { return nil }
            return Int(f.last ?? "")
        }.reduce(0, +)
        _ = FileManager.default.createFile(atPath: workSpace + "/stop", contents: nil)
        _ = FileManager.default.createFile(atPath: floodSpace + "/end", contents: nil)
        let flooderStatus = flooder.process.wait(timeout: 60), workerStatus = worker.process.wait(timeout: 60)
        #expect(flooderStatus == 0 && workerStatus == 0, "statuses \(flooderStatus) \(workerStatus): \(flooder.stderr.suffix(400)) \(worker.stderr.suffix(400))")

        let floodLine = flooder.stdout.split(separator: "\n").first { $0.hasPrefix("flood sent ") } ?? ""
        let numbers = floodLine.split(separator: " ").compactMap { Double($0) }
        let sent = numbers.count >= 2 ? numbers[0] : 0, answered = numbers.count >= 2 ? numbers[1] : 0
        let lookups = worker.stdout.split(separator: "\n").filter { $0.hasPrefix("lookup ") }.map { $0.split(separator: " ") }
        func latencies(_ phase: String) -> [Double] { lookups.filter { $0[1] == phase && $0[2] == "ok" }.compactMap { Double($0[3]) } }
        let quiet = latencies("quiet"), during = latencies("flood")
        let failedDuring = lookups.filter { $0[1] == "flood" && $0[2] != "ok" }.count
        let report = String(format: "dns flood %.0f s: sent %.0f (%.0f/s), answered %.0f (%.0f/s), dropped %.0f (client-side), gate socket drops %d; worker lookups quiet n=%d p50 %.2f ms p99 %.2f ms; during the flood n=%d p50 %.2f ms p99 %.2f ms, failed %d; cagent peak RSS: flooder %d KiB (before the flood %d), worker %d KiB",
                            seconds, sent, sent / seconds, answered, answered / seconds, sent - answered, gateDrops,
                            quiet.count, Self.percentile(quiet, 0.5), Self.percentile(quiet, 0.99),
                            during.count, Self.percentile(during, 0.5), Self.percentile(during, 0.99), failedDuring,
                            rssFlooder, rssBefore, rssWorker)
        print(report)
        try? (report + "\n").write(toFile: "/tmp/cagent-load-figures.txt", atomically: true, encoding: .utf8)
        // The flood ran (a dead flood proves nothing) and the gate answered most of it.
        #expect(sent > 1000 && answered > 0, "\(report)")
        // The other sandbox kept working, fast: every lookup during the flood answered, and quickly.
        #expect(during.count >= 20 && quiet.count >= 20, "\(report)")
        #expect(Double(failedDuring) <= Double(during.count + failedDuring) * 0.02, "\(report)")
        #expect(Self.percentile(during, 0.5) < 50 && Self.percentile(during, 0.99) < 500, "\(report)")
        // Memory stays bounded: the flooder's cagent stays within 256 MiB whatever the number of names.
        #expect(rssFlooder > 0 && rssFlooder < 256 * 1024, "\(report)")
        // Counted and reported: the session's summary counts the refused names, says how many distinct ones its
        // list could not keep, and what the kernel dropped before the gate read it (at least what was seen here).
        let stderrLines = flooder.stderr.split(separator: "\n").map(String.init)
        #expect(stderrLines.contains { $0.contains(" refused") && $0.contains(" blocked") }, "\(flooder.stderr.suffix(400))")
        let reportedDrops = stderrLines.first { $0.hasPrefix("cagent: the DNS gate could not keep up: ") }
            .flatMap { Int($0.dropFirst("cagent: the DNS gate could not keep up: ".count).split(separator: " ").first ?? "") } ?? 0
        #expect(gateDrops == 0 || reportedDrops >= gateDrops, "the kernel dropped \(gateDrops), cagent said \(reportedDrops): \(flooder.stderr.suffix(400))")
        if answered > 20_000 { #expect(stderrLines.contains { $0.contains("more distinct not listed") }, "\(flooder.stderr.suffix(400))") }
        print("flooder's last lines: \(stderrLines.suffix(3))")
    }

    @Test("An open() storm under cagent learn: every file the workload opened is recorded, or the loss is reported",
          .enabled(if: Requirements.mayRun(root: true, tools: tools + ["sqlite3"]), "needs root, namespaces, the netlab's tools and sqlite3"),
          .timeLimit(.minutes(5)))
    func openStormDuringLearn() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let files = ProcessInfo.processInfo.environment["CAGENT_STORM_FILES"].flatMap { Int($0) } ?? 2000
        let rounds = 5
        // The workload: `files` distinct files made, then each opened `rounds` times, as fast as Python goes.
        let program = """
        import os, sys, time
        base, files, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        os.makedirs(base, exist_ok=True)
        for i in range(files):
            open("%s/f%05d" % (base, i), "w").close()
        began = time.time()
        for _ in range(rounds):
            for i in range(files):
                open("%s/f%05d" % (base, i)).close()
        took = time.time() - began
        print("storm %d opens in %.2f s" % (files * rounds, took), flush=True)
        """
        try fixture.write(fixture.workspace + "/storm.py", program)
        let database = fixture.root + "/learn.db"
        var environment = ProcessInfo.processInfo.environment
        environment["CAGENT_RUNTIME_DIR"] = fixture.root + "/run"
        let output = fixture.root + "/learn.out"
        let process = try SpawnedProcess.start(
            ["nsenter", "--net=/run/netns/\(lab.hostNamespace)", Products.cagent, "learn", "--user", String(SandboxFixture.agentUID),
             "--home", fixture.home, "--state-dir", fixture.state, "--db", database, "--workspace", fixture.workspace,
             "--", "/usr/bin/python3", fixture.workspace + "/storm.py", fixture.workspace + "/storm", String(files), String(rounds)],
            stdout: output, stderr: output + ".err", environment: environment)
        let status = process.wait(timeout: 240)
        let out = FileSystem.readText(output) ?? "", err = FileSystem.readText(output + ".err") ?? ""
        #expect(status == 0, "learn failed (\(status)): \(err.suffix(600))")
        #expect(out.contains("storm \(files * rounds) opens"), "the workload did not run: \(out) \(err.suffix(300))")
        // The tracer's own count of what it lost.
        let summary = err.split(separator: "\n").first { $0.contains("syscalls traced") }.map(String.init) ?? ""
        let lostText = summary.components(separatedBy: " syscalls traced, ").last?.split(separator: " ").first
        let lost = lostText.flatMap { Int($0) }
        let traced = summary.components(separatedBy: " syscalls traced").first?.split(separator: " ").last.flatMap { Int($0) }
        #expect(lost != nil, "the summary does not say what the tracer lost: \(err.suffix(600))")
        let query = try Netlab.execute(["sqlite3", database,
            "SELECT count(DISTINCT path) FROM files WHERE path LIKE '%/storm/f%'; SELECT coalesce(sum(count),0) FROM files WHERE path LIKE '%/storm/f%';"],
            timeout: 30)
        let numbers = query.stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(numbers.count == 2, "the store does not open: \(query.stdout) \(query.stderr)")
        let distinct = numbers.first ?? 0, opens = numbers.dropFirst().first ?? 0
        let storm = out.split(separator: "\n").first { $0.hasPrefix("storm ") } ?? ""
        let report = "open storm under learn: \(storm); recorded \(distinct) of \(files) files, \(opens) opens counted of \(files * (rounds + 1)); tracer: \(summary)"
        print(report)
        try? (report + "\n").write(toFile: "/tmp/cagent-storm-figures.txt", atomically: true, encoding: .utf8)
        // Never silent: every file recorded, or the tracer says it lost events. The store keeps one row per file
        // (the tracer sends a path's first open, the kernel counts the repeats: docs/tracing.md), so the workload's
        // total shows in the tracer's count of syscalls, which covers every open.
        #expect(distinct == files || (lost ?? 0) > 0, "\(report)")
        #expect((traced ?? 0) >= files * (rounds + 1) || (lost ?? 0) > 0, "the tracer counted fewer syscalls than the workload made: \(report)")
        #expect(distinct > 0, "nothing recorded: the control that the tracer sees the workload at all: \(report)")
    }
}
