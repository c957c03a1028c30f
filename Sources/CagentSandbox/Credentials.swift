import CagentCore
import CagentProfile
#if canImport(Glibc)
import Glibc
#endif

/// Keys from files the user's cagent config names (`credentials:` in `~/.config/cagent/config.yaml`,
/// UserConfig): under sudo the user's environment is mostly gone, and a key in a file of one's own is
/// better than one exported in every shell. Each value joins cagent's view of the host environment only
/// where that has no value of its own, so the one policy decides as for any variable (AgentEnvironment:
/// passed when the profile's `env.pass` or `--env` names it, else named in the "not passed" line).
/// Every file is opened with the user's rights; a file in the workspace is refused (the agent could have
/// put a link there); values are never printed, logged or stored — they reach only the agent's environment
/// in the plan (docs/cli.md "Credentials").
package enum Credentials {
    package static let configName = "config.yaml"

    package struct Loaded: Sendable {
        /// The host environment with the credentials added.
        package var environment: [String: String]
        /// The names whose value came from a file, sorted.
        package var fromFiles: [String]
        /// The config file, for messages.
        package var configFile: String
    }

    /// Names a credential may not set: cagent's own and the proxy variables (a proxy voids the allowlist).
    static func refusedName(_ name: String) -> Bool {
        AgentEnvironment.alwaysPassed.contains(name) || name == "HOME" || name.hasPrefix("LC_") || ProxyRisk.isProxyVariable(name)
    }

    package static func load(into host: [String: String], configDirectory: String, user: InvokingUser,
                            workspace: String) throws -> Loaded {
        let configFile = configDirectory + "/" + configName
        let identity = FileIdentity(invokingUnderRoot: user)
        let shownConfig = TerminalEscape.escape(AgentBootstrap.display(configFile, home: user.home))
        let text: String
        switch FileSystem.readAsUser(configFile, limit: 64 << 10, identity: identity) {
        case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
        case .failure(let error):
            if case .open(let code) = error.reason, code == ENOENT || code == ENOTDIR {
                return Loaded(environment: host, fromFiles: [], configFile: configFile)
            }
            throw CagentError(stage: "config", error.message(path: configFile), hint: "fix or remove \(shownConfig)")
        }
        let config: UserConfig
        do { config = try UserConfig.parse(text, file: shownConfig) } catch {
            throw CagentError(stage: "config", "\(error)", hint: "docs/cli.md, \"Credentials\", shows the format")
        }
        var environment = host
        var names: [String] = []
        for credential in config.credentials {
            let name = TerminalEscape.escape(credential.name)
            guard !refusedName(credential.name) else {
                throw CagentError(stage: "config", "\(shownConfig): credentials.\(name) is not a credential cagent passes from a file",
                                  hint: "TERM, LANG, LC_*, TZ, PATH, HOME and proxy variables cannot come from credentials")
            }
            if let existing = host[credential.name], !existing.isEmpty { continue }   // the environment's own value wins
            let path = credential.file.hasPrefix("~/") ? user.home + credential.file.dropFirst(1) : credential.file
            let shown = TerminalEscape.escape(credential.file)
            let resolved = (try? FileSystem.asUser(identity) { FileSystem.realPath(path) }) ?? nil
            for candidate in [path, resolved].compactMap({ $0 }) where candidate == workspace || candidate.hasPrefix(workspace + "/") {
                throw CagentError(stage: "credentials", "\(name)'s file \(shown) is in the workspace: the agent can read and replace it there",
                                  hint: "keep key files outside the workspace (e.g. ~/.config/cagent/keys/), readable by you only")
            }
            let bytes: [UInt8]
            switch FileSystem.readAsUser(path, limit: 64 << 10, identity: identity) {
            case .success(let read): bytes = read
            case .failure(let error):
                throw CagentError(stage: "credentials", "\(name): " + error.message(path: credential.file),
                                  hint: "\(shownConfig) names it; the file must be one you can read")
            }
            var value = bytes
            if value.last == 10 { value.removeLast() }
            if value.last == 13 { value.removeLast() }
            guard !value.isEmpty, !value.contains(0) else {
                throw CagentError(stage: "credentials", "\(name): \(shown) is empty or holds a NUL byte", hint: "put the key alone in the file")
            }
            environment[credential.name] = String(decoding: value, as: UTF8.self)
            names.append(credential.name)
        }
        return Loaded(environment: environment, fromFiles: names.sorted(), configFile: configFile)
    }

    /// The start line naming the variables that came from files and pass (never their values), or nil.
    package static func startLine(_ loaded: Loaded, passed: [String], home: String) -> String? {
        let shown = loaded.fromFiles.filter { passed.contains($0) }
        guard !shown.isEmpty else { return nil }
        return "cagent: from \(TerminalEscape.escape(AgentBootstrap.display(loaded.configFile, home: home))): "
            + shown.map(TerminalEscape.escape).joined(separator: ", ")
    }

}
