import CagentCore
@testable import CagentPropose
import Testing

/// Found by the pip proof (AgentProofTests): pip's `distro` module stats every entry of /etc looking for its
/// *-release files, and the proposal listed all ~150 of them, /etc/mtab (a link into /proc) included. A scan —
/// many entries of a directory never bound whole, only looked at — is a note, not entries; an entry of it that
/// was opened is still proposed, and a few looked-at entries still are.
@Suite struct ScanProposalTests {
    @Test func statOnlyScanOfEtcIsANote() {
        var observations = Observations(sessions: ["s"])
        let scanned = (0..<40).map { "/etc/entry\($0)" }
        observations.files = scanned.map { file($0, flags: nil) } + [file("/etc/entry3"), file("/etc/os-release"), file("/etc/os-release", flags: nil)]
        let proposal = proposer().propose(observations)
        let read = values(proposal.read)
        #expect(read.contains("/etc/entry3") && read.contains("/etc/os-release"), "\(read)")
        #expect(!read.contains("/etc/entry0") && !read.contains("/etc/entry39"), "\(read)")
        #expect(proposal.filesystemNotes.contains { $0.hasPrefix("not proposed: 39 entries of /etc only looked at (stat/access, never opened)") },
                "\(proposal.filesystemNotes)")

        // The control: a few entries only looked at are still proposed (a program checking a file it needs).
        var few = Observations(sessions: ["s"])
        few.files = ["/etc/a.conf", "/etc/b.conf", "/etc/c.conf"].map { file($0, flags: nil) }
        #expect(values(proposer().propose(few).read) == ["/etc/a.conf", "/etc/b.conf", "/etc/c.conf"])
    }
}
