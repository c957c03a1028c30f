import Foundation

/// Where tests keep inputs that are slow to make and safe to reuse: the Debian root file system the Docker
/// tests import (debootstrap, minutes) and aider's wheels (a download and build, minutes). Outside the
/// checkout, so that a clean clone on the same machine (CI) reuses them; `CAGENT_TEST_CACHE` moves it.
/// Each entry is rebuilt when its recipe changes (a stamp or a version in its name); deleting the
/// directory only costs time.
package enum TestCache {
    package static var directory: String {
        let configured = ProcessInfo.processInfo.environment["CAGENT_TEST_CACHE"] ?? ""
        return configured.isEmpty ? "/var/cache/cagent-tests" : configured
    }

    /// `directory/name`, created if missing.
    package static func path(_ name: String) throws -> String {
        let path = directory + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
