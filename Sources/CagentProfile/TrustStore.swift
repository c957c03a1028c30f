import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Profiles from the workspace the user has reviewed: the exact content (SHA-256) and the real path, one per
/// line, in `<config>/trusted-profiles`. A profile inside the workspace is written by whoever wrote the
/// repository, maybe the agent itself; only a pinned hash lets cagent use it when it is not named by path.
package struct TrustStore: Sendable {
    package enum Status: Sendable, Equatable {
        case trusted
        /// Trusted once, with other content (the hash that was trusted).
        case changed(trustedHash: String)
        case unknown
    }

    package var file: String

    package init(file: String) { self.file = file }
    package init(paths: CagentPaths) { self.file = paths.config + "/trusted-profiles" }

    /// Pairs of (sha256 hex, real path), in file order.
    package func entries() -> [(sha256: String, path: String)] {
        // Only a regular file (a FIFO would block); callers run this with the invoking user's rights.
        guard case .success(let bytes) = FileSystem.readAsUser(file, limit: 4 << 20, identity: nil, followSymlinks: false)
        else { return [] }
        let text = String(decoding: bytes, as: UTF8.self)
        var result: [(String, String)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix("sha256:"), let space = line.firstIndex(of: " ") else { continue }
            let hash = String(line[line.index(line.startIndex, offsetBy: 7)..<space])
            let path = String(line[line.index(after: space)...])
            if hash.count == 64 && !path.isEmpty { result.append((hash, path)) }
        }
        return result
    }

    package func status(path: String, sha256: String) -> Status {
        let matching = entries().filter { $0.path == path }
        if matching.contains(where: { $0.sha256 == sha256 }) { return .trusted }
        if let last = matching.last { return .changed(trustedHash: last.sha256) }
        return .unknown
    }

    /// Pins `sha256` for `path`, replacing what was pinned for that path. The file is replaced atomically and,
    /// when cagent runs under sudo, given to the invoking user (`owner`).
    package func trust(path: String, sha256: String, owner: (uid: UInt32, gid: UInt32)? = nil) throws {
        guard !path.contains("\n"), sha256.count == 64 else {
            throw CagentError(stage: "profile trust", "cannot record the path \(ProfileText.quote(path))")
        }
        let directory = ProfileDirectories.parent(file)
        try makeDirectories(directory, owner: owner)
        var lines = ["# Profiles trusted with `cagent profile trust`: sha256 of the exact content, then the real path."]
        for entry in entries() where entry.path != path { lines.append("sha256:\(entry.sha256) \(entry.path)") }
        lines.append("sha256:\(sha256) \(path)")
        let text = lines.joined(separator: "\n") + "\n"
        let temporary = file + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw CagentError.system("profile trust", "cannot create \(temporary)") }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = CagentError.system("profile trust", "cannot write \(temporary)")
                close(fd); unlink(temporary)
                throw error
            }
            bytes = bytes.dropFirst(written)
        }
        fsync(fd)
        if let owner { _ = fchown(fd, owner.uid, owner.gid) }
        close(fd)
        guard rename(temporary, file) == 0 else {
            let error = CagentError.system("profile trust", "cannot replace \(file)")
            unlink(temporary)
            throw error
        }
    }

    private func makeDirectories(_ path: String, owner: (uid: UInt32, gid: UInt32)?) throws {
        if FileSystem.isDirectory(path) { return }
        let parent = ProfileDirectories.parent(path)
        if parent != path { try makeDirectories(parent, owner: owner) }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw CagentError.system("profile trust", "cannot create \(path)")
        }
        if let owner { _ = chown(path, owner.uid, owner.gid) }
    }
}
