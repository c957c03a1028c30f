import CagentCore
import CagentNetwork
import CagentSandbox
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// Kernel objects cagent creates, found on the machine, with whether a live session still holds them.
///
/// Naming (docs/architecture.md): session network namespaces `/run/netns/cagent-<id>`, host-side veths `cgs<id>`,
/// the nftables table `inet cagent`, cgroups `cagent-<id>`, mounts under a path containing `cagent`. A live
/// session lists what it holds in its lease (`kind name` lines); anything else is a leftover.
struct Leftover: Equatable {
    enum Kind: String { case netns, link, nftChain = "nft-chain", nftTable = "nft-table", cgroup, mount }
    var kind: Kind
    var name: String
    var description: String { "\(kind.rawValue) \(name)" }
}

enum Leftovers {
    static let netnsDirectory = "/run/netns"

    /// What is on the machine now, minus what live sessions hold. `leasedOnly` (`doctor --leased-only`) keeps
    /// only what a dead session's lease under `paths` names (and the table when every session in it is such
    /// a one): objects found by their names alone may belong to sessions of another runtime directory.
    /// `keptTable`: the `inet cagent` table is there with no session's chains in it — kept between sessions on
    /// purpose (NetworkSession.removeFirewall), not a leftover; `doctor --clean` removes it when no session is
    /// live (`keptTableToClean`).
    static func scan(paths: CagentPaths, leasedOnly: Bool = false) -> (leftovers: [Leftover], liveSessions: Int, keptTable: Bool) {
        let leases = SessionLease.all(paths: paths)
        let live = leases.filter(\.live)
        let held = Set(live.flatMap { $0.contents.split(separator: "\n").map(String.init) })
        // What dead sessions' leases name is a leftover at once, whatever its age.
        let deadNamed = Set(leases.filter { !$0.live }.flatMap { $0.contents.split(separator: "\n").map(String.init) })
        var found: [Leftover] = []
        for name in FileSystem.list(netnsDirectory) where name.hasPrefix("cagent-") {
            found.append(Leftover(kind: .netns, name: name))
        }
        // Interfaces of the calling process's network namespace (/sys/class/net shows the one sysfs was mounted in).
        for name in NetworkLeftovers.linkNames() where name.hasPrefix("cgs") {
            found.append(Leftover(kind: .link, name: name))
        }
        // The table is shared by all sessions and kept between them: with no session's chains it is not a
        // leftover. With dead sessions' chains and no session alive, the whole table is one (removed at once);
        // while some are alive, the chains of dead sessions are (CagentNetwork.Firewall removes one session's
        // part atomically).
        let tableChains = ((try? NetfilterInventory.chains()) ?? []).filter { $0.table == Firewall.table && $0.familyName == "inet" }
        let keptTable = !tableChains.isEmpty && Firewall.sessionInterfaces(in: tableChains).isEmpty
        if live.isEmpty, !tableChains.isEmpty, !keptTable {
            found.append(Leftover(kind: .nftTable, name: "inet cagent"))
        } else if !live.isEmpty {
            for interface in NetworkLeftovers.deadSessionChains(paths: paths) {
                found.append(Leftover(kind: .nftChain, name: interface))
            }
        }
        // Session cgroups sit under cagent's own cgroup, so they are searched a few levels deep. Only empty
        // ones are leftovers: a sandbox dies with its cagent, so a dead session's cgroup has no processes, and
        // one with processes may belong to a live session whose lease lives in another runtime directory.
        // /sys/fs/cgroup itself is searched one level (pure cgroup2); the hierarchies below it deeper.
        var seenCgroups = Set<String>()
        // Named by a dead session's lease (SessionCgroupLeases): a leftover now, processes and all.
        for lease in leases where !lease.live {
            for path in SessionCgroupLeases.directories(in: lease.contents)
            where FileSystem.exists(path) && seenCgroups.insert(path).inserted {
                found.append(Leftover(kind: .cgroup, name: path))
            }
        }
        // Trace cgroups of dead cagents (their names carry the pid of the cagent that made them): leftovers now.
        var deadTrace = Set<String>()
        if let root = TraceCgroup.cgroup2Mount() {
            for name in FileSystem.list(root) where TraceCgroup.isOrphan(name: name) && seenCgroups.insert(root + "/" + name).inserted {
                found.append(Leftover(kind: .cgroup, name: root + "/" + name))
                deadTrace.insert("cgroup " + root + "/" + name)
            }
        }
        for (root, depth) in [("/sys/fs/cgroup", 1), ("/sys/fs/cgroup/unified", 5)] + v1Hierarchies().map({ ($0, 5) }) {
            for path in sessionCgroups(under: root, depth: depth) where seenCgroups.insert(path).inserted {
                // Found by name only (no lease here names it). A starting session's cgroup is empty for the
                // moment between its creation and the init's placement: only cgroups older than a minute count.
                let procs = FileSystem.readText(path + "/cgroup.procs") ?? ""
                var info = stat()
                let old = stat(path, &info) == 0 && time(nil) - info.st_ctim.tv_sec > 60
                if procs.isEmpty && old { found.append(Leftover(kind: .cgroup, name: path)) }
            }
        }
        for point in mountPoints() where point.contains("cagent") && !point.hasPrefix(paths.runtime + "/netlab") {
            found.append(Leftover(kind: .mount, name: point))
        }
        var leftovers = found.filter { !held.contains($0.description) }
        if leasedOnly {
            // The table goes only when every session chain in it is a dead lease's (nothing of another's is in it).
            let chains = (try? NetfilterInventory.chains()).map { Firewall.sessionInterfaces(in: $0) } ?? []
            let tableIsDeadOnes = chains.allSatisfy { deadNamed.contains("nft-chain \($0)") }
            leftovers = leftovers.filter { deadNamed.contains($0.description) || deadTrace.contains($0.description)
                || ($0.kind == .nftTable && tableIsDeadOnes) }
            // With live sessions elsewhere the scan lists chains only when this directory has a live one.
            for interface in chains where deadNamed.contains("nft-chain \(interface)") && !tableIsDeadOnes
            && !leftovers.contains(Leftover(kind: .nftChain, name: interface)) {
                leftovers.append(Leftover(kind: .nftChain, name: interface))
            }
        }
        return (leftovers, live.count, keptTable)
    }

    /// The kept empty table, as `doctor --clean` removes it: only when no session is live (the caller holds the
    /// setup lock, so none can start meanwhile) and not with `--leased-only` (the table is no dead lease's).
    static func keptTableToClean(keptTable: Bool, liveSessions: Int, leasedOnly: Bool) -> [Leftover] {
        keptTable && liveSessions == 0 && !leasedOnly ? [Leftover(kind: .nftTable, name: "inet cagent")] : []
    }

    /// Removes leftovers; returns what was removed and what could not be. The caller holds the setup lock
    /// from the scan to here (flock is per open file: taking it again here would wait for ourselves), so no
    /// session can start between the scan and the removal.
    static func clean(_ leftovers: [Leftover], paths: CagentPaths) -> (removed: [String], failed: [String]) {
        var removed: [String] = []
        var failed: [String] = []
        // Mounts first (a netns file is a mount), then namespaces, links, cgroups, and the table last so that
        // interfaces are never left without the drop that closes them.
        let order: [Leftover.Kind] = [.mount, .netns, .link, .cgroup, .nftChain, .nftTable]
        for kind in order {
            for item in leftovers where item.kind == kind {
                do {
                    try remove(item)
                    removed.append(item.description)
                } catch {
                    failed.append("\(item.description): \(error)")
                }
            }
        }
        // Leases of dead sessions are done with once their objects are gone.
        for lease in SessionLease.all(paths: paths) where !lease.live && failed.isEmpty {
            unlink(lease.path)
        }
        return (removed, failed)
    }

    private static func remove(_ item: Leftover) throws {
        switch item.kind {
        case .mount:
            if umount2(item.name, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
                throw CagentError.system("umount \(item.name)", "cannot unmount")
            }
        case .netns:
            let path = netnsDirectory + "/" + item.name
            _ = umount2(path, Int32(MNT_DETACH))
            if unlink(path) != 0 && errno != ENOENT { throw CagentError.system("netns \(item.name)", "cannot remove") }
        case .link:
            try NetlinkControl.deleteLink(named: item.name)
        case .cgroup:
            // Emptied first (cgroup.kill on v2, SIGKILL to each process on v1), then removed.
            if !SessionCgroupLeases.removeDirectory(item.name) { throw CagentError.system("cgroup \(item.name)", "cannot remove") }
        case .nftChain:
            try NetworkLeftovers.removeSession(interface: item.name)
        case .nftTable:
            try NetlinkControl.deleteTable(named: Firewall.table)
        }
    }

    /// Directories named `cagent-*` below a cgroup root (not descending into them, nor into other mounts).
    static func sessionCgroups(under root: String, depth: Int) -> [String] {
        guard depth > 0 else { return [] }
        var found: [String] = []
        for name in FileSystem.list(root) {
            let path = root + "/" + name
            guard FileSystem.isDirectory(path), FileSystem.exists(path + "/cgroup.procs") else { continue }
            if name.hasPrefix("cagent-") { found.append(path) } else if path != "/sys/fs/cgroup/unified" {
                found += sessionCgroups(under: path, depth: depth - 1)
            }
        }
        return found
    }

    private static func v1Hierarchies() -> [String] {
        FileSystem.list("/sys/fs/cgroup").map { "/sys/fs/cgroup/" + $0 }
            .filter { !$0.hasSuffix("/unified") && FileSystem.isDirectory($0) }
    }

    private static func mountPoints() -> [String] {
        guard let text = FileSystem.readText("/proc/self/mountinfo") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? String(fields[4]) : nil
        }
    }
}
