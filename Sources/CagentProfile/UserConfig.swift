/// The user's own cagent settings, `~/.config/cagent/config.yaml` — never a profile's: a profile is shared
/// and names which variables an agent may receive (`env.pass`); this file says where *this user's* values
/// come from. For now one key:
///
/// ```yaml
/// credentials:
///   OPENAI_API_KEY: {file: ~/.config/cagent/keys/openai}
///   ANTHROPIC_API_KEY:
///     file: /run/user/1000/anthropic.key
/// ```
///
/// Parsing only: reading the files (with the user's rights) is `Credentials` (CagentSandbox).
package struct UserConfig: Sendable, Equatable {
    package struct Credential: Sendable, Equatable {
        package var name: String
        /// As written: absolute, or `~/...` (the user's home).
        package var file: String

        package init(name: String, file: String) { self.name = name; self.file = file }
    }

    package var credentials: [Credential] = []

    package init(credentials: [Credential] = []) { self.credentials = credentials }

    /// Errors name the file's line and column, never a value.
    package static func parse(_ text: String, file: String) throws -> UserConfig {
        let root: YAMLNode?
        do { root = try YAMLDocument.compose(text) } catch {
            throw ConfigError(file: file, message: "not valid YAML: \(error)")
        }
        guard let root else { return UserConfig() }
        guard case .mapping(let top) = root else { throw ConfigError(file: file, message: "\(root.mark): expected keys (credentials:)") }
        var config = UserConfig()
        for (key, value) in top.pairs {
            guard let name = key.scalar?.string else { throw ConfigError(file: file, message: "\(key.mark): a key must be text") }
            guard name == "credentials" else {
                throw ConfigError(file: file, message: "\(key.mark): unknown key '\(name)' (known: credentials)")
            }
            if case .scalar(let empty) = value, empty.string.isEmpty { continue }
            guard case .mapping(let entries) = value else {
                throw ConfigError(file: file, message: "\(value.mark): credentials: expected NAME: {file: PATH} entries")
            }
            for (nameNode, spec) in entries.pairs {
                guard let variable = nameNode.scalar?.string, (try? ValueSyntax.environmentName(variable)) == variable else {
                    throw ConfigError(file: file, message: "\(nameNode.mark): credentials: a variable name (letters, digits, _) is expected")
                }
                guard case .mapping(let fields) = spec, fields.pairs.count == 1, fields.pairs[0].key.scalar?.string == "file",
                      let path = fields.pairs[0].value.scalar?.string, path.hasPrefix("/") || path.hasPrefix("~/") else {
                    throw ConfigError(file: file, message: "\(spec.mark): credentials.\(variable): expected {file: PATH} with an absolute or ~/ path")
                }
                guard !config.credentials.contains(where: { $0.name == variable }) else {
                    throw ConfigError(file: file, message: "\(nameNode.mark): credentials.\(variable) appears twice")
                }
                config.credentials.append(Credential(name: variable, file: path))
            }
        }
        return config
    }

    package struct ConfigError: Error, Sendable, CustomStringConvertible {
        package var file: String
        package var message: String
        package var description: String { "\(file): \(message)" }
    }
}
