import CagentCore

/// The profiles that can be named: every `.yaml` file in the search directories, in look-up order.
public struct ProfileCatalog: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var path: String
        public var origin: ProfileSource.Origin
        /// For workspace profiles: whether this exact content was trusted.
        public var trusted: Bool
        /// Another profile of the same name comes first in look-up order.
        public var shadowed: Bool
        public var agent: String?
        public var description: String?
        /// The first error, when the file does not parse.
        public var problem: String?
    }

    public var resolver: ProfileResolver

    public init(resolver: ProfileResolver) { self.resolver = resolver }

    public func entries() -> [Entry] {
        var result: [Entry] = []
        var seen: Set<String> = []
        for (directory, origin) in resolver.searchDirectories() {
            for file in FileSystem.list(directory) where file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
                let name = String(file.dropLast(file.hasSuffix(".yaml") ? 5 : 4))
                guard case .name = ProfileReference(name), let path = ProfileDirectories.realPath(directory + "/" + file),
                      !FileSystem.isDirectory(path) else { continue }
                let text = FileSystem.read(path, limit: ProfileParser.maximumBytes).flatMap { String(validating: $0, as: UTF8.self) } ?? ""
                let (layer, diagnostics) = ProfileParser.parse(text: text, file: resolver.display(path))
                let actual = origin == .workspace ? .workspace : resolver.origin(ofRealPath: path) == .workspace ? .workspace : origin
                let hash = SHA256.hex(Array(text.utf8))
                let trusted = actual != .workspace || resolver.trustStore.status(path: path, sha256: hash) == .trusted
                let firstError = diagnostics.first(where: { $0.severity == .error }).map { "\($0.location.line):\($0.location.column): \($0.message)" }
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
