import CagentCore

/// The profiles that can be named: every `.yaml` file in the search directories, in look-up order.
package struct ProfileCatalog: Sendable {
    package struct Entry: Sendable {
        package var name: String
        package var path: String
        package var origin: ProfileSource.Origin
        /// For workspace profiles: whether this exact content was trusted.
        package var trusted: Bool
        /// Another profile of the same name comes first in look-up order.
        package var shadowed: Bool
        package var agent: String?
        package var description: String?
        /// The first error, when the file does not parse.
        package var problem: String?
    }

    package var resolver: ProfileResolver

    package init(resolver: ProfileResolver) { self.resolver = resolver }

    package func entries() -> [Entry] {
        var result: [Entry] = []
        var seen: Set<String> = []
        for (directory, origin) in resolver.searchDirectories() {
            // Listed with the reader's rights: a profile directory symlinked to a root-only one shows nothing.
            let files = (try? FileSystem.asUser(resolver.reader) { FileSystem.list(directory) }) ?? []
            for file in files where file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
                let name = String(file.dropLast(file.hasSuffix(".yaml") ? 5 : 4))
                guard case .name = ProfileReference(name), let path = resolver.realPath(directory + "/" + file),
                      !FileSystem.isDirectory(path) else { continue }
                // With the invoking user's rights, only a regular file (a FIFO would hang the listing); when it
                // cannot be read, the reason is the entry's problem and none of the content is shown.
                var text = ""
                var unreadable: String?
                switch resolver.readFile(path, limit: ProfileParser.maximumBytes) {
                case .success(let bytes): text = String(validating: bytes, as: UTF8.self) ?? ""
                case .failure(let error): unreadable = error.message(path: resolver.display(path))
                }
                let (layer, diagnostics) = unreadable == nil ? ProfileParser.parse(text: text, file: resolver.display(path))
                    : (nil, [])
                let actual = origin == .workspace ? .workspace : resolver.origin(ofRealPath: path) == .workspace ? .workspace : origin
                let hash = SHA256.hex(Array(text.utf8))
                let trusted = actual != .workspace || resolver.trustStatus(path: path, sha256: hash) == .trusted
                let firstError = unreadable
                    ?? diagnostics.first(where: { $0.severity == .error }).map { "\($0.location.line):\($0.location.column): \($0.message)" }
                result.append(Entry(name: name, path: path, origin: actual, trusted: trusted, shadowed: seen.contains(name),
                                    agent: layer?.agent?.value,
                                    description: layer?.description?.value.split(separator: "\n").first.map(String.init),
                                    problem: firstError))
                seen.insert(name)
            }
        }
        return result
    }
}
