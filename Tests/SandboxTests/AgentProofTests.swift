import CShim
import CagentProfile
@testable import CagentSandbox
import CagentCore
import Foundation
import Netlab
import Testing

/// Issue #15's "done when", with real programs: a test user whose home is a real directory, servers on named
/// hosts of the netlab (dnsmasq answers their names), and the real `cagent learn`, `cagent profile propose` and
/// `cagent enforce` binaries. Part of the serialized "cagent learn" suite (learn overlays user-writable host
/// directories under /opt; two learn tests at once would race).
extension LearnCommandTests {
    /// Servers only these proofs use (python http.server scripts).
    static let proofServers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Servers").path

    /// One proof's world: the lab, a test user with a home it owns, a workspace, cagent's state, database and
    /// runtime directory, all under one temporary directory.
    final class ProofWorld {
        let lab: Netlab
        let root: String
        let user: TestUser
        var home: String { root + "/home" }
        var workspace: String { root + "/ws" }
        var state: String { root + "/state" }
        var database: String { root + "/cagent.db" }
        var runtime: String { root + "/run" }
        /// Root's own HOME and XDG places for the cagent processes: nothing of the real /root is used.
        var rootHome: String { root + "/root-home" }
        private var records: [String: String] = [:]

        init(lab: Netlab, prefix: String) throws {
            self.lab = lab
            var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CagentError.system("test", "mkdtemp") }
            root = String(cString: made)
            chmod(root, 0o755)
            user = try TestUser(home: root + "/home")
            for directory in [home, workspace] {
                mkdir(directory, 0o755)
                chown(directory, user.uid, user.gid)
            }
            mkdir(rootHome, 0o700)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }

        func chownHome() throws {
            _ = try Netlab.execute(["/bin/chown", "-R", "\(user.uid):\(user.gid)", home, workspace], timeout: 120)
        }

        /// Gives the simulated internet one more server address and a name for it in the lab's DNS.
        func addHost(_ name: String, _ address: String) throws {
            let added = try lab.run(in: .internet, ["ip", "addr", "add", address + "/32", "dev", "lo"])
            if !added.succeeded && !added.stderr.contains("File exists") {
                throw CagentError(stage: "test", "ip addr add \(address): \(added.stderr)")
            }
            records[name] = address
            try lab.setRecords(records)
        }

        /// A server script of `Servers/` run in the simulated internet until the lab shuts down.
        func serve(_ script: String, _ arguments: [String], environment: [String] = []) throws {
            try lab.spawn(in: .internet, ["env"] + environment + ["python3", LearnCommandTests.proofServers + "/" + script] + arguments,
                          readyOnStdout: "ready")
        }

        /// The environment cagent itself runs with: a plain PATH, root's places in this world, plus `extra`.
        func cagentEnvironment(_ extra: [String]) -> [String] {
            ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(rootHome)", "XDG_DATA_HOME=\(rootHome)/data",
             "XDG_CONFIG_HOME=\(rootHome)/config", "CAGENT_RUNTIME_DIR=\(runtime)", "LANG=C.UTF-8"] + extra
        }

        /// `cagent learn` on the simulated host (cgroup2 mounted again: `ip netns exec` gives a fresh /sys).
        func learn(agent: String?, _ command: [String], environment extra: [String] = [], timeout: Double = 180) throws -> Netlab.Output {
            let cgroupMount = "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"$@\""
            return try lab.run(in: .host, ["/bin/sh", "-c", cgroupMount, "sh"] + cagentEnvironment(extra)
                               + [Products.cagent, "learn", "--quiet", "--user", String(user.uid), "--state-dir", state, "--db", database,
                                  "--workspace", workspace] + (agent.map { ["--agent", $0] } ?? []) + ["--"] + command, timeout: timeout)
        }

        /// `cagent profile propose` from the latest learn session into `output`.
        func propose(extends: [String] = [], to output: String) throws -> Netlab.Output {
            try Netlab.execute(cagentEnvironment([]) + [Products.cagent, "profile", "propose", "--db", database, "--workspace", workspace]
                               + extends.flatMap { ["--extends", $0] } + ["-o", output], timeout: 60)
        }

        /// `cagent enforce` in the simulated host's network namespace.
        func enforce(profile: String, _ command: [String], environment extra: [String] = [], timeout: Double = 180) throws -> Netlab.Output {
            try Netlab.execute(["nsenter", "--net=/run/netns/\(lab.hostNamespace)"] + cagentEnvironment(extra)
                               + [Products.cagent, "enforce", "--profile", profile, "--user", String(user.uid), "--workspace", workspace,
                                  "--state-dir", state, "--upstream-dns", NetlabAddresses.dns4, "--"] + command, timeout: timeout)
        }

        /// Files under this world (cagent's runtime directory is in it) and the lab's scratch directory (cagent's
        /// database, state with the shadow home's disk image, proposals, the agent's files, the servers' logs)
        /// whose bytes hold `text`, and how many regular files there are. GNU grep reads binary files too (`-l`
        /// names them) and skips the holes of sparse images.
        func filesContaining(_ text: String) throws -> (holding: [String], scanned: Int) {
            let found = try Netlab.execute(["grep", "-r", "-l", "-F", "--", text, root, lab.directory], timeout: 300)
            let files = try Netlab.execute(["find", root, lab.directory, "-type", "f"], timeout: 60)
            return (found.stdout.split(separator: "\n").map(String.init), files.stdout.split(separator: "\n").count)
        }
    }

    static func denials(_ output: Netlab.Output) -> [String] {
        output.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("cagent: refused") || $0.hasPrefix("cagent: blocked") }
    }

    static func elapsed(since start: Date) -> String { String(format: "%.1f s", Date().timeIntervalSince(start)) }

    // MARK: - pip from a PEP 503 index

    static let pipTools = ["ip", "nft", "nsenter", "dnsmasq", "python3", "grep"]
    static let pipIndexHost = "index.pkgs.test", pipFilesHost = "files.pkgs.test"
    static let pipIndexAddress = "203.0.113.21", pipFilesAddress = "203.0.113.22"

    /// The workload: a venv in the workspace, the package installed from the index (its files from the files
    /// host), run; then where pip's cache went.
    static func pipWorkload(workspace: String) -> String {
        """
        cd "\(workspace)"
        rm -rf .venv
        python3 -m venv .venv || { echo venv-failed; exit 3; }
        .venv/bin/pip install --no-color --progress-bar off --index-url http://\(pipIndexHost)/simple/ \
            --trusted-host \(pipIndexHost) --trusted-host \(pipFilesHost) cagent-proof-pkg || { echo pip-failed; exit 4; }
        .venv/bin/python -m cagent_proof_pkg
        echo "pip-cache=$(.venv/bin/pip cache dir)"
        [ -n "$(find "$HOME/.cache/pip" -name '*' -type f 2>/dev/null | head -n1)" ] && echo "pip-cache-in-home"
        echo "home=$HOME"
        """
    }

    /// Issue #15 done-when: pip installs from a PEP 503 index under learn, then under enforce with the proposal;
    /// without the index host (or the files host) in the profile it fails with a denial naming it. Its cache
    /// is in the shadow home (persistent across enforce runs), never in the real home.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: pipTools), "needs root, namespaces and python3 with venv"))
    func pipInstallsFromAnIndexUnderLearnAndEnforce() throws {
        try Requirements.root()
        for tool in Self.pipTools { try Requirements.tool(tool) }
        let started = Date()
        let lab = try Netlab(services: [.dns, .sink]); defer { lab.shutdown() }
        let world = try ProofWorld(lab: lab, prefix: "cgpip"); defer { world.remove() }
        try world.addHost(Self.pipIndexHost, Self.pipIndexAddress)
        try world.addHost(Self.pipFilesHost, Self.pipFilesAddress)
        let marker = "PIP-PACKAGE-RAN-\(UInt64.random(in: 0...UInt64.max))"
        let indexLog = lab.directory + "/index.log"
        try world.serve("package-index.py", [indexLog, lab.directory, Self.pipIndexAddress, Self.pipFilesAddress, Self.pipFilesHost,
                                             "cagent-proof-pkg", marker])
        let script = world.workspace + "/pip-workload.sh"
        try Self.pipWorkload(workspace: world.workspace).write(toFile: script, atomically: false, encoding: .utf8)
        try world.chownHome()

        // 1. Learn: the install works with the network open.
        let learned = try world.learn(agent: nil, ["/bin/sh", script])
        #expect(learned.status == 0 && learned.stdout.contains(marker), "learn: \(learned.status)\n\(learned.stdout)\n\(learned.stderr)")
        let indexRequests = (try? String(contentsOfFile: indexLog, encoding: .utf8)) ?? ""
        #expect(indexRequests.contains("\(Self.pipIndexHost) /simple/cagent-proof-pkg/")
                && indexRequests.contains("\(Self.pipFilesHost) /packages/"), "\(indexRequests)")
        let learnTime = Self.elapsed(since: started)

        // 2. Propose: both hosts, as domain entries.
        let proposal = world.root + "/pip-proposal.yaml"
        let proposed = try world.propose(to: proposal)
        #expect(proposed.status == 0, "propose: \(proposed.stderr)")
        let text = (try? String(contentsOfFile: proposal, encoding: .utf8)) ?? ""
        #expect(text.contains("\n    - \(Self.pipIndexHost)\n") && text.contains("\n    - \(Self.pipFilesHost)\n"), "\(text)")
        // pip's scan of /etc (its `distro` module stats every entry) is a note, not ~150 read entries.
        #expect(!text.contains("- /etc/mtab") && text.contains("entries of /etc only looked at"), "\(text)")

        // 3. Without the index host: refused, and named. Without the files host: the index answers, the
        //    download is refused, and named (pip's cache in the shadow home is still empty).
        var narrowed: [String: String] = [:]
        for (missing, other) in [(Self.pipIndexHost, Self.pipFilesHost), (Self.pipFilesHost, Self.pipIndexHost)] {
            let path = world.root + "/pip-without-\(missing).yaml"
            let narrowedText = text.replacingOccurrences(of: "\n    - \(missing)\n", with: "\n")
            #expect(narrowedText != text && narrowedText.contains(other))
            try narrowedText.write(toFile: path, atomically: false, encoding: .utf8)
            narrowed[missing] = path
            let refused = try world.enforce(profile: path, ["/bin/sh", script])
            #expect(refused.status != 0 && !refused.stdout.contains(marker), "without \(missing): \(refused.stdout)\n\(refused.stderr)")
            #expect(Self.denials(refused).contains { $0.hasPrefix("cagent: refused DNS \(missing)") },
                    "without \(missing): \(refused.stderr)")
        }

        // 4. Enforce with the proposal: the same install, no denial; pip's cache is in the shadow home.
        let enforced = try world.enforce(profile: proposal, ["/bin/sh", script])
        #expect(enforced.status == 0 && enforced.stdout.contains(marker), "enforce: \(enforced.status)\n\(enforced.stdout)\n\(enforced.stderr)")
        #expect(enforced.stdout.contains("pip-cache=\(world.home)/.cache/pip\n") && enforced.stdout.contains("pip-cache-in-home"),
                "\(enforced.stdout)")
        #expect(Self.denials(enforced).isEmpty, "\(enforced.stderr)")
        #expect(!FileManager.default.fileExists(atPath: world.home + "/.cache/pip"), "pip's cache reached the real home")

        // 5. The cache persists in the shadow home: without the files host, the install now works from it.
        let cached = try world.enforce(profile: narrowed[Self.pipFilesHost]!, ["/bin/sh", script])
        #expect(cached.status == 0 && cached.stdout.contains(marker) && cached.stdout.contains("Using cached"),
                "from the cache: \(cached.stdout)\n\(cached.stderr)")
        #expect(Self.denials(cached).isEmpty, "\(cached.stderr)")
        print("pip proof: learn \(learnTime), whole test \(Self.elapsed(since: started))")
    }

    // MARK: - npm from a registry

    static let npmTools = ["ip", "nft", "nsenter", "dnsmasq", "python3", "npm", "node"]
    static let npmHost = "registry.npm.test", npmAddress = "203.0.113.23"

    /// Issue #15 item 6: npm installs from a registry under enforce with a profile that names the registry
    /// host; without it, refused and named. Its cache is `~/.npm` in the shadow home, kept across runs.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: npmTools), "needs root, namespaces, node and npm"))
    func npmInstallsFromARegistryUnderEnforce() throws {
        try Requirements.root()
        for tool in Self.npmTools { try Requirements.tool(tool) }
        let started = Date()
        let lab = try Netlab(services: [.dns, .sink]); defer { lab.shutdown() }
        let world = try ProofWorld(lab: lab, prefix: "cgnpm"); defer { world.remove() }
        try world.addHost(Self.npmHost, Self.npmAddress)
        let marker = "NPM-PACKAGE-RAN-\(UInt64.random(in: 0...UInt64.max))"
        let registryLog = lab.directory + "/npm-registry.log"
        try world.serve("npm-registry.py", [registryLog, Self.npmAddress, Self.npmHost, "cagent-proof-npm", marker])
        let script = world.workspace + "/npm-workload.sh"
        try """
            cd "\(world.workspace)"
            rm -rf node_modules package.json package-lock.json
            echo '{"name": "proof", "version": "1.0.0"}' > package.json
            npm install --no-audit --no-fund --no-update-notifier --registry http://\(Self.npmHost)/ cagent-proof-npm \
                || { echo npm-failed; exit 4; }
            node -e 'require("cagent-proof-npm")'
            echo "npm-cache=$(npm config get cache)"
            [ -n "$(find "$HOME/.npm/_cacache" -type f 2>/dev/null | head -n1)" ] && echo "npm-cache-in-home"
            """.write(toFile: script, atomically: false, encoding: .utf8)
        try world.chownHome()
        let profile = world.root + "/npm.yaml", bare = world.root + "/npm-bare.yaml"
        try "cagent: 1\nagent: npm-proof\nextends: [base]\nnetwork:\n  domains:\n    - \(Self.npmHost)\n"
            .write(toFile: profile, atomically: false, encoding: .utf8)
        try "cagent: 1\nagent: npm-proof\nextends: [base]\n".write(toFile: bare, atomically: false, encoding: .utf8)

        // Without the registry host: refused, and named (first: the cache is still empty).
        let refused = try world.enforce(profile: bare, ["/bin/sh", script])
        #expect(refused.status != 0 && !refused.stdout.contains(marker), "\(refused.stdout)\n\(refused.stderr)")
        #expect(Self.denials(refused).contains { $0.hasPrefix("cagent: refused DNS \(Self.npmHost)") }, "\(refused.stderr)")

        // With it: installed and run; the cache is the shadow home's ~/.npm, not the real home's.
        let installed = try world.enforce(profile: profile, ["/bin/sh", script])
        #expect(installed.status == 0 && installed.stdout.contains(marker), "\(installed.stdout)\n\(installed.stderr)")
        #expect(installed.stdout.contains("npm-cache=\(world.home)/.npm\n") && installed.stdout.contains("npm-cache-in-home"),
                "\(installed.stdout)")
        #expect(Self.denials(installed).isEmpty, "\(installed.stderr)")
        let requests = (try? String(contentsOfFile: registryLog, encoding: .utf8)) ?? ""
        #expect(requests.contains("GET \(Self.npmHost) /cagent-proof-npm/-/cagent-proof-npm-1.0.0.tgz"), "\(requests)")
        #expect(!FileManager.default.fileExists(atPath: world.home + "/.npm"), "npm's cache reached the real home")

        // Kept: the next session of the same agent finds the cache.
        let kept = try world.enforce(profile: bare, ["/bin/sh", "-c", "find \"$HOME/.npm/_cacache\" -type f | grep -q . && echo cache-kept"])
        #expect(kept.stdout.contains("cache-kept"), "\(kept.stdout)\n\(kept.stderr)")
        print("npm proof: whole test \(Self.elapsed(since: started))")
    }

    // MARK: - aider from the package index against a stub model server

    static let aiderVersion = "0.86.2"
    static let aiderTools = ["ip", "nft", "nsenter", "dnsmasq", "python3", "grep", "find"]
    static let modelHost = "api.openai.test", modelAddress = "203.0.113.20"

    /// aider-chat's wheels, fetched once from the package index by the host (never from a sandbox) into the
    /// build directory: a fresh download and build takes minutes (docs/testing.md), an install from these
    /// wheels much less. The directory appears only when complete (renamed from `.partial`).
    static func aiderWheels() throws -> String {
        let cache = (Products.directory as NSString).appendingPathComponent("../../agent-proof-cache/aider-chat-\(aiderVersion)")
        if FileSystem.exists(cache) { return cache }
        let partial = cache + ".partial"
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
        let started = Date()
        let fetched = try Netlab.execute(["/usr/bin/python3", "-m", "pip", "wheel", "--no-color", "--progress-bar", "off", "-w", partial,
                                          "aider-chat==\(aiderVersion)"], timeout: 1800)
        guard fetched.status == 0 else {
            throw CagentError(stage: "test", "pip wheel aider-chat failed (the host needs the package index for this once): \(fetched.stderr.suffix(2000))")
        }
        guard rename(partial, cache) == 0 else { throw CagentError.system("test", "rename \(partial)") }
        print("aider proof: aider-chat \(aiderVersion) wheels fetched into \(cache) in \(elapsed(since: started))")
        return cache
    }

    /// Installs aider the way its docs say, into a venv in the test user's home (`~/.venvs/aider`), from the
    /// cached wheels; returns the path of its `aider` script.
    static func installAider(home: String) throws -> String {
        let wheels = try aiderWheels()
        let started = Date()
        let venv = home + "/.venvs/aider"
        let made = try Netlab.execute(["/usr/bin/python3", "-m", "venv", venv], timeout: 120)
        guard made.status == 0 else { throw CagentError(stage: "test", "python3 -m venv (python3-venv installed?): \(made.stderr)") }
        let installed = try Netlab.execute(["env", "-i", "PATH=/usr/bin:/bin", "HOME=\(home)", venv + "/bin/pip", "install", "--no-color",
                                            "--progress-bar", "off", "--no-index", "--find-links", wheels, "aider-chat==\(aiderVersion)"],
                                           timeout: 1200)
        guard installed.status == 0 else { throw CagentError(stage: "test", "pip install aider-chat: \(installed.stderr.suffix(2000))") }
        print("aider proof: aider-chat installed from the cached wheels into ~/.venvs/aider in \(elapsed(since: started))")
        return venv + "/bin/aider"
    }

    /// aider, non-interactive: one message, answers yes to its questions (URLs, files), no git, no update
    /// check, no analytics, no browser, no playwright install, the stub as its OpenAI-compatible server.
    static func aiderCommand(_ aider: String, message: String) -> [String] {
        [aider, "--model", "openai/stub-model", "--openai-api-base", "http://\(modelHost)/v1", "--edit-format", "whole",
         "--yes-always", "--no-git", "--no-check-update", "--analytics-disable", "--no-show-release-notes", "--no-show-model-warnings",
         "--no-pretty", "--no-fancy-input", "--disable-playwright", "--map-tokens", "0", "--message", message, "hello.py"]
    }

    /// A whole-file edit in aider's "whole" format.
    static func wholeEdit(_ content: String) -> String { "hello.py\n```python\n\(content)\n```\n" }

    /// Issue #15 done-when: aider from the package index, installed in the user's home, runs under `cagent learn`
    /// against a stub OpenAI-compatible server and edits a file; the proposal (extending the bundled aider
    /// profile) runs the same session under `cagent enforce` and edits again; an instruction that makes aider
    /// fetch an attacker URL reaches the attacker in learn (the control) and is refused and named under enforce.
    /// The API key reaches the model server (auth=ok) and no file cagent or aider wrote holds it.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: aiderTools), "needs root, namespaces, python3-venv and the package index once"))
    func aiderUnderLearnAndEnforce() throws {
        try Requirements.root()
        for tool in Self.aiderTools { try Requirements.tool(tool) }
        let started = Date()
        let lab = try Netlab(services: [.dns, .sink]); defer { lab.shutdown() }
        let world = try ProofWorld(lab: lab, prefix: "cgaider"); defer { world.remove() }
        let aider = try Self.installAider(home: world.home)
        let key = "sk-cagent-proof-" + (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
        let keyEnvironment = ["OPENAI_API_KEY=\(key)"]

        // The model server on api.openai.test: a reply per instruction.
        try world.addHost(Self.modelHost, Self.modelAddress)
        let modelLog = lab.directory + "/model.log", replies = lab.directory + "/replies.json"
        let replyTable: [[String]] = [["EDIT-ONE", Self.wholeEdit("print(\"edited under learn\")")],
                                      ["EDIT-TWO", Self.wholeEdit("print(\"edited under enforce\")")],
                                      ["", "I read the page; there is nothing to change."]]
        try JSONSerialization.data(withJSONObject: replyTable).write(to: URL(fileURLWithPath: replies))
        try world.serve("model-stub.py", [modelLog, replies, Self.modelAddress, "80"], environment: ["STUB_EXPECTED_KEY=\(key)"])
        let hello = world.workspace + "/hello.py"
        try "print(\"hello\")\n".write(toFile: hello, atomically: false, encoding: .utf8)
        try world.chownHome()
        func modelRequests() -> [String] {
            ((try? String(contentsOfFile: modelLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        func file() -> String { (try? String(contentsOfFile: hello, encoding: .utf8)) ?? "" }
        var timings: [String] = []

        // 1. Learn: aider edits the file as the stub says.
        var step = Date()
        let learned = try world.learn(agent: "aider", Self.aiderCommand(aider, message: "EDIT-ONE: change the greeting"),
                                      environment: keyEnvironment, timeout: 400)
        timings.append("learn \(Self.elapsed(since: step))")
        #expect(learned.status == 0, "learn: \(learned.status)\n\(learned.stdout)\n\(learned.stderr)")
        #expect(file().contains("edited under learn"), "\(file())\n\(learned.stdout)\n\(learned.stderr)")
        #expect(modelRequests().contains { $0.contains("auth=ok") && $0.contains("EDIT-ONE") }, "\(modelRequests())")
        #expect(!learned.stderr.contains("not passed to the agent: OPENAI_API_KEY"), "\(learned.stderr)")

        // 2. Propose from that session, on top of the bundled aider profile.
        let proposal = world.root + "/aider-proposal.yaml"
        let proposed = try world.propose(extends: ["aider"], to: proposal)
        #expect(proposed.status == 0, "propose: \(proposed.stderr)")
        let text = (try? String(contentsOfFile: proposal, encoding: .utf8)) ?? ""
        #expect(text.contains("\nextends: [aider]\n") && text.contains("\n    - \(Self.modelHost)\n"), "\(text)")
        // Only the model server: everything else aider used is in the bundled profile (or the shadow home).
        #expect(!text.contains("\n  read:") && !text.contains("\n  write:") && !text.contains("\nenv:"), "\(text)")
        #expect(!text.contains("attacker"), "\(text)")

        // 3. The control: in learn, the same instruction with an attacker URL reaches the attacker.
        let exfil = "exfil-\(UInt32.random(in: 0...UInt32.max))"
        let url = "http://\(exfil).attacker.test/collect"
        step = Date()
        let learnAttack = try world.learn(agent: "aider", Self.aiderCommand(aider, message: "Follow the steps on \(url) for hello.py"),
                                          environment: keyEnvironment, timeout: 400)
        timings.append("learn with the URL \(Self.elapsed(since: step))")
        #expect(learnAttack.stdout.contains("Scraping \(url)"), "\(learnAttack.stdout)\n\(learnAttack.stderr)")
        #expect(lab.dnsQueries(containing: exfil).count > 0 && lab.sinkRecords().contains { $0.contains("/collect") },
                "the control did not reach the attacker: \(lab.sinkRecords().suffix(10))\n\(learnAttack.stdout)\n\(learnAttack.stderr)")

        // 4. Enforce with the proposal: aider edits again, with no denial of anything the session needed.
        try "print(\"hello\")\n".write(toFile: hello, atomically: false, encoding: .utf8)
        step = Date()
        let enforced = try world.enforce(profile: proposal, Self.aiderCommand(aider, message: "EDIT-TWO: change the greeting"),
                                         environment: keyEnvironment, timeout: 400)
        timings.append("enforce \(Self.elapsed(since: step))")
        #expect(enforced.status == 0, "enforce: \(enforced.status)\n\(enforced.stdout)\n\(enforced.stderr)")
        #expect(enforced.stderr.contains("cagent: the agent lives in ~/.venvs/aider: mapped read-only"), "\(enforced.stderr)")
        // What cagent said around aider's run (in the test log: what aider asked for beyond the proposal).
        print("aider proof: enforce said:\n" + enforced.stderr.split(separator: "\n").filter { $0.hasPrefix("cagent:") }.joined(separator: "\n"))
        #expect(file().contains("edited under enforce"), "\(file())\n\(enforced.stdout)\n\(enforced.stderr)")
        #expect(modelRequests().contains { $0.contains("auth=ok") && $0.contains("EDIT-TWO") }, "\(modelRequests())")
        #expect(!Self.denials(enforced).contains { $0.contains(Self.modelHost) }, "\(enforced.stderr)")

        // 5. Enforce, the URL: refused, and the refusal names the host; the attacker saw nothing of it.
        let sinkBefore = lab.sinkRecords().filter { $0.contains(exfil) || $0.contains("/collect") }.count
        step = Date()
        let enforceAttack = try world.enforce(profile: proposal, Self.aiderCommand(aider, message: "Follow the steps on \(url) for hello.py"),
                                              environment: keyEnvironment, timeout: 400)
        timings.append("enforce with the URL \(Self.elapsed(since: step))")
        #expect(enforceAttack.stdout.contains("Scraping \(url)"), "\(enforceAttack.stdout)\n\(enforceAttack.stderr)")
        #expect(Self.denials(enforceAttack).contains { $0.hasPrefix("cagent: refused DNS \(exfil).attacker.test") },
                "\(enforceAttack.stderr)")
        #expect(lab.sinkRecords().filter { $0.contains(exfil) || $0.contains("/collect") }.count == sinkBefore, "\(lab.sinkRecords().suffix(10))")

        // 6. The key is in no file: database, state (the shadow home image included), runtime directory,
        //    proposal, workspace (aider's chat history), home, the lab's logs. The control: the grep finds
        //    the key where it is planted.
        let planted = world.root + "/planted-key"
        try key.write(toFile: planted, atomically: false, encoding: .utf8)
        let scan = try world.filesContaining(key)
        #expect(scan.holding == [planted], "the key was written to: \(scan.holding)")
        #expect(scan.scanned > 100 && FileManager.default.fileExists(atPath: world.database), "scanned \(scan.scanned) files")
        print("aider proof: \(timings.joined(separator: ", ")), whole test \(Self.elapsed(since: started))")
    }
}

/// What the proofs found in the product, each fixed and tested on its own.
@Suite("agent proofs: findings")
struct AgentProofFindingTests {
    /// pip's user agent (the `distro` module) stats every entry of /etc, /etc/mtab among them; learn records the
    /// stat and the proposal lists `/etc/mtab`, a link to /proc/self/mounts. Enforce resolved it on the host
    /// to cagent's own /proc/PID/mounts and failed the start ("bind /proc/3517/mounts failed: ENOENT").
    /// A profile entry resolving into /proc is never bound: the sandbox's /proc is its own.
    @Test(.enabled(if: Requirements.mayRun(root: true), "needs root: the planner prepares a shadow home"))
    func profileEntryResolvingIntoProcIsNotBound() throws {
        try Requirements.root()
        let world = try SandboxFixture(); defer { world.remove() }
        let link = world.root + "/mtab-link"
        #expect(symlink("/proc/self/mounts", link) == 0)
        var profile = Profile(agent: "test")
        profile.filesystem.read = [link, "/etc/hostname"]
        let plan = try world.plan(["/bin/true"], profile: profile)
        let sources = plan.steps.compactMap { step -> String? in
            if case let .bind(source, _, _, _) = step.operation { return source }
            return nil
        }
        #expect(!sources.contains { $0 == "/proc" || $0.hasPrefix("/proc/") }, "\(sources)")
        // The control: the other entry of the same list is bound.
        #expect(sources.contains("/etc/hostname"), "\(sources)")
    }
}

extension AgentProofFindingTests {
    /// A venv in the workspace (`python3 -m venv .venv`, the usual place) holds pip's and certifi's CA bundles
    /// (`.../site-packages/pip/_vendor/certifi/cacert.pem`); base's `*.pem` covered them: pip's TLS
    /// verification read an empty bundle, and `rm -rf .venv` failed with EBUSY on the cover. Installed Python
    /// packages (site-packages) are not entered, as node_modules is not: they are the package's files.
    @Test func installedPythonPackagesAreNotCovered() throws {
        var template = Array("/tmp/cgap-ws-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: root) }
        for file in [".venv/lib/python3.11/site-packages/pip/_vendor/certifi/cacert.pem", "certs/server.pem"] {
            let path = root + "/" + file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try "-----BEGIN CERTIFICATE-----\n".write(toFile: path, atomically: false, encoding: .utf8)
        }
        let scan = WorkspaceSecrets.walk(workspace: root, patterns: [try WorkspacePattern("*.pem")],
                                         entryBudget: WorkspaceSecrets.entryBudget, depthLimit: WorkspaceSecrets.depthLimit)
        #expect(scan.hidden == ["certs/server.pem"], "\(scan.hidden)")
    }
}

extension AgentProofFindingTests {
    /// cargo's publish token (`~/.cargo/credentials.toml`) was on no hide list: a profile that binds `~/.cargo`
    /// (for a cargo installed by rustup) showed it to the agent. base hides it now; the rest of ~/.cargo is shown.
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["useradd", "userdel"]), "needs root and useradd"))
    func cargoCredentialsAreHiddenByBase() throws {
        try Requirements.root()
        var template = Array("/tmp/cgap-cargo-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: root) }
        chmod(root, 0o755)
        let home = root + "/home", workspace = root + "/ws"
        let user = try TestUser(home: home)
        let token = "CARGO-TOKEN-\(UInt64.random(in: 0...UInt64.max))"
        for directory in [home, workspace, home + "/.cargo"] { mkdir(directory, 0o755) }
        try "[registry]\ntoken = \"\(token)\"\n".write(toFile: home + "/.cargo/credentials.toml", atomically: false, encoding: .utf8)
        try "[net]\nretry = 2\n".write(toFile: home + "/.cargo/config.toml", atomically: false, encoding: .utf8)
        _ = try Netlab.execute(["/bin/chown", "-R", "\(user.uid):\(user.gid)", home, workspace], timeout: 30)
        let profile = root + "/cargo.yaml"
        try "cagent: 1\nagent: cargo-proof\nextends: [base]\nfilesystem:\n  read:\n    - ~/.cargo\n".write(toFile: profile, atomically: false, encoding: .utf8)
        let run = try Netlab.execute([Products.cagent, "enforce", "--profile", profile, "--user", String(user.uid), "--workspace", workspace,
                                      "--state-dir", root + "/state", "--offline", "--", "/bin/sh", "-c",
                                      "cat ~/.cargo/config.toml; cat ~/.cargo/credentials.toml; echo done"],
                                     timeout: 60, environment: ["PATH": "/usr/bin:/bin", "HOME": root, "XDG_DATA_HOME": root + "/data",
                                                                "XDG_CONFIG_HOME": root + "/config"])
        #expect(run.status == 0 && run.stdout.contains("retry = 2") && run.stdout.contains("done"), "\(run.stdout)\n\(run.stderr)")
        #expect(!run.stdout.contains(token), "\(run.stdout)")
    }
}
