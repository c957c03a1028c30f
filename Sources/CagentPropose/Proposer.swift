import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// What the proposed profile builds on and how far it may generalize.
package struct ProposalOptions: Sendable {
    /// The profiles the proposal extends (`base` by default).
    package var extends: [String] = ["base"]
    /// `*.parent` only when at least this many distinct names directly under `parent` were connected to.
    package var siblingThreshold = 3
    /// A directory instead of its entries when at least this many distinct entries directly under it were used.
    package var collapseThreshold = 3
    /// A parent under which at least this many distinct names were looked up, most of them never connected
    /// to, is flagged as possible DNS exfiltration (as is any name with an encoded-looking label).
    package var exfiltrationThreshold = 20
    /// Allow `*.parent` directly under a multi-tenant suffix of the list's PRIVATE section (`*.github.io`).
    package var allowPrivateSuffix = false
    /// The invoking user's home: paths under it are written `~/...`.
    package var home: String
    /// The agent's workspace (always writable in enforce): nothing under it is proposed.
    package var workspace: String?
    /// What the sandbox and the extended profiles already give. Absolute paths (`~` expanded).
    package var givenRead: [String] = []
    package var givenWrite: [String] = []
    /// The extended profiles' network entries (canonical patterns, endpoints as `host:port/proto`).
    package var givenDomains: [String] = []
    package var givenEndpoints: [String] = []
    /// The hide list (`~/x` or absolute): never proposed, never collapsed over.
    package var hidden: [String] = DefaultHidden.home

    package init(home: String) { self.home = home }
}


/// Files a program reads when they exist and runs without: configuration that only adjusts its behaviour.
/// Proposed (the replay then behaves as the session did) but marked optional with the reason, so that the
/// proposal holds nothing a reviewer cannot drop knowingly. Each rule comes from an ablation that found the
/// entry unused (Tests/SandboxTests/ProposeWorkloadsTests.swift).
package enum KnownOptional {
    package static func reason(for path: String) -> String? {
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        // core.excludesFile (/etc/gitconfig on some hosts names /etc/gitignore), the XDG defaults, attributes.
        if ["gitignore", ".gitignore_global", "gitattributes"].contains(name)
            || path.hasSuffix("/git/ignore") || path.hasSuffix("/git/attributes") {
            return "git's global excludes or attributes file: git runs without it (then fewer files are ignored or attributed)"
        }
        return nil
    }
}

/// Observations in, the smallest profile that lets the same work run again out. Pure: no I/O, no clock;
/// the same observations and options give the same proposal.
package struct Proposer: Sendable {
    package var options: ProposalOptions
    package var suffixes: PublicSuffixList

    package init(options: ProposalOptions, suffixes: PublicSuffixList) {
        self.options = options; self.suffixes = suffixes
    }

    package func propose(_ observations: Observations) -> Proposal {
        var proposal = Proposal(sessions: observations.sessions, extends: options.extends)
        proposeNetwork(observations, into: &proposal)
        proposeFilesystem(observations, into: &proposal)
        return proposal
    }

    // MARK: network

    /// One name's connections, by (proto, port).
    private struct Connected {
        var ports: [String: Evidence] = [:]   // "tcp/443" -> evidence
        var evidence = Evidence.none
        var sources: Set<String> = []
    }

    private func proposeNetwork(_ observations: Observations, into proposal: inout Proposal) {
        var notes: [String] = []
        let gates = Set(observations.gates.map(canonicalAddress))

        // Names looked up, normalized; a name that is not a valid host name is never an entry.
        var lookups: [String: (rcodes: Set<String>, evidence: Evidence)] = [:]
        var unusableNames = 0
        for lookup in observations.lookups {
            guard let name = hostName(lookup.name) else { unusableNames += 1; continue }
            var entry = lookups[name] ?? ([], .none)
            entry.rcodes.formUnion(lookup.rcodes.filter { !$0.isEmpty })
            entry.evidence = entry.evidence.merged(with: lookup.evidence)
            lookups[name] = entry
        }

        var connected: [String: Connected] = [:]
        var direct: [String: (risks: [String], evidence: Evidence)] = [:]   // endpoint text -> ...
        var probes = Evidence.none
        var probeCount = 0
        for flow in observations.flows {
            let address = canonicalAddress(flow.address)
            let where_ = "\(flow.proto) \(hostForEndpoint(address)):\(flow.port)"
            if gates.contains(address) || isLoopbackOrUnspecified(address) { continue }
            if flow.port == 53 && (flow.proto == "udp" || flow.proto == "tcp") {
                notes.append("not proposed: DNS to \(where_) (enforce sends every DNS query to the gate) -- \(describe(flow.evidence))")
                continue
            }
            if flow.proto == "udp" && flow.trafficSeen == false {
                // getaddrinfo's source-address probes: a connect(2) on a UDP socket that never sends.
                probes = probes.merged(with: flow.evidence); probeCount += 1
                continue
            }
            if flow.proto != "tcp" && flow.proto != "udp" {
                notes.append("not proposed: \(where_) (profiles open only tcp and udp) -- \(describe(flow.evidence))")
                continue
            }
            if flow.verdict == "blocked" {
                var text = "not proposed: \(where_) was blocked while learning (metadata, the host or the LAN)"
                if isPrivateAddress(address) { text = "RISK: private range: " + text }
                notes.append(text + " -- " + describe(flow.evidence))
                continue
            }
            if !flow.results.contains(where: { $0 == 0 || $0 == 115 /* EINPROGRESS */ }) {
                let errors = flow.results.map(Self.errnoName).joined(separator: ", ")
                notes.append("not proposed: \(where_)\(flow.name.flatMap(hostName).map { " (\($0))" } ?? "") failed (\(errors)) -- \(describe(flow.evidence))")
                continue
            }
            let key = "\(flow.proto)/\(flow.port)"
            if let raw = flow.name, let name = hostName(raw) {
                var entry = connected[name] ?? Connected()
                entry.ports[key] = (entry.ports[key] ?? .none).merged(with: flow.evidence)
                entry.evidence = entry.evidence.merged(with: flow.evidence)
                if let source = flow.nameSource { entry.sources.insert(source) }
                connected[name] = entry
            } else if flow.name != nil {
                notes.append("not proposed: \(where_) named by an unusable name -- \(describe(flow.evidence))")
            } else {
                let endpoint = "\(hostForEndpoint(address)):\(flow.port)/\(flow.proto)"
                var risks = ["direct IP: no DNS answer or SNI named \(address)"]
                if isPrivateAddress(address) { risks.append("private range: \(address)") }
                if KnownDoH.addresses.contains(address) && (flow.port == 443 || flow.port == 853) {
                    risks.append("DoH/DoT provider address: names resolved there bypass the gate")
                }
                if let proxy = Self.proxyPortRisk(flow.port) { risks.append(proxy) }
                var entry = direct[endpoint] ?? (risks, .none)
                entry.evidence = entry.evidence.merged(with: flow.evidence)
                direct[endpoint] = entry
            }
        }
        // What enforce denied: a refused name as if it had connected on the web ports (the smallest entry
        // that lets the lookup and the connection through), a blocked packet as its name's endpoint or, with
        // no name, a direct-IP endpoint. The same rules as observed flows apply: never under a name that
        // looks like exfiltration, wildcards only on enough siblings, every risk flagged.
        var denied: Set<String> = []
        for denial in observations.denials {
            if let address = denial.address.map(canonicalAddress), gates.contains(address) || isLoopbackOrUnspecified(address) { continue }
            let key = denial.port.map { "\(denial.proto)/\($0)" } ?? "tcp/443"
            if let raw = denial.name {
                guard let name = hostName(raw) else { unusableNames += 1; continue }
                var entry = connected[name] ?? Connected()
                entry.ports[key] = (entry.ports[key] ?? .none).merged(with: denial.evidence)
                entry.evidence = entry.evidence.merged(with: denial.evidence)
                connected[name] = entry
                denied.insert(name)
            } else if let address = denial.address.map(canonicalAddress), let port = denial.port,
                      denial.proto == "tcp" || denial.proto == "udp" {
                let endpoint = "\(hostForEndpoint(address)):\(port)/\(denial.proto)"
                var risks = ["direct IP: no DNS answer of the gate named \(address)"]
                if isPrivateAddress(address) { risks.append("private range: \(address)") }
                if KnownDoH.addresses.contains(address) && (port == 443 || port == 853) {
                    risks.append("DoH/DoT provider address: names resolved there bypass the gate")
                }
                var entry = direct[endpoint] ?? (risks, .none)
                entry.evidence = entry.evidence.merged(with: denial.evidence)
                direct[endpoint] = entry
                denied.insert(endpoint)
            } else {
                notes.append("not proposed: a denied \(denial.proto) packet to \(denial.address ?? "?") (profiles open only tcp and udp)")
            }
        }
        func unit(_ key: String) -> String { denied.contains(key) ? "denial" : "connection" }
        if probeCount > 0 {
            notes.append("not proposed: \(probeCount) UDP connect(s) that sent nothing (getaddrinfo's address probes, not flows) -- \(describe(probes))")
        }
        if unusableNames > 0 { notes.append("not proposed: \(unusableNames) looked-up name(s) that are not valid host names") }

        // Possible DNS exfiltration: flagged parents; nothing under them is listed.
        let flagged = exfiltrationParents(lookups: lookups, connected: connected, findings: observations.findings)
        func underFlagged(_ name: String) -> String? {
            flagged.keys.sorted { $0.count > $1.count }.first { name.hasSuffix("." + $0) }
        }
        for (parent, info) in flagged.sorted(by: { $0.key < $1.key }) {
            notes.append("RISK: possible DNS exfiltration under \(parent): \(info.names) unique name(s)"
                         + " (\(info.reason)); none of them proposed, nothing widened -- \(describe(info.evidence))")
        }

        // Connected names: a domain entry for the web ports (a domain opens tcp/80 and tcp/443), an endpoint
        // for every other port.
        var webNames: [String: Evidence] = [:]
        var endpoints: [String: (evidence: Evidence, risks: [String])] = [:]
        for (name, entry) in connected where underFlagged(name) == nil {
            for (key, evidence) in entry.ports {
                if key == "tcp/443" || key == "tcp/80" {
                    webNames[name] = (webNames[name] ?? .none).merged(with: evidence)
                } else {
                    let parts = key.split(separator: "/")
                    let endpoint = "\(name):\(parts[1])/\(parts[0])"
                    if givenEndpoints(contains: endpoint) { continue }
                    var risks: [String] = []
                    if KnownDoH.names.contains(name) { risks.append("DoH/DoT provider: names resolved there bypass the gate") }
                    if let proxy = Self.proxyPortRisk(UInt16(parts[1]) ?? 0) { risks.append(proxy) }
                    endpoints[endpoint] = ((endpoints[endpoint]?.evidence ?? .none).merged(with: evidence), risks)
                    if denied.contains(name) { denied.insert(endpoint) }
                }
            }
        }

        // Names the extended profiles already allow need nothing.
        webNames = webNames.filter { name, _ in !options.givenDomains.contains { ValueSyntax.matches(pattern: $0, name: name) } }

        // `*.parent` on evidence: enough distinct siblings, never at or above a public suffix.
        var byParent: [String: [String]] = [:]
        for name in webNames.keys {
            guard let dot = name.firstIndex(of: ".") else { continue }
            byParent[String(name[name.index(after: dot)...]), default: []].append(name)
        }
        var wildcarded: Set<String> = []
        var domainEntries: [Proposal.Entry] = []
        for (parent, children) in byParent.sorted(by: { $0.key < $1.key }) where children.count >= options.siblingThreshold {
            guard parent.contains(".") else { continue }
            let publicSuffix = suffixes.isPublicSuffix(parent, includePrivate: true)
            let icannSuffix = suffixes.isPublicSuffix(parent, includePrivate: false)
            if icannSuffix || (publicSuffix && !options.allowPrivateSuffix) {
                notes.append("not widened: \(children.count) names under \(parent), a public suffix"
                             + (icannSuffix ? "" : " shared by many tenants (--allow-private-suffix widens it)"))
                continue
            }
            var risks = ["wildcard: \(children.count) names used under \(parent); *.\(parent) admits any other name there"]
            if publicSuffix { risks.append("multi-tenant suffix \(parent) (the list's PRIVATE section): other tenants' names match too") }
            if children.contains(where: { KnownDoH.names.contains($0) }) {
                risks.append("DoH/DoT provider under it: names resolved there bypass the gate")
            }
            let evidence = children.reduce(Evidence.none) { $0.merged(with: webNames[$1]!) }
            let sorted = children.sorted()
            let shown = sorted.prefix(5).joined(separator: ", ") + (sorted.count > 5 ? ", ..." : "")
            domainEntries.append(Proposal.Entry(value: "*." + parent,
                                                comments: ["used: \(shown)", describe(evidence, unit: "connection")],
                                                risks: risks))
            wildcarded.formUnion(children)
        }
        for (name, evidence) in webNames where !wildcarded.contains(name) {
            var risks: [String] = []
            if KnownDoH.names.contains(name) { risks.append("DoH/DoT provider: names resolved there bypass the gate") }
            if let sources = connected[name]?.sources, sources == ["sni"] {
                risks.append("named only by TLS SNI: no DNS answer of the session gave its address")
            }
            domainEntries.append(Proposal.Entry(value: name, comments: [describe(evidence, unit: unit(name))], risks: risks))
        }
        proposal.domains = validated(domainEntries, notes: &notes) { (value: String) throws(ValueProblem) -> String in try ValueSyntax.domainPattern(value) }
            .sorted { domainOrder($0.value) < domainOrder($1.value) }

        var endpointEntries = endpoints.map { Proposal.Entry(value: $0.key, comments: [describe($0.value.evidence, unit: unit($0.key))], risks: $0.value.risks) }
        endpointEntries += direct.map { Proposal.Entry(value: $0.key, comments: [describe($0.value.evidence, unit: unit($0.key))], risks: $0.value.risks) }
        proposal.endpoints = validated(endpointEntries, notes: &notes) { (value: String) throws(ValueProblem) -> String in try ValueSyntax.endpoint(value).description }
            .sorted { $0.value < $1.value }

        // Names only looked up: comments, never entries.
        let allowed = Set(connected.keys)
        var lookupOnly: [String] = []
        for (name, lookup) in lookups.sorted(by: { $0.key < $1.key }) where !allowed.contains(name) {
            if underFlagged(name) != nil { continue }
            if proposal.domains.contains(where: { ValueSyntax.matches(pattern: $0.value, name: name) }) { continue }
            if options.givenDomains.contains(where: { ValueSyntax.matches(pattern: $0, name: name) }) { continue }
            if KnownDoH.names.contains(name) {
                notes.append("RISK: DoH/DoT provider \(name) looked up (no connection seen)")
            }
            let rcodes = lookup.rcodes.sorted().joined(separator: ",")
            lookupOnly.append("  \(name)" + (rcodes.isEmpty ? "" : " (\(rcodes))") + " -- " + describe(lookup.evidence, unit: "query"))
        }
        if !lookupOnly.isEmpty {
            notes.append("looked up only, no connection (not entries):")
            notes += lookupOnly
        }
        for finding in observations.findings.sorted(by: { $0.kind != $1.kind ? $0.kind < $1.kind : $0.subject.lexicographicallyPrecedes($1.subject) }) {
            switch finding.kind {
            case "dns-bypass":
                notes.append("RISK: DNS bypassed the gate: \(text(finding.subject)) -- \(finding.detail) -- \(describe(finding.evidence))")
            case "doh-endpoint":
                notes.append("RISK: DoH/DoT provider: \(text(finding.subject)) -- \(finding.detail) -- \(describe(finding.evidence))")
            default: break
            }
        }
        proposal.networkNotes = notes
    }

    private func givenEndpoints(contains endpoint: String) -> Bool { options.givenEndpoints.contains(endpoint) }

    /// Parents flagged as possible exfiltration, with the number of names under them and why.
    private func exfiltrationParents(lookups: [String: (rcodes: Set<String>, evidence: Evidence)],
                                     connected: [String: Connected], findings: [Observations.Finding])
        -> [String: (names: Int, reason: String, evidence: Evidence)] {
        var flagged: [String: (names: Set<String>, reasons: Set<String>, evidence: Evidence)] = [:]
        var children: [String: Set<String>] = [:]
        let names = Set(lookups.keys).union(connected.keys)
        for name in names {
            let evidence = (lookups[name]?.evidence ?? .none).merged(with: connected[name]?.evidence ?? .none)
            if let parent = encodedParent(name) {
                var entry = flagged[parent] ?? ([], [], .none)
                entry.names.insert(name); entry.reasons.insert("long or high-entropy labels")
                entry.evidence = entry.evidence.merged(with: evidence)
                flagged[parent] = entry
            }
            if let dot = name.firstIndex(of: ".") { children[String(name[name.index(after: dot)...]), default: []].insert(name) }
        }
        for (parent, names) in children where names.count >= options.exfiltrationThreshold {
            // Many names under one parent, most never connected to: the shape of data sent out as queries.
            let unused = names.filter { connected[$0] == nil }.count
            guard unused * 2 > names.count, !suffixes.isPublicSuffix(parent) else { continue }
            var entry = flagged[parent] ?? ([], [], .none)
            entry.names.formUnion(names); entry.reasons.insert("\(names.count) unique names, \(unused) never connected to")
            for name in names { entry.evidence = entry.evidence.merged(with: lookups[name]?.evidence ?? .none) }
            flagged[parent] = entry
        }
        for finding in findings where finding.kind == "dns-exfiltration" {
            guard let parent = hostName(finding.subject) else { continue }
            var entry = flagged[parent] ?? ([], [], .none)
            entry.reasons.insert("the recorder's dns-exfiltration finding")
            entry.evidence = entry.evidence.merged(with: finding.evidence)
            for name in names where name.hasSuffix("." + parent) { entry.names.insert(name) }
            flagged[parent] = entry
        }
        return flagged.mapValues { ($0.names.count, $0.reasons.sorted().joined(separator: "; "), $0.evidence) }
    }

    /// The parent under a name's encoded-looking labels (below its registrable domain), or nil.
    func encodedParent(_ name: String) -> String? {
        let labels = name.split(separator: ".")
        let registrable = suffixes.registrableDomain(name)?.split(separator: ".").count ?? 2
        guard labels.count > registrable else { return name.utf8.count > 180 ? name : nil }
        var last = -1
        for (index, label) in labels.dropLast(registrable).enumerated() where Self.looksEncoded(label) { last = index }
        if last < 0 { return name.utf8.count > 180 ? labels.suffix(registrable).joined(separator: ".") : nil }
        return labels[(last + 1)...].joined(separator: ".")
    }

    /// A label of 40+ characters, or of 16+ characters with base32/base64/hex-like entropy (the recorder's
    /// `dns-exfiltration` rule, docs/store.md).
    static func looksEncoded(_ label: Substring) -> Bool { EncodedLabel.looksEncoded(label) }

    /// Domains sort by their labels from the right (`example.com` next to `*.example.com`).
    private func domainOrder(_ pattern: String) -> String {
        pattern.split(separator: ".").reversed().joined(separator: ".")
    }

    // MARK: filesystem

    /// Entries of one directory only looked at that make a scan rather than uses (pip's /etc scan: ~150).
    static let scanThreshold = 16

    private enum Need: Comparable { case read, write }

    private struct PathUse {
        var evidence = Evidence.none
        var operations: Set<String> = []
        /// Only opened as a directory (a listing): proposed only when nothing beneath it is.
        var listingOnly = true
        var collapsed: [String] = []
    }

    private func proposeFilesystem(_ observations: Observations, into proposal: inout Proposal) {
        var notes: [String] = []
        var wanted: [Need: [String: PathUse]] = [.read: [:], .write: [:]]
        var probes = Evidence.none
        var probeCount = 0
        var hiddenSkipped = 0
        var runLater: [String: Evidence] = [:]
        var unusable = 0
        var tooWide: [String: Evidence] = [:]
        var shadowHome = Evidence.none
        var shadowHomeCount = 0
        var readPaths: Set<String> = []
        for file in observations.files where file.result == 0 && (file.operation == "read" || file.operation == "write") {
            if let path = absolutePath(file.path) { readPaths.insert(path) }
        }
        let oPath = Int64(0o10000000), oDirectory = Int64(O_DIRECTORY)
        // Paths only looked at (stat, access, readlink: a read without open flags) and paths used otherwise.
        var lookedAt: Set<String> = [], usedOtherwise: Set<String> = []

        for file in observations.files {
            guard let path = absolutePath(file.path) else { unusable += 1; continue }
            if file.result == 0 {
                if file.operation == "read" && file.flags == nil { lookedAt.insert(path) } else { usedOtherwise.insert(path) }
            }
            if file.result != 0 {
                probeCount += 1; probes = probes.merged(with: file.evidence)
                continue
            }
            if let flags = file.flags, flags & oPath != 0 { continue }   // a handle on the path, not its content
            let writes = ["write", "create", "delete", "rename", "mkdir"].contains(file.operation)
            if writes && isRunLater(path) { runLater[path] = (runLater[path] ?? .none).merged(with: file.evidence) }
            if isHidden(path) { hiddenSkipped += 1; continue }
            // Creating, deleting or renaming needs the directory; writing an existing file needs only the file
            // (an O_CREAT open of a file that was also read is a rewrite of that file).
            var target = path
            if ["create", "delete", "rename", "mkdir"].contains(file.operation)
                && !(file.operation == "create" && readPaths.contains(path)) {
                if covers(options.home, path) && !isGiven(path, need: .write) {
                    // New files in the home land in the agent's writable shadow home: no entry needed.
                    shadowHome = shadowHome.merged(with: file.evidence); shadowHomeCount += 1
                    continue
                }
                target = parentDirectory(path)
            }
            let need: Need = writes ? .write : .read
            if isGiven(target, need: need) { continue }
            if !writes && (target == "/" || target == options.home) { continue }   // a walk through it, never bound whole
            // The sandbox's own /dev (null, tty, ...) and /proc take writes as they are.
            if writes && (covers("/dev", target) || covers("/proc", target)) { continue }
            if writes && covers("/sys", target) {
                tooWide[target, default: .none] = tooWide[target, default: .none].merged(with: file.evidence)
                continue
            }
            if target != path && !mayCollapse(into: target) {
                // Creating in `/etc`, `/`, the home itself: never bound writable whole (in the home, new files
                // land in the agent's shadow home anyway).
                tooWide[target, default: .none] = tooWide[target, default: .none].merged(with: file.evidence)
                continue
            }
            var use = wanted[need]![target] ?? PathUse()
            use.evidence = use.evidence.merged(with: file.evidence)
            use.operations.insert(file.operation)
            let listing = need == .read && (file.flags ?? 0) & oDirectory != 0
            if !listing { use.listingOnly = false }
            wanted[need]![target] = use
        }
        for exec in observations.execs {
            guard let path = absolutePath(exec.executable), !isHidden(path), !isGiven(path, need: .read) else { continue }
            var use = wanted[.read]![path] ?? PathUse()
            use.evidence = use.evidence.merged(with: exec.evidence)
            use.operations.insert("exec"); use.listingOnly = false
            wanted[.read]![path] = use
        }

        // A scan: many entries of a directory never bound whole (/etc, /opt, the home) only looked at, e.g. the
        // `distro` module pip loads stats every entry of /etc for its *-release files. Binding them all would
        // show the agent the whole directory, one entry at a time (and /etc/mtab is a link into /proc).
        var scanned: [String: [String]] = [:]
        for path in lookedAt.subtracting(usedOtherwise) where wanted[.read]![path]?.operations == ["read"] {
            let parent = parentDirectory(path)
            if !mayCollapse(into: parent) { scanned[parent, default: []].append(path) }
        }
        for (parent, paths) in scanned.sorted(by: { $0.key < $1.key }) where paths.count >= Self.scanThreshold {
            var evidence = Evidence.none
            for path in paths {
                evidence = evidence.merged(with: wanted[.read]![path]?.evidence ?? .none)
                wanted[.read]![path] = nil
            }
            notes.append("not proposed: \(paths.count) entries of \(display(parent)) only looked at (stat/access, never opened): a scan of the directory -- \(describe(evidence))")
        }

        // A read under a write entry is covered; a listing with something beneath it proposed is too.
        var writes = collapse(wanted[.write]!)
        var reads = wanted[.read]!.filter { path, _ in !writes.keys.contains { covers($0, path) } }
        let everything = Array(reads.keys) + Array(writes.keys)
        reads = reads.filter { path, use in
            // Opened as a directory, or a directory never bound whole (`/opt`): what beneath it was used covers it.
            !((use.listingOnly || !mayCollapse(into: path)) && everything.contains { $0 != path && covers(path, $0) })
        }
        reads = collapse(reads).filter { path, _ in !writes.keys.contains { covers($0, path) } }
        for (path, use) in reads where use.listingOnly && !mayCollapse(into: path) {
            notes.append("not proposed: listing of \(display(path)) (a directory this wide is never bound whole) -- \(describe(use.evidence))")
            reads[path] = nil
        }
        writes = writes.filter { path, use in
            if path == "/" || path == options.home { return false }
            return true
        }

        func entries(_ uses: [String: PathUse], need: Need) -> [Proposal.Entry] {
            uses.map { path, use in
                var comments: [String] = []
                if !use.collapsed.isEmpty {
                    let shown = use.collapsed.sorted().prefix(5).map { String($0.dropFirst(path.count + 1)) }
                    comments.append("directory: \(use.collapsed.count) entries beneath used (\(shown.joined(separator: ", "))\(use.collapsed.count > 5 ? ", ..." : ""))")
                } else if use.listingOnly {
                    comments.append("listed (opened as a directory), nothing beneath it used")
                }
                comments.append(use.operations.sorted().joined(separator: "/") + " " + describe(use.evidence))
                if need == .read && use.collapsed.isEmpty, let reason = KnownOptional.reason(for: path) {
                    comments.append("optional: " + reason)
                }
                var risks: [String] = []
                if need == .write, let hit = runLater.keys.sorted().first(where: { covers(path, $0) }) {
                    risks.append("writes to \(display(hit)), which runs code later (shell start-up, hooks, PATH)")
                }
                return Proposal.Entry(value: display(path), comments: comments, risks: risks)
            }
        }
        proposal.read = validated(entries(reads, need: .read), notes: &notes) { (value: String) throws(ValueProblem) -> String in try ValueSyntax.path(value) }.sorted { $0.value < $1.value }
        proposal.write = validated(entries(writes, need: .write), notes: &notes) { (value: String) throws(ValueProblem) -> String in try ValueSyntax.path(value) }.sorted { $0.value < $1.value }

        if shadowHomeCount > 0 {
            notes.append("not proposed: \(shadowHomeCount) file(s) created, deleted or renamed in ~ (they land in the agent's shadow home) -- \(describe(shadowHome))")
        }
        for (path, evidence) in tooWide.sorted(by: { $0.key < $1.key }) {
            notes.append("not proposed: writes in \(display(path)) (never bound writable whole) -- \(describe(evidence))")
        }
        for (path, evidence) in runLater.sorted(by: { $0.key < $1.key }) {
            notes.append("RISK: write to \(display(path)), which runs code later (shell start-up, hooks, PATH) -- \(describe(evidence))")
        }
        for finding in observations.findings.sorted(by: { $0.subject.lexicographicallyPrecedes($1.subject) })
            where finding.kind == "secret-access" {
            notes.append("RISK: attempt on a hidden path \(text(finding.subject)) (e.g. \(text(finding.example))): \(finding.detail) -- \(describe(finding.evidence))")
        }
        if hiddenSkipped > 0 { notes.append("not proposed: \(hiddenSkipped) access(es) to hidden paths (secrets stay hidden)") }
        if probeCount > 0 {
            notes.append("not proposed: \(probeCount) failed access(es) (ENOENT lookups such as PATH searches, EACCES, ...) -- \(describe(probes))")
        }
        if unusable > 0 { notes.append("not proposed: \(unusable) path(s) that are relative, not valid UTF-8 or contain '.'/'..'") }
        proposal.filesystemNotes = notes
    }

    /// Replaces the entries of a directory by the directory when at least `collapseThreshold` distinct
    /// entries directly under it were used, bottom-up, and drops entries below another entry.
    private func collapse(_ input: [String: PathUse]) -> [String: PathUse] {
        var uses = input
        // Entries beneath another entry are covered by it.
        func dropCovered() {
            let keys = uses.keys.sorted()
            for path in keys where keys.contains(where: { $0 != path && covers($0, path) }) {
                let parent = keys.first { $0 != path && covers($0, path) }!
                var use = uses[parent]!
                use.evidence = use.evidence.merged(with: uses[path]!.evidence)
                use.operations.formUnion(uses[path]!.operations)
                uses[parent] = use
                uses[path] = nil
            }
        }
        dropCovered()
        var changed = true
        while changed {
            changed = false
            var byParent: [String: [String]] = [:]
            for path in uses.keys { byParent[parentDirectory(path), default: []].append(path) }
            for (parent, children) in byParent.sorted(by: { $0.key.count > $1.key.count })
                where children.count >= options.collapseThreshold && mayCollapse(into: parent) {
                var merged = uses[parent] ?? PathUse()
                merged.listingOnly = false
                for child in children {
                    let use = uses[child]!
                    merged.evidence = merged.evidence.merged(with: use.evidence)
                    merged.operations.formUnion(use.operations)
                    merged.collapsed += use.collapsed.isEmpty ? [child] : use.collapsed
                    uses[child] = nil
                }
                uses[parent] = merged
                changed = true
                break
            }
            if changed { dropCovered() }
        }
        return uses
    }

    /// A directory the proposal may bind whole: never `/`, a top-level directory, the home or above it, the
    /// workspace or above it, nor a directory holding a hidden path.
    private func mayCollapse(into directory: String) -> Bool {
        let depth = directory.split(separator: "/").count
        if depth < 2 { return false }
        if covers(directory, options.home) { return false }
        if let workspace = options.workspace, covers(directory, workspace) { return false }
        for hidden in options.hidden {
            if hidden.hasPrefix("~/") {
                if covers(directory, options.home + "/" + hidden.dropFirst(2)) { return false }
            } else if covers(directory, hidden) {
                return false
            }
        }
        return true
    }

    private func isGiven(_ path: String, need: Need) -> Bool {
        if let workspace = options.workspace, covers(workspace, path) { return true }
        if options.givenWrite.contains(where: { covers($0, path) }) { return true }
        return need == .read && options.givenRead.contains { covers($0, path) }
    }

    private func isHidden(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        for hidden in options.hidden {
            if hidden.hasPrefix("~/") {
                // Like the recorder: the component sequence anywhere (the agent's home may be a shadow home).
                let pattern = hidden.dropFirst(2).split(separator: "/")
                guard !pattern.isEmpty, components.count >= pattern.count else { continue }
                for start in 0...(components.count - pattern.count)
                    where Array(components[start..<(start + pattern.count)]) == pattern { return true }
            } else if covers(hidden, path) {
                return true
            }
        }
        return false
    }

    /// Places whose content runs later: shell start-up files, git hooks and config, direnv, editor and
    /// build-tool task files, autostart entries, the user's PATH directories.
    func isRunLater(_ path: String) -> Bool {
        let components = path.split(separator: "/").map(String.init)
        guard let name = components.last else { return false }
        // git runs a hook only by its exact name: the `*.sample` files every clone writes never run.
        if name.hasSuffix(".sample") && components.dropLast().last == "hooks" { return false }
        let startup: Set<String> = [".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
                                    ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".cshrc", ".tcshrc", ".kshrc",
                                    ".xprofile", ".xinitrc", ".xsessionrc", ".envrc", ".direnvrc", ".gitconfig",
                                    ".vimrc", ".exrc", ".pam_environment", ".pythonrc", "sitecustomize.py",
                                    "usercustomize.py", "config.fish"]
        if startup.contains(name) { return true }
        let sequences: [[String]] = [[".git", "hooks"], [".git", "config"], [".vscode", "tasks.json"], [".cargo", "config"],
                                     [".cargo", "config.toml"], [".config", "autostart"], [".config", "systemd", "user"],
                                     [".local", "bin"], ["etc", "profile.d"], ["var", "spool", "cron"], [".husky"]]
        for sequence in sequences where components.count >= sequence.count {
            for start in 0...(components.count - sequence.count)
                where Array(components[start..<(start + sequence.count)]) == sequence { return true }
        }
        return false
    }

    // MARK: helpers

    /// Keeps the entries the profile parser accepts (canonical form); the rest become notes.
    private func validated(_ entries: [Proposal.Entry], notes: inout [String],
                           _ check: (String) throws(ValueProblem) -> String) -> [Proposal.Entry] {
        var out: [Proposal.Entry] = []
        var seen: Set<String> = []
        for var entry in entries {
            do {
                entry.value = try check(entry.value)
                if seen.insert(entry.value).inserted { out.append(entry) }
            } catch {
                notes.append("not proposed: \(entry.value): \(error.message)")
            }
        }
        return out
    }

    /// `a` is `b` or one of its ancestors.
    func covers(_ a: String, _ b: String) -> Bool {
        a == b || a == "/" || b.hasPrefix(a + "/")
    }

    private func parentDirectory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "/" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `~/x` for paths under the invoking user's home.
    func display(_ path: String) -> String {
        if path == options.home { return "~" }
        if path.hasPrefix(options.home + "/") { return "~" + path.dropFirst(options.home.count) }
        return path
    }

    /// An absolute, valid UTF-8 path without control characters, `.` or `..`; repeated slashes dropped.
    private func absolutePath(_ bytes: [UInt8]) -> String? {
        guard bytes.first == UInt8(ascii: "/"), let text = String(validating: bytes, as: UTF8.self),
              !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
        let components = text.split(separator: "/")
        if components.contains(where: { $0 == "." || $0 == ".." }) { return nil }
        return "/" + components.joined(separator: "/")
    }

    /// A DNS name as a profile writes it: lowercase, no trailing dot, a valid host name; else nil.
    private func hostName(_ bytes: [UInt8]) -> String? {
        guard var text = String(validating: bytes, as: UTF8.self) else { return nil }
        text = text.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        guard !text.isEmpty, text.contains("."), let valid = try? ValueSyntax.domainPattern(text), valid == text else { return nil }
        return text
    }

    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    private func canonicalAddress(_ address: String) -> String {
        let lower = address.lowercased()
        if lower.hasPrefix("::ffff:"), lower.dropFirst(7).contains(".") { return String(lower.dropFirst(7)) }
        return lower
    }

    private func hostForEndpoint(_ address: String) -> String { address.contains(":") ? "[\(address)]" : address }

    private func isLoopbackOrUnspecified(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "0.0.0.0" || address == "::"
    }

    /// RFC 1918, shared address space, link-local, ULA and IPv6 link-local: the LAN, not the internet.
    func isPrivateAddress(_ address: String) -> Bool {
        if address.contains(":") {
            let first = address.split(separator: ":").first.map { $0.lowercased() } ?? ""
            guard let value = UInt16(first, radix: 16) else { return false }
            return value & 0xfe00 == 0xfc00 || value & 0xffc0 == 0xfe80
        }
        let octets = address.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { return false }
        return octets[0] == 10 || (octets[0] == 172 && octets[1] & 0xf0 == 16) || (octets[0] == 192 && octets[1] == 168)
            || (octets[0] == 100 && octets[1] & 0xc0 == 64) || (octets[0] == 169 && octets[1] == 254)
    }

    /// "3 connections, 2026-12-07 10:00:01 .. 2026-12-07 10:00:05 UTC, by curl, git".
    func describe(_ evidence: Evidence, unit: String = "time") -> String {
        guard evidence.count > 0 || evidence.firstSeen != .max else { return "no evidence" }
        let noun = unit == "time" ? (evidence.count == 1 ? "1 time" : "\(evidence.count) times")
                                  : "\(evidence.count) " + (evidence.count == 1 ? unit : unit == "query" ? "queries" : unit + "s")
        var text = noun
        if evidence.firstSeen != .max {
            let first = Self.utc(evidence.firstSeen), last = Self.utc(evidence.lastSeen)
            text += first == last ? ", \(first) UTC" : ", \(first) .. \(last) UTC"
        }
        if !evidence.programs.isEmpty {
            let shown = evidence.programs.prefix(6).joined(separator: ", ")
            text += ", by " + shown + (evidence.programs.count > 6 ? ", ..." : "")
        }
        return text
    }

    static func errnoName(_ code: Int64) -> String {
        let names: [Int64: String] = [1: "EPERM", 2: "ENOENT", 13: "EACCES", 22: "EINVAL", 97: "EAFNOSUPPORT",
                                      99: "EADDRNOTAVAIL", 101: "ENETUNREACH", 104: "ECONNRESET", 110: "ETIMEDOUT",
                                      111: "ECONNREFUSED", 113: "EHOSTUNREACH"]
        return names[code] ?? "errno \(code)"
    }

    package static func utc(_ nanoseconds: ObservedTime) -> String { UTCText.seconds(nanoseconds) }
}

extension Proposer {
    /// The same guess `profile lint` warns about (ProxyRisk): a port proxies often use. Through a proxy the
    /// agent reaches every host, so the entry needs a decision, not a quiet yes.
    static func proxyPortRisk(_ port: UInt16) -> String? {
        ProxyRisk.proxyLookingPorts.contains(port)
            ? "port \(port) is one proxies often use: if it is a proxy, the agent reaches every host through it" : nil
    }
}
