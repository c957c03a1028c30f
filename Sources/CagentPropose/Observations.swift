// What the proposer reads: one or more sessions' observations as plain values, independent of the store (the
// adapter `Observations.load` fills them from SQLite; tests build them by hand). Text from a sandbox stays
// bytes (`[UInt8]`): a name or path that is not valid UTF-8 can never become an entry, only a comment.

/// Nanoseconds since the Unix epoch.
package typealias ObservedTime = Int64

/// Count, first and last seen, and which programs: the evidence every proposed entry cites.
package struct Evidence: Sendable, Equatable {
    package var count: Int64
    package var firstSeen: ObservedTime
    package var lastSeen: ObservedTime
    /// Program names (comm), sorted, without repeats.
    package var programs: [String]

    package init(count: Int64, firstSeen: ObservedTime, lastSeen: ObservedTime, programs: [String] = []) {
        self.count = count; self.firstSeen = firstSeen; self.lastSeen = lastSeen
        self.programs = Array(Set(programs.filter { !$0.isEmpty })).sorted()
    }

    package static let none = Evidence(count: 0, firstSeen: .max, lastSeen: .min)

    /// The union of two pieces of evidence (counts add, times widen, programs join).
    package func merged(with other: Evidence) -> Evidence {
        Evidence(count: count &+ other.count, firstSeen: min(firstSeen, other.firstSeen),
                 lastSeen: max(lastSeen, other.lastSeen), programs: programs + other.programs)
    }
}

package struct Observations: Sendable {
    /// A DNS question name and what was asked about it (types, rcodes), summed over resolvers and sources.
    package struct Lookup: Sendable {
        package var name: [UInt8]
        package var rcodes: [String]
        package var evidence: Evidence
        package init(name: [UInt8], rcodes: [String] = [], evidence: Evidence) {
            self.name = name; self.rcodes = rcodes; self.evidence = evidence
        }
    }

    /// One (proto, address, port) flow, its sources merged.
    package struct Flow: Sendable {
        package var proto: String
        package var address: String
        package var port: UInt16
        /// The destination's name (a DNS question whose answer gave the address, or the TLS SNI); nil: a direct IP.
        package var name: [UInt8]?
        /// "dns", "sni" or nil.
        package var nameSource: String?
        /// "observed", "allowed" or "blocked" (the most severe any source gave).
        package var verdict: String
        /// Connect results (0 or an errno), sorted.
        package var results: [Int64]
        /// Whether packets were seen: true when the network logged it (or counted bytes), false when only a
        /// connect(2) was seen in a session whose network was observed, nil when the session cannot tell.
        package var trafficSeen: Bool?
        package var evidence: Evidence

        package init(proto: String, address: String, port: UInt16, name: [UInt8]?, nameSource: String? = nil,
                    verdict: String = "observed", results: [Int64] = [0], trafficSeen: Bool? = nil, evidence: Evidence) {
            self.proto = proto; self.address = address; self.port = port; self.name = name; self.nameSource = nameSource
            self.verdict = verdict; self.results = results; self.trafficSeen = trafficSeen; self.evidence = evidence
        }
    }

    /// One (path, operation, result) file access, summed over programs.
    package struct File: Sendable {
        package var path: [UInt8]
        /// "read", "write", "create", "exec", "delete", "rename", "mkdir".
        package var operation: String
        /// 0 or an errno.
        package var result: Int64
        /// The OR of the open flags seen (nil: not an open, or unknown).
        package var flags: Int64?
        package var evidence: Evidence

        package init(path: [UInt8], operation: String, result: Int64 = 0, flags: Int64? = nil, evidence: Evidence) {
            self.path = path; self.operation = operation; self.result = result; self.flags = flags; self.evidence = evidence
        }
    }

    /// A program started (its executable path).
    package struct Exec: Sendable {
        package var executable: [UInt8]
        package var evidence: Evidence
        package init(executable: [UInt8], evidence: Evidence) { self.executable = executable; self.evidence = evidence }
    }

    /// A finding the recorder raised (`secret-access`, `dns-exfiltration`, `doh-endpoint`, `dns-bypass`, ...).
    package struct Finding: Sendable {
        package var kind: String
        package var subject: [UInt8]
        package var detail: String
        package var example: [UInt8]
        package var evidence: Evidence
        package init(kind: String, subject: [UInt8], detail: String, example: [UInt8], evidence: Evidence) {
            self.kind = kind; self.subject = subject; self.detail = detail; self.example = example; self.evidence = evidence
        }
    }

    /// What an enforce session denied that a profile entry could allow: a name the gate refused (not in
    /// the profile; `port` nil, `proto` "dns"), or a packet the firewall blocked (its address, port and proto,
    /// and the name whose answer gave the address when the gate knew one).
    package struct Denial: Sendable {
        package var name: [UInt8]?
        package var address: String?
        package var proto: String
        package var port: UInt16?
        package var evidence: Evidence
        package init(name: [UInt8]?, address: String? = nil, proto: String, port: UInt16? = nil, evidence: Evidence) {
            self.name = name; self.address = address; self.proto = proto; self.port = port; self.evidence = evidence
        }
    }

    /// The sessions these come from (ids, for the header), in the order given.
    package var sessions: [String]
    /// The DNS gates' addresses in those sessions: flows to them are DNS, not flows.
    package var gates: [String]
    package var lookups: [Lookup]
    package var flows: [Flow]
    package var files: [File]
    package var execs: [Exec]
    package var findings: [Finding]
    package var denials: [Denial]

    package init(sessions: [String] = [], gates: [String] = [], lookups: [Lookup] = [], flows: [Flow] = [],
                files: [File] = [], execs: [Exec] = [], findings: [Finding] = [], denials: [Denial] = []) {
        self.sessions = sessions; self.gates = gates; self.lookups = lookups; self.flows = flows
        self.files = files; self.execs = execs; self.findings = findings; self.denials = denials
    }
}
