/// The launch path's own reading of `cagent enforce` arguments, for the forms an agent start uses:
/// `--name VALUE`, `--name=VALUE`, `--flag`, then `--` and the agent command. ArgumentParser builds its
/// parser by reflection on every start (about 2 ms here, a third of bubblewrap's whole run:
/// docs/benchmarks.md "Sandbox start"); this reads the same options in microseconds. Anything else — help,
/// `--version`, an unknown or repeated option, a missing or dash-led value, a bad number — returns nil and
/// ArgumentParser parses instead, so every message and every corner of its grammar stays its own.
/// Tests hold the two to the same answers (EnforceArgumentsTests).
import CagentCore

extension EnforceOptions {
    /// The long names this parser knows, each an option (takes a value) or a flag; EnforceArgumentsTests
    /// checks the list against EnforceCommand's own definitions.
    static let knownOptions: Set<String> = ["profile", "workspace", "user", "upstream-dns", "fail-at-stage", "dump-plan", "state-dir", "env", "db", "ask-timeout", "proxy", "ssh-key", "publish"]
    static let knownFlags: Set<String> = ["verbose", "debug", "revert-risky", "offline", "json", "allow-proxy", "ask", "in-container", "rootless"]

    /// `arguments` are those after `enforce`. Nil: let ArgumentParser decide.
    package static func parseCommon(_ arguments: [String]) -> EnforceOptions? {
        var values: [String: String] = [:]
        var upstream: [String] = []
        var passed: [String] = []
        var flags: Set<String> = []
        var index = 0
        var command: [String]?
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                command = Array(arguments[(index + 1)...])
                break
            }
            guard argument.hasPrefix("--"), argument.count > 2 else { return nil }
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if knownFlags.contains(name) {
                guard value == nil, flags.insert(name).inserted else { return nil }
            } else if knownOptions.contains(name) {
                if value == nil {
                    index += 1
                    guard index < arguments.count, !arguments[index].hasPrefix("-") else { return nil }
                    value = arguments[index]
                }
                guard let value, !value.isEmpty else { return nil }
                if name == "upstream-dns" {
                    upstream.append(value)
                } else if name == "env" {
                    passed.append(value)
                } else {
                    guard values.updateValue(value, forKey: name) == nil else { return nil }
                }
            } else {
                return nil
            }
            index += 1
        }
        guard let command, let profile = values["profile"] else { return nil }
        var user: UInt32?
        if let text = values["user"] {
            guard let number = UInt32(text) else { return nil }
            user = number
        }
        var publish: UInt16?
        if let text = values["publish"] {
            guard let number = UInt16(text), number > 0 else { return nil }
            publish = number
        }
        var askTimeout = 30.0
        if let text = values["ask-timeout"] {
            guard let number = Double(text), number.isFinite, number > 0 else { return nil }
            askTimeout = number
        }
        var options = EnforceOptions(verbose: flags.contains("verbose"), debug: flags.contains("debug"), profile: profile,
                              workspace: values["workspace"], user: user, revertRisky: flags.contains("revert-risky"),
                              offline: flags.contains("offline"), json: flags.contains("json"), upstreamDns: upstream,
                              passEnvironment: passed, allowProxy: flags.contains("allow-proxy"), proxy: values["proxy"],
                              failAtStage: values["fail-at-stage"].map { SetupStage($0) }, dumpPlan: values["dump-plan"],
                              stateDir: values["state-dir"], db: values["db"],
                              ask: flags.contains("ask"), askTimeout: askTimeout, sshKey: values["ssh-key"], publish: publish,
                              inContainer: flags.contains("in-container"), command: command)
        options.rootless = flags.contains("rootless")
        return options
    }
}
