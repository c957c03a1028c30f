import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Landlock filesystem access rights (uapi values; the ABI that introduced each is noted).
package struct LandlockAccess: OptionSet, Sendable, Hashable {
    package let rawValue: UInt64
    package init(rawValue: UInt64) { self.rawValue = rawValue }

    package static let execute = Self(rawValue: 1 << 0)
    package static let writeFile = Self(rawValue: 1 << 1)
    package static let readFile = Self(rawValue: 1 << 2)
    package static let readDir = Self(rawValue: 1 << 3)
    package static let removeDir = Self(rawValue: 1 << 4)
    package static let removeFile = Self(rawValue: 1 << 5)
    package static let makeChar = Self(rawValue: 1 << 6)
    package static let makeDir = Self(rawValue: 1 << 7)
    package static let makeReg = Self(rawValue: 1 << 8)
    package static let makeSock = Self(rawValue: 1 << 9)
    package static let makeFifo = Self(rawValue: 1 << 10)
    package static let makeBlock = Self(rawValue: 1 << 11)
    package static let makeSym = Self(rawValue: 1 << 12)
    package static let refer = Self(rawValue: 1 << 13)      // ABI 2
    package static let truncate = Self(rawValue: 1 << 14)   // ABI 3
    package static let ioctlDev = Self(rawValue: 1 << 15)   // ABI 5

    /// Read and run: system directories of the view.
    package static let readOnly: Self = [.execute, .readFile, .readDir]
    /// Everything but creating device nodes: the workspace, shadow home, /tmp, /dev/shm.
    package static let readWrite: Self = Self.all(forABI: 5).subtracting([.makeChar, .makeBlock])
    /// A terminal or other character device: read, write, and device ioctls (tcsetattr for ssh's
    /// password prompt, window size for editors).
    package static let device: Self = [.readFile, .writeFile, .ioctlDev]

    /// Every filesystem right an ABI knows.
    package static func all(forABI abi: Int) -> Self {
        guard abi >= 1 else { return [] }
        var rights = Self(rawValue: (1 << 13) - 1)
        if abi >= 2 { rights.insert(.refer) }
        if abi >= 3 { rights.insert(.truncate) }
        if abi >= 5 { rights.insert(.ioctlDev) }
        return rights
    }
}

/// Landlock scopes (ABI 6): what the sandbox may not reach outside its own domain.
package struct LandlockScope: OptionSet, Sendable, Hashable {
    package let rawValue: UInt64
    package init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Connecting to abstract unix sockets created outside the sandbox (H8).
    package static let abstractUnixSocket = Self(rawValue: 1 << 0)
    /// Signals to processes outside the sandbox (H17).
    package static let signal = Self(rawValue: 1 << 1)
}

package struct LandlockRule: Sendable, Equatable {
    package var path: String
    package var access: LandlockAccess
    package init(_ path: String, _ access: LandlockAccess) { self.path = path; self.access = access }
}

/// A Landlock ruleset describing the sandbox's view: every right handled (denied) unless a rule grants it
/// beneath a path. An extra layer under the mount view: if a mount were ever wrong, Landlock still holds.
package struct LandlockRuleset: Sendable, Equatable {
    package var abi: Int
    package var handled: LandlockAccess
    package var scoped: LandlockScope
    package var rules: [LandlockRule]

    /// Devices every sandbox has, with the rights they need.
    package static let standardDevices: [LandlockRule] = [
        LandlockRule("/dev/null", [.readFile, .writeFile]), LandlockRule("/dev/zero", [.readFile, .writeFile]),
        LandlockRule("/dev/full", [.readFile, .writeFile]), LandlockRule("/dev/random", [.readFile]),
        LandlockRule("/dev/urandom", [.readFile]), LandlockRule("/dev/tty", .device),
        LandlockRule("/dev/ptmx", .device), LandlockRule("/dev/pts", .device.union(.readDir)),
    ]

    /// The ruleset for a view, for the newest ABI (7); `adapted(toABI:)` narrows it to the kernel's.
    package static func forView(readOnly: [String], readWrite: [String],
                               devices: [LandlockRule] = standardDevices) -> LandlockRuleset {
        LandlockRuleset(abi: 7, handled: .all(forABI: 7), scoped: [.abstractUnixSocket, .signal],
                        rules: readOnly.map { LandlockRule($0, .readOnly) }
                            + readWrite.map { LandlockRule($0, .readWrite) } + devices)
    }

    /// The same ruleset for an older kernel: rights and scopes it does not know are dropped, with a notice
    /// for each (never silently). nil when the kernel has no Landlock at all.
    package func adapted(toABI kernelABI: Int) -> (ruleset: LandlockRuleset?, notices: [String]) {
        guard kernelABI >= 1 else {
            return (nil, ["Landlock unavailable: the filesystem view is enforced by mounts alone"])
        }
        var notices: [String] = []
        let known = LandlockAccess.all(forABI: kernelABI)
        let lost = handled.subtracting(known)
        if lost.contains(.refer) { notices.append("Landlock ABI \(kernelABI): no REFER (renames across directories are not restricted; ABI 1 then forbids them all)") }
        if lost.contains(.truncate) { notices.append("Landlock ABI \(kernelABI): truncate is not restricted (needs ABI 3)") }
        if lost.contains(.ioctlDev) { notices.append("Landlock ABI \(kernelABI): device ioctls are not restricted (needs ABI 5)") }
        var scopes = scoped
        if kernelABI < 6, !scoped.isEmpty {
            notices.append("Landlock ABI \(kernelABI): no signal or abstract-unix-socket scoping (needs ABI 6); the pid and network namespaces remain")
            scopes = []
        }
        let rules = rules.map { LandlockRule($0.path, $0.access.intersection(known)) }
        return (LandlockRuleset(abi: min(abi, kernelABI), handled: handled.intersection(known),
                                scoped: scopes, rules: rules), notices)
    }

    /// The kernel's Landlock ABI, or nil when Landlock is disabled or not built.
    package static func kernelABI() -> Int? {
        let abi = cg_landlock_abi_version()
        return abi >= 1 ? Int(abi) : nil
    }
}
