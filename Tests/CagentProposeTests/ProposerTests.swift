import CagentCore
import CagentProfile
@testable import CagentPropose
import Foundation
import Testing

/// The Public Suffix List as Debian ships it; the tests that need it fail (not skip) when it is missing.
let systemSuffixes: PublicSuffixList = {
    guard let list = PublicSuffixList.load() else { fatalError("no Public Suffix List at \(PublicSuffixList.systemPath): apt-get install publicsuffix") }
    return list
}()

@Suite struct PublicSuffixTests {
    /// The PSL's own test vectors (test_psl.txt, checkPublicSuffix(name, registrable domain)); Debian's
    /// package does not ship the file, so they are written here. nil: the name has no registrable domain.
    static let vectors: [(String, String?)] = [
        ("COM", nil), ("example.COM", "example.com"), ("WwW.example.COM", "example.com"),
        ("example", nil), ("example.example", "example.example"), ("b.example.example", "example.example"),
        ("a.b.example.example", "example.example"),
        ("biz", nil), ("domain.biz", "domain.biz"), ("b.domain.biz", "domain.biz"), ("a.b.domain.biz", "domain.biz"),
        ("com", nil), ("example.com", "example.com"), ("b.example.com", "example.com"), ("a.b.example.com", "example.com"),
        ("uk.com", nil), ("example.uk.com", "example.uk.com"), ("b.example.uk.com", "example.uk.com"),
        ("a.b.example.uk.com", "example.uk.com"), ("test.ac", "test.ac"),
        ("mm", nil), ("c.mm", nil), ("b.c.mm", "b.c.mm"), ("a.b.c.mm", "b.c.mm"),
        ("jp", nil), ("test.jp", "test.jp"), ("www.test.jp", "test.jp"), ("ac.jp", nil), ("test.ac.jp", "test.ac.jp"),
        ("www.test.ac.jp", "test.ac.jp"), ("kyoto.jp", nil), ("test.kyoto.jp", "test.kyoto.jp"), ("ide.kyoto.jp", nil),
        ("b.ide.kyoto.jp", "b.ide.kyoto.jp"), ("a.b.ide.kyoto.jp", "b.ide.kyoto.jp"), ("c.kobe.jp", nil),
        ("b.c.kobe.jp", "b.c.kobe.jp"), ("a.b.c.kobe.jp", "b.c.kobe.jp"), ("city.kobe.jp", "city.kobe.jp"),
        ("www.city.kobe.jp", "city.kobe.jp"),
        ("ck", nil), ("test.ck", nil), ("b.test.ck", "b.test.ck"), ("a.b.test.ck", "b.test.ck"), ("www.ck", "www.ck"),
        ("www.www.ck", "www.ck"),
        ("us", nil), ("test.us", "test.us"), ("www.test.us", "test.us"), ("ak.us", nil), ("test.ak.us", "test.ak.us"),
        ("www.test.ak.us", "test.ak.us"), ("k12.ak.us", nil), ("test.k12.ak.us", "test.k12.ak.us"),
        ("www.test.k12.ak.us", "test.k12.ak.us"),
        ("食狮.com.cn", "食狮.com.cn"), ("食狮.公司.cn", "食狮.公司.cn"), ("www.食狮.公司.cn", "食狮.公司.cn"),
        ("shishi.公司.cn", "shishi.公司.cn"), ("公司.cn", nil), ("食狮.中国", "食狮.中国"), ("www.食狮.中国", "食狮.中国"),
        ("shishi.中国", "shishi.中国"), ("中国", nil),
        ("xn--85x722f.com.cn", "xn--85x722f.com.cn"), ("xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"),
        ("www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"), ("shishi.xn--55qx5d.cn", "shishi.xn--55qx5d.cn"),
        ("xn--55qx5d.cn", nil), ("xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"),
        ("www.xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s"), ("shishi.xn--fiqs8s", "shishi.xn--fiqs8s"),
        ("xn--fiqs8s", nil),
        // Leading dots and empty labels have no registrable domain.
        (".com", nil), (".example", nil), (".example.com", nil), (".example.example", nil),
    ]

    @Test func publicSuffixListTestVectors() {
        #expect(systemSuffixes.ruleCount > 5000)
        var failures: [String] = []
        for (name, expected) in Self.vectors {
            let got = systemSuffixes.registrableDomain(name)
            if got != expected?.lowercased() { failures.append("\(name): expected \(expected ?? "nil"), got \(got ?? "nil")") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func punycodeOfTheListsRules() {
        #expect(Punycode.label("公司") == "xn--55qx5d")
        #expect(Punycode.label("中国") == "xn--fiqs8s")
        #expect(Punycode.label("食狮") == "xn--85x722f")
        #expect(Punycode.label("bücher") == "xn--bcher-kva")
    }

    @Test func privateSectionIsMultiTenant() {
        #expect(systemSuffixes.publicSuffix("alice.github.io")! == ("github.io", true))
        #expect(systemSuffixes.registrableDomain("alice.github.io") == "alice.github.io")
        #expect(systemSuffixes.registrableDomain("alice.github.io", includePrivate: false) == "github.io")
        #expect(systemSuffixes.isPublicSuffix("s3.amazonaws.com"))
        #expect(!systemSuffixes.isPublicSuffix("s3.amazonaws.com", includePrivate: false))
        #expect(!systemSuffixes.isPublicSuffix("example.com"))
    }

    /// A small list parsed from text: rules, wildcards, exceptions and the section markers.
    @Test func parsesTheListFormat() {
        let list = PublicSuffixList(text: """
            // ===BEGIN ICANN DOMAINS===
            test
            *.wild.test
            !keep.wild.test
            // ===END ICANN DOMAINS===
            // ===BEGIN PRIVATE DOMAINS===
            pages.test   // trailing words are ignored
            // ===END PRIVATE DOMAINS===
            """)
        #expect(list.ruleCount == 4)
        #expect(list.registrableDomain("a.b.test") == "b.test")
        #expect(list.registrableDomain("x.y.wild.test") == "x.y.wild.test")
        #expect(list.registrableDomain("y.wild.test") == nil)
        #expect(list.registrableDomain("a.keep.wild.test") == "keep.wild.test")
        #expect(list.publicSuffix("me.pages.test")! == ("pages.test", true))
        #expect(list.registrableDomain("me.pages.test", includePrivate: false) == "pages.test")
    }
}

// MARK: the proposer

let home = "/home/dev"
let t0: ObservedTime = 1_796_000_000_000_000_000

func evidence(_ count: Int64 = 1, at offset: Int64 = 0, _ programs: String...) -> Evidence {
    Evidence(count: count, firstSeen: t0 + offset * 1_000_000_000, lastSeen: t0 + (offset + 5) * 1_000_000_000,
             programs: programs.isEmpty ? ["curl"] : programs)
}

func flow(_ name: String?, _ address: String, _ port: UInt16 = 443, proto: String = "tcp", traffic: Bool? = true,
          results: [Int64] = [0], verdict: String = "observed") -> Observations.Flow {
    Observations.Flow(proto: proto, address: address, port: port, name: name.map { Array($0.utf8) },
                      nameSource: name == nil ? nil : "dns", verdict: verdict, results: results, trafficSeen: traffic,
                      evidence: evidence())
}

func lookup(_ name: String, _ rcodes: [String] = ["NOERROR"]) -> Observations.Lookup {
    Observations.Lookup(name: Array(name.utf8), rcodes: rcodes, evidence: evidence(2))
}

func file(_ path: String, _ operation: String = "read", result: Int64 = 0, flags: Int64? = 0) -> Observations.File {
    Observations.File(path: Array(path.utf8), operation: operation, result: result, flags: flags, evidence: evidence(1, "cat"))
}

func proposer(_ configure: (inout ProposalOptions) -> Void = { _ in }) -> Proposer {
    var options = ProposalOptions(home: home)
    options.workspace = "/work/project"
    options.givenRead = ["/usr", "/bin", "/lib", "/etc/ssl", "/proc", "/dev"]
    options.givenWrite = ["/tmp"]
    options.hidden = DefaultHidden.home + ["/etc/shadow"]
    configure(&options)
    return Proposer(options: options, suffixes: systemSuffixes)
}

func values(_ entries: [Proposal.Entry]) -> [String] { entries.map(\.value) }

@Suite struct ProposerTests {
    @Test func wildcardOnlyWithEnoughSiblings() {
        var observations = Observations(sessions: ["s"])
        observations.flows = [flow("a.cdn.example.com", "192.0.2.1"), flow("b.cdn.example.com", "192.0.2.2"),
                              flow("api.example.org", "192.0.2.3"), flow("www.example.org", "192.0.2.4")]
        observations.lookups = observations.flows.map { lookup(String(decoding: $0.name!, as: UTF8.self)) }
        let two = proposer().propose(observations)
        #expect(values(two.domains) == ["a.cdn.example.com", "b.cdn.example.com", "api.example.org", "www.example.org"])

        observations.flows.append(flow("c.cdn.example.com", "192.0.2.5"))
        let three = proposer().propose(observations)
        #expect(values(three.domains) == ["*.cdn.example.com", "api.example.org", "www.example.org"])
        #expect(three.domains[0].risks.contains { $0.hasPrefix("wildcard: 3 names used under cdn.example.com") })
        // Configurable.
        let four = proposer { $0.siblingThreshold = 4 }.propose(observations)
        #expect(!values(four.domains).contains("*.cdn.example.com"))
    }

    /// Never above a registrable domain: siblings directly under a public suffix stay separate names.
    @Test func neverWiderThanARegistrableDomain() {
        var observations = Observations(sessions: ["s"])
        observations.flows = ["a.co.uk", "b.co.uk", "c.co.uk", "d.co.uk"].enumerated().map { flow($1, "192.0.2.\($0 + 1)") }
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains).sorted() == ["a.co.uk", "b.co.uk", "c.co.uk", "d.co.uk"])
        #expect(proposal.networkNotes.contains { $0.contains("not widened: 4 names under co.uk, a public suffix") })
    }

    /// The list's PRIVATE section: `*.github.io` would admit every user's pages; only with the flag, flagged.
    @Test func privateSuffixNotCollapsedWithoutTheFlag() {
        var observations = Observations(sessions: ["s"])
        observations.flows = ["alice.github.io", "bob.github.io", "carol.github.io"].enumerated().map { flow($1, "192.0.2.\($0 + 1)") }
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains) == ["alice.github.io", "bob.github.io", "carol.github.io"])
        #expect(proposal.networkNotes.contains { $0.contains("shared by many tenants (--allow-private-suffix widens it)") })
        let allowed = proposer { $0.allowPrivateSuffix = true }.propose(observations)
        #expect(values(allowed.domains) == ["*.github.io"])
        #expect(allowed.domains[0].risks.contains { $0.hasPrefix("multi-tenant suffix github.io") })
    }

    @Test func lookupOnlyNamesAreComments() {
        var observations = Observations(sessions: ["s"])
        observations.lookups = [lookup("api.example.com"), lookup("telemetry.example.net"), lookup("nope.example.org", ["NXDOMAIN"])]
        observations.flows = [flow("api.example.com", "192.0.2.1")]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains) == ["api.example.com"])
        #expect(proposal.networkNotes.contains("looked up only, no connection (not entries):"))
        #expect(proposal.networkNotes.contains { $0.hasPrefix("  telemetry.example.net (NOERROR) -- 2 queries") })
        #expect(proposal.networkNotes.contains { $0.hasPrefix("  nope.example.org (NXDOMAIN)") })
        let text = ProposalRenderer.render(proposal)
        #expect(text.contains("  # looked up only, no connection (not entries):\n  #   nope.example.org (NXDOMAIN)"))
        #expect(text.contains("\n  #   telemetry.example.net (NOERROR) -- 2 queries"))
        #expect(!text.contains("- telemetry.example.net"))
    }

    /// H21 (learn-mode poisoning): 50 random high-entropy names under one parent: flagged, not widened, none of them listed.
    @Test func highEntropySubdomainsAreFlaggedNotWidened() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var observations = Observations(sessions: ["s"])
        var names: [String] = []
        for _ in 0..<50 {
            let label = String((0..<24).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
            names.append(label + ".x.exfil.example")
        }
        observations.lookups = names.map { lookup($0) } + [lookup("api.example.com")]
        // Some even connected: still not entries.
        observations.flows = names.prefix(5).enumerated().map { flow($1, "198.51.100.\($0 + 1)") } + [flow("api.example.com", "192.0.2.1")]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains) == ["api.example.com"])
        let text = ProposalRenderer.render(proposal)
        for name in names { #expect(!text.contains(name)) }
        #expect(!text.contains("*.x.exfil.example") && !text.contains("*.exfil.example"))
        #expect(proposal.networkNotes.contains { $0.hasPrefix("RISK: possible DNS exfiltration under x.exfil.example: 50 unique name(s)") })

        // Many unique plain names, never connected to: the same shape.
        var plain = Observations(sessions: ["s"])
        plain.lookups = (0..<30).map { lookup("q\($0).leak.example") }
        let flagged = proposer().propose(plain)
        #expect(flagged.networkNotes.contains { $0.hasPrefix("RISK: possible DNS exfiltration under leak.example: 30 unique name(s)") })
        #expect(!ProposalRenderer.render(flagged).contains("q1.leak.example"))
    }

    /// glibc's getaddrinfo connects UDP sockets to candidate addresses (port 80, named by DNS): not flows.
    @Test func udpConnectWithoutTrafficIsDropped() {
        var observations = Observations(sessions: ["s"], gates: ["10.77.0.1"])
        observations.lookups = [lookup("www.example.com"), lookup("only-resolved.example.net")]
        observations.flows = [
            flow("www.example.com", "192.0.2.1", 443),
            flow("www.example.com", "192.0.2.1", 80, proto: "udp", traffic: false),
            flow("only-resolved.example.net", "192.0.2.9", 80, proto: "udp", traffic: false),
            flow(nil, "10.77.0.1", 53, proto: "udp"),          // the gate itself
            flow("ntp.example.org", "192.0.2.7", 123, proto: "udp", traffic: true),
        ]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains) == ["www.example.com"])
        #expect(values(proposal.endpoints) == ["ntp.example.org:123/udp"])
        #expect(proposal.networkNotes.contains { $0.hasPrefix("not proposed: 2 UDP connect(s) that sent nothing") })
        #expect(proposal.networkNotes.contains { $0.hasPrefix("  only-resolved.example.net") })
        #expect(!ProposalRenderer.render(proposal).contains("10.77.0.1"))
    }

    @Test func endpointsDirectIPAndRisks() {
        var observations = Observations(sessions: ["s"])
        observations.flows = [
            flow("github.com", "192.0.2.1", 22),
            flow(nil, "203.0.113.5", 8443),
            flow(nil, "10.1.2.3", 5432),
            flow(nil, "1.1.1.1", 443),
            flow("dns.google", "8.8.8.8", 443),
            flow(nil, "169.254.169.254", 80, verdict: "blocked"),
            flow("refused.example.com", "192.0.2.8", 443, results: [111]),
        ]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.domains) == ["dns.google"])
        #expect(proposal.domains[0].risks.contains { $0.hasPrefix("DoH/DoT provider") })
        #expect(values(proposal.endpoints) == ["1.1.1.1:443/tcp", "10.1.2.3:5432/tcp", "203.0.113.5:8443/tcp", "github.com:22/tcp"])
        let risks = Dictionary(uniqueKeysWithValues: proposal.endpoints.map { ($0.value, $0.risks) })
        #expect(risks["203.0.113.5:8443/tcp"]!.contains { $0.hasPrefix("direct IP") })
        #expect(risks["10.1.2.3:5432/tcp"]!.contains { $0.hasPrefix("private range") })
        #expect(risks["1.1.1.1:443/tcp"]!.contains { $0.hasPrefix("DoH/DoT provider address") })
        #expect(risks["github.com:22/tcp"]!.isEmpty)
        #expect(proposal.networkNotes.contains { $0.contains("169.254.169.254:80 was blocked while learning") })
        #expect(proposal.networkNotes.contains { $0.contains("(refused.example.com) failed (ECONNREFUSED)") })
    }

    /// An endpoint on a port proxies often use is flagged as `profile lint` warns about it (ProxyRisk): the
    /// proposal and lint say the same thing. Control: the same flow on another port carries no such risk.
    @Test func proxyLookingPortsAreFlagged() {
        var observations = Observations(sessions: ["s"])
        observations.flows = [flow("proxy.example.com", "192.0.2.1", 3128), flow(nil, "192.0.2.2", 8080),
                              flow("git.example.com", "192.0.2.3", 9418)]
        let proposal = proposer().propose(observations)
        let risks = Dictionary(uniqueKeysWithValues: proposal.endpoints.map { ($0.value, $0.risks) })
        #expect(risks["proxy.example.com:3128/tcp"]?.contains { $0.hasPrefix("port 3128 is one proxies often use") } == true)
        #expect(risks["192.0.2.2:8080/tcp"]?.contains { $0.hasPrefix("port 8080 is one proxies often use") } == true)
        #expect(risks["git.example.com:9418/tcp"] == [])
    }

    @Test func filesystemSmallestSet() {
        var observations = Observations(sessions: ["s"])
        observations.files = [
            file("/usr/bin/git"), file("/etc/ssl/certs/ca.pem"),                       // given by base and the sandbox
            file("/work/project/src/main.c", "write"),                                  // the workspace
            file("/tmp/x", "create"),                                                   // private /tmp
            file("\(home)/.gitconfig"),                                                 // one file in ~
            file("\(home)/.config/tool/a.json"), file("\(home)/.config/tool/b.json"),   // three in one directory
            file("\(home)/.config/tool/c.json"),
            file("\(home)/.cache/tool/one", "create"), file("\(home)/.cache/tool/two", "write"),
            file("/opt/sdk/bin/cc", "exec"), file("/opt/sdk/lib/libc.so"), file("/opt/out/result.txt", "create"),
            file("/usr/local/bin/missing", result: 2), file("\(home)/.local/bin/missing", "exec", result: 2),  // PATH search
            file("\(home)/a"), file("\(home)/b"), file("\(home)/c"),                    // never collapsed to ~
            file("/srv/a"), file("/srv/b"), file("/srv/c"),                              // never collapsed to a top-level dir
            file("\(home)/.ssh/id_ed25519"), file("\(home)/.aws/credentials", result: 2),  // secrets: never
            file("/etc/shadow"),
            file("/etc/newfile", "create"),                                              // never /etc writable
        ]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.read) == ["/opt/sdk/bin/cc", "/opt/sdk/lib/libc.so", "/srv/a", "/srv/b", "/srv/c",
                                          "~/.config/tool", "~/.gitconfig", "~/a", "~/b", "~/c"])
        // A new file in ~ lands in the shadow home; an existing one written is the file; outside ~, the directory.
        #expect(values(proposal.write) == ["/opt/out", "~/.cache/tool/two"])
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("not proposed: 1 file(s) created, deleted or renamed in ~") })
        let text = ProposalRenderer.render(proposal)
        #expect(!text.contains("missing") && !text.contains(".ssh") && !text.contains(".aws") && !text.contains("/etc/shadow"))
        #expect(proposal.read.first { $0.value == "~/.config/tool" }!.comments[0].hasPrefix("directory: 3 entries beneath used (a.json, b.json, c.json)"))
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("not proposed: 3 failed access(es)") })
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("not proposed: writes in /etc ") })
        // Configurable: at 4, the three files stay separate.
        let four = proposer { $0.collapseThreshold = 4 }.propose(observations)
        #expect(values(four.read).contains("~/.config/tool/a.json"))
    }

    @Test func hiddenAttemptsAndRunLaterWritesAreRisks() {
        var observations = Observations(sessions: ["s"])
        observations.files = [file("\(home)/.bashrc", "write"), file("/work/project/.git/hooks/pre-commit", "create"),
                              file("\(home)/.ssh/id_rsa", result: 2),
                              file("\(home)/.profile"), file("\(home)/.profile", "create")]   // `>> ~/.profile`: a rewrite
        observations.findings = [Observations.Finding(kind: "secret-access", subject: Array("~/.ssh".utf8), detail: "read of a hidden path failed (ENOENT)",
                                                      example: Array("\(home)/.ssh/id_rsa".utf8), evidence: evidence())]
        let proposal = proposer().propose(observations)
        #expect(values(proposal.write) == ["~/.bashrc", "~/.profile"])
        #expect(proposal.write.allSatisfy { $0.risks.contains { $0.contains("runs code later") } })
        #expect(proposal.read.isEmpty)
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("RISK: write to /work/project/.git/hooks/pre-commit") })
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("RISK: attempt on a hidden path ~/.ssh") })
        // The samples `git clone` writes into every .git/hooks never run (git runs a hook only by its exact
        // name): no RISK line each; the hook beside them still is one.
        observations.files.append(file("/work/project/.git/hooks/pre-push.sample", "create"))
        let withSample = proposer().propose(observations)
        #expect(!withSample.filesystemNotes.contains { $0.contains("pre-push.sample") })
        #expect(withSample.filesystemNotes.contains { $0.hasPrefix("RISK: write to /work/project/.git/hooks/pre-commit") })
    }

    /// A file a program runs without (git's global excludes file) is proposed, marked optional with the reason;
    /// a needed one beside it is not marked.
    @Test func optionalReadsSayWhy() {
        var observations = Observations(sessions: ["s"])
        observations.files = [file("/etc/gitignore"), file("\(home)/.config/git/ignore"), file("/etc/tool.conf")]
        let proposal = proposer().propose(observations)
        let optional = proposal.read.filter { $0.comments.contains { $0.hasPrefix("optional: git's global excludes") } }
        #expect(optional.map(\.value).sorted() == ["/etc/gitignore", "~/.config/git/ignore"])
        #expect(proposal.read.first { $0.value == "/etc/tool.conf" }?.comments.contains { $0.hasPrefix("optional") } == false)
        #expect(ProposalRenderer.render(proposal).contains("    # optional: git's global excludes"))
    }

    /// The proposal is a profile: the project's own parser reads it, and lint (resolving `extends: [base]`
    /// against the bundled profiles) finds nothing to say.
    @Test func proposalParsesAndLintsClean() throws {
        let proposal = proposer().propose(Self.mixed())
        let text = ProposalRenderer.render(proposal)
        let parsed = ProfileParser.parse(text: text, file: "proposal.yaml")
        #expect(parsed.layer != nil && parsed.diagnostics.isEmpty, "\(parsed.diagnostics)\n\(text)")

        let directory = NSTemporaryDirectory() + "cagent-propose-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try text.write(toFile: directory + "/proposal.yaml", atomically: false, encoding: .utf8)
        let resolver = ProfileResolver(paths: CagentPaths(runtime: directory + "/run", data: directory + "/data", config: directory + "/config"),
                                       workspace: directory + "/ws", bundledDirectories: [repositoryProfiles()],
                                       environment: ["HOME": home], currentDirectory: directory)
        let (resolved, diagnostics) = resolver.resolveCollecting(directory + "/proposal.yaml")
        #expect(resolved != nil && diagnostics.isEmpty, "\(diagnostics)")
        #expect(resolved?.profile.network.domains.contains("*.cdn.example.com") == true)
        #expect(resolved?.profile.filesystem.read.contains("/usr") == true)   // from base
    }

    /// Same observations, in any order, give the same bytes.
    @Test func stableOutput() {
        let observations = Self.mixed()
        var shuffled = observations
        shuffled.flows.shuffle(); shuffled.lookups.shuffle(); shuffled.files.shuffle(); shuffled.findings.shuffle()
        let first = ProposalRenderer.render(proposer().propose(observations))
        let second = ProposalRenderer.render(proposer().propose(observations))
        let third = ProposalRenderer.render(proposer().propose(shuffled))
        #expect(first == second && first == third)
        #expect(!first.isEmpty)
    }

    /// Sandbox text in comments cannot break out of its line nor reach a terminal raw; odd paths are quoted.
    @Test func sandboxTextIsEscapedAndQuoted() {
        var observations = Observations(sessions: ["s"])
        observations.files = [file("/opt/we ird: #x/file"), file("/opt/line\nbreak"), file("/opt/\u{1b}[31mred"),
                              file("/opt/evil\u{202E}txt.sh")]
        observations.findings = [Observations.Finding(kind: "secret-access", subject: Array("~/.ssh\n- /etc".utf8), detail: "d",
                                                      example: Array("\u{1b}]0;x\u{7}".utf8), evidence: evidence())]
        let text = ProposalRenderer.render(proposer().propose(observations))
        #expect(text.contains("- \"/opt/we ird: #x/file\""))
        #expect(!text.contains("\u{1b}") && !text.contains("\n- /etc") && !text.contains("\u{202E}"))
        #expect(text.contains("- \"/opt/evil\\u202etxt.sh\""), "\(text)")
        let parsed = ProfileParser.parse(text: text, file: "p.yaml")
        #expect(parsed.diagnostics.isEmpty, "\(parsed.diagnostics)")
        // Read back, the escaped path is the path.
        #expect(parsed.layer?.lists[.read]?.contains { $0.value == "/opt/evil\u{202E}txt.sh" } == true)
    }

    static func mixed() -> Observations {
        var observations = Observations(sessions: ["20261207-100000-ab12"], gates: ["10.77.0.1"])
        observations.lookups = [lookup("a.cdn.example.com"), lookup("b.cdn.example.com"), lookup("c.cdn.example.com"),
                                lookup("api.example.org"), lookup("github.com"), lookup("nothing.example.net", ["NXDOMAIN"])]
        observations.flows = [flow("a.cdn.example.com", "192.0.2.1"), flow("b.cdn.example.com", "192.0.2.2"),
                              flow("c.cdn.example.com", "192.0.2.3"), flow("api.example.org", "192.0.2.4", 80),
                              flow("github.com", "192.0.2.5", 22), flow(nil, "203.0.113.9", 9418),
                              flow("api.example.org", "192.0.2.4", 80, proto: "udp", traffic: false)]
        observations.files = [file("\(home)/.gitconfig"), file("\(home)/.cache/t/a", "create"), file("/opt/x/y"),
                              file("/nope", result: 2)]
        observations.findings = [Observations.Finding(kind: "secret-access", subject: Array("~/.ssh".utf8), detail: "read failed",
                                                      example: Array("\(home)/.ssh/id".utf8), evidence: evidence())]
        return observations
    }
}

/// The repository's bundled profiles directory.
func repositoryProfiles(file: String = #filePath) -> String {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path + "/profiles"
}
