/// A profile with its `extends` resolved: the `Profile` every mode reads, and for each entry the file and
/// line it came from (what `show --resolved` prints and `diff` cites).
package struct ResolvedProfile: Sendable, Equatable {
    /// The merged profile. `extends` keeps what the named profile itself lists.
    package var profile: Profile
    /// Every file that contributed, in merge order; the named profile is last.
    package var layers: [ProfileSource]
    /// The merged lists with each entry's origin, in order.
    package var lists: [ListKey: [ListEntry]]
    package var agent: Located<String>?
    package var description: Located<String>?
    package var limits: [LimitKey: Located<UInt64>]
    /// Problems that do not stop the profile from being used (a removal that removes nothing, a duplicate).
    package var warnings: [ProfileDiagnostic]

    /// The named profile (the last layer).
    package var source: ProfileSource { layers[layers.count - 1] }

    /// Where `value` (canonical form) of `key` was written.
    package func origin(of key: ListKey, _ value: String) -> SourceLocation? {
        lists[key]?.first(where: { $0.value == value })?.location
    }

    package func origin(of key: LimitKey) -> SourceLocation? { limits[key]?.location }
}

/// Folds layers (base first) into one profile: lists merge in order without duplicates, an entry written
/// `"!value"` removes `value` inherited from an earlier layer, single values (agent, description, limits)
/// are overridden by later layers.
enum ProfileMerger {
    static func merge(_ layers: [(source: ProfileSource, layer: ProfileLayer)]) -> ResolvedProfile {
        var lists: [ListKey: [ListEntry]] = [:]
        var agent: Located<String>?
        var description: Located<String>?
        var limits: [LimitKey: Located<UInt64>] = [:]
        var warnings: [ProfileDiagnostic] = []

        for (_, layer) in layers {
            for key in ListKey.allCases {
                var merged = lists[key] ?? []
                for entry in layer.lists[key] ?? [] {
                    let existing = merged.firstIndex(where: { $0.value == entry.value })
                    if entry.removes {
                        if let existing {
                            merged.remove(at: existing)
                        } else {
                            warnings.append(removalWarning(key, entry))
                        }
                    } else if existing == nil {
                        merged.append(entry)
                    }
                }
                lists[key] = merged
            }
            if let value = layer.agent { agent = value }
            if let value = layer.description { description = value }
            for (key, value) in layer.limits { limits[key] = value }
        }

        // Entries that would void the network allowlist (ProxyRisk): warned, enforce decides.
        warnings += ProxyRisk.warnings(lists)

        var profile = Profile(version: 1, agent: agent?.value, description: description?.value,
                              extends: layers.last?.layer.extends.map(\.value) ?? [])
        let values = { (key: ListKey) in (lists[key] ?? []).map(\.value) }
        profile.network.domains = values(.domains)
        profile.network.endpoints = values(.endpoints).compactMap { try? ValueSyntax.endpoint($0) }
        profile.network.cidrs = values(.cidrs)
        profile.filesystem.read = values(.read)
        profile.filesystem.write = values(.write)
        profile.filesystem.hide = values(.hide)
        profile.env.pass = values(.pass)
        profile.limits.memoryBytes = limits[.memory]?.value
        profile.limits.processes = limits[.processes].map { Int($0.value) }
        profile.limits.openFiles = limits[.openFiles].map { Int($0.value) }
        profile.limits.tmpBytes = limits[.tmp]?.value
        profile.limits.shmBytes = limits[.shm]?.value
        profile.limits.diskBytes = limits[.disk]?.value

        return ResolvedProfile(profile: profile, layers: layers.map(\.source), lists: lists, agent: agent,
                               description: description, limits: limits, warnings: warnings)
    }

    private static func removalWarning(_ key: ListKey, _ entry: ListEntry) -> ProfileDiagnostic {
        let value = ProfileText.quote(entry.value)
        if key == .hide && DefaultHidden.home.contains(entry.value) {
            return ProfileDiagnostic(entry.location,
                                     "\(value) is hidden by cagent's built-in list; removing it from filesystem.hide does not expose it",
                                     hint: "to give the agent access, list it under filesystem.read or filesystem.write",
                                     severity: .warning)
        }
        return ProfileDiagnostic(entry.location,
                                 "removes \(value) from \(key.rawValue), but no profile it extends lists it",
                                 severity: .warning)
    }
}
