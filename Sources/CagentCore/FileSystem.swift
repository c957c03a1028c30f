#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers on plain system calls (no Foundation on the launch path).
package enum FileSystem {
    package static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads a whole (small) file, or nil. Does not follow a symlink at the last component.
    package static func read(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // An uninitialized stack buffer: zeroing a heap one cost more than the read for the small files
        // (/etc, /proc) read on every agent start.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { buffer -> [UInt8]? in
            var out: [UInt8] = []
            while out.count < limit {
                let count = Glibc.read(fd, buffer.baseAddress, min(buffer.count, limit - out.count))
                if count < 0 { if errno == EINTR { continue }; return nil }
                if count == 0 { break }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<count]))
            }
            return out
        }
    }

    /// The process's working directory, or `fallback` when it cannot be read (removed, too long).
    package static func currentDirectory(orElse fallback: String = ".") -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return fallback }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` with every symlink resolved (realpath(3)), or nil when it does not exist or cannot be reached.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    package static func readText(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Entries of a directory (without "." and ".."), or [] when it cannot be read.
    package static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Searches PATH for an executable.
    package static func which(_ name: String, path: String?) -> String? {
        for dir in (path ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(separator: ":") {
            let candidate = dir + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
