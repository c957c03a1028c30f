import CagentCore

#if canImport(Glibc)
import Glibc
#endif

/// What a test needs from the machine. Outside CI a test that cannot run may skip (and says why); under
/// CI=true it fails instead, so a machine that cannot run it is never mistaken for a pass.
package enum Requirements {
    package struct Unmet: Error, CustomStringConvertible {
        package var description: String
    }

    /// True when running under CI (CI=true).
    package static var isCI: Bool { ProcessEnvironment.current["CI"] == "true" }

    /// For `@Test(.enabled(if: Requirements.mayRun(root: true), "needs root"))`: under CI always true, so the
    /// test runs and fails loudly on a machine that lacks what it needs; elsewhere true only when it is there.
    package static func mayRun(root: Bool = false, tools: [String] = []) -> Bool {
        if isCI { return true }
        if root && geteuid() != 0 { return false }
        return tools.allSatisfy { FileSystem.which($0, path: ProcessEnvironment.current["PATH"]) != nil }
    }

    /// Throws when the process is not root. A test calls it first, so that under CI a machine that
    /// cannot run it fails the test with the reason.
    package static func root() throws {
        if geteuid() != 0 { throw Unmet(description: "needs root (uid 0), running as uid \(geteuid())") }
    }

    /// Throws when an executable is not on PATH.
    package static func tool(_ name: String) throws {
        if FileSystem.which(name, path: ProcessEnvironment.current["PATH"]) == nil {
            throw Unmet(description: "needs \(name) on PATH (make deps installs it)")
        }
    }
}
