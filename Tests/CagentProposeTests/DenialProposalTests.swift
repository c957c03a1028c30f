import CagentCore
import CagentProfile
@testable import CagentPropose
import Testing

/// `cagent profile propose --update`: what an enforce session denied becomes the smallest addition to the
/// profile, flagged by the proposer's own rules, shown as a diff, and the file keeps everything else.
@Suite struct DenialProposalTests {
    static let t0: ObservedTime = 1_796_000_000_000_000_000
    static func evidence(_ count: Int64 = 1) -> Evidence { Evidence(count: count, firstSeen: t0, lastSeen: t0 + 1_000_000_000) }

    func proposer(givenDomains: [String] = []) -> Proposer {
        var options = ProposalOptions(home: "/home/u")
        options.extends = []
        options.givenDomains = givenDomains
        return Proposer(options: options, suffixes: systemSuffixes)
    }

    @Test func oneRefusedNameIsExactlyOneDomain() {
        let observations = Observations(sessions: ["E1"], denials: [
            .init(name: Array("api.allowed.test".utf8), proto: "dns", evidence: Self.evidence(2)),
            .init(name: Array("www.allowed.test".utf8), proto: "dns", evidence: Self.evidence()),   // already allowed
        ])
        let proposal = proposer(givenDomains: ["www.allowed.test"]).propose(observations)
        #expect(proposal.domains.map(\.value) == ["api.allowed.test"])
        #expect(proposal.domains.first?.comments.first?.hasPrefix("2 denials, ") == true, "\(proposal.domains)")
        #expect(proposal.endpoints.isEmpty && proposal.cidrs.isEmpty && proposal.riskCount == 0)
    }

    @Test func deniedPacketsAreEndpointsFlaggedLikeObservedOnes() {
        let observations = Observations(sessions: ["E1"], denials: [
            .init(name: nil, address: "10.1.2.3", proto: "tcp", port: 5432, evidence: Self.evidence()),
            .init(name: Array("git.allowed.test".utf8), address: "203.0.113.9", proto: "tcp", port: 22, evidence: Self.evidence()),
        ])
        let proposal = proposer().propose(observations)
        #expect(proposal.endpoints.map(\.value) == ["10.1.2.3:5432/tcp", "git.allowed.test:22/tcp"])
        let direct = proposal.endpoints[0]
        #expect(direct.risks.contains { $0.hasPrefix("direct IP") } && direct.risks.contains { $0.hasPrefix("private range") })
    }

    /// The positive control is the first test: one refused name is proposed. Here, names that look like data
    /// sent out as queries are never proposed, and the proposal says why.
    @Test func exfiltrationLookingNamesAreNeverProposed() {
        let label = "mzxw6ytboi2dqnzrgq3tmnbvgu2dcnjx"
        let observations = Observations(sessions: ["E1"], denials: [
            .init(name: Array("\(label).t.attacker.test".utf8), proto: "dns", evidence: Self.evidence()),
        ])
        let proposal = proposer().propose(observations)
        #expect(proposal.domains.isEmpty, "\(proposal.domains)")
        #expect(proposal.networkNotes.contains { $0.hasPrefix("RISK: possible DNS exfiltration under t.attacker.test") },
                "\(proposal.networkNotes)")
    }

    @Test func theUpdateKeepsTheFileAndShowsOnlyTheAddition() throws {
        let original = """
        # my profile
        cagent: 1
        extends: [base]
        network:
          domains:
            - www.allowed.test   # the site
          endpoints:
            - "203.0.113.5:8080/tcp"
        filesystem:
          read: [~/.gitconfig]

        """
        var proposal = Proposal(sessions: ["E1"], extends: [])
        proposal.domains = [.init(value: "api.allowed.test", comments: ["1 denial, 2026-12-07 10:00:00 UTC"])]
        let update = try ProfileUpdate.apply(proposal, to: original, file: "p.yaml")
        #expect(update.added == 1)
        #expect(update.text == """
        # my profile
        cagent: 1
        extends: [base]
        network:
          domains:
            - www.allowed.test   # the site
            # added by cagent profile propose --update from E1
            # 1 denial, 2026-12-07 10:00:00 UTC
            - api.allowed.test
          endpoints:
            - "203.0.113.5:8080/tcp"
        filesystem:
          read: [~/.gitconfig]

        """, "\(update.text)")
        let added = update.diff.split(separator: "\n").filter { $0.hasPrefix("+") && !$0.hasPrefix("+++") }
        #expect(added == ["+    # added by cagent profile propose --update from E1", "+    # 1 denial, 2026-12-07 10:00:00 UTC",
                          "+    - api.allowed.test"], "\(update.diff)")
        #expect(!update.diff.split(separator: "\n").contains { $0.hasPrefix("-") && !$0.hasPrefix("---") })
        #expect(update.diff.contains("@@ -4,6 +4,9 @@"), "\(update.diff)")
        let parsed = ProfileParser.parse(text: update.text, file: "p.yaml")
        #expect(parsed.layer != nil && !parsed.diagnostics.contains { $0.severity == .error }, "\(parsed.diagnostics)")
    }

    @Test func aMissingSectionIsAddedAndAFlowListIsRefused() throws {
        var proposal = Proposal(sessions: ["E1"], extends: [])
        proposal.domains = [.init(value: "api.allowed.test", comments: ["1 denial"])]
        let bare = try ProfileUpdate.apply(proposal, to: "cagent: 1\nextends: [base]\n", file: "p.yaml")
        #expect(bare.text == "cagent: 1\nextends: [base]\n\nnetwork:\n  domains:\n    # added by cagent profile propose --update from E1\n    # 1 denial\n    - api.allowed.test\n",
                "\(bare.text)")
        let empty = try ProfileUpdate.apply(proposal, to: "cagent: 1\nnetwork:\n  domains: []\n", file: "p.yaml")
        #expect(empty.text.hasSuffix("network:\n  domains:\n    # added by cagent profile propose --update from E1\n    # 1 denial\n    - api.allowed.test\n"), "\(empty.text)")
        #expect(throws: ProfileUpdate.Problem.self) {
            try ProfileUpdate.apply(proposal, to: "cagent: 1\nnetwork:\n  domains: [www.allowed.test]\n", file: "p.yaml")
        }
    }
}
