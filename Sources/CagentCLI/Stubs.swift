import ArgumentParser
import CagentCore

// Commands planned in docs/architecture.md whose implementation lands with later work. Each lives in its
// own file once built; until then it parses its arguments and says it is not built.

struct LearnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn", abstract: "Run an agent observed: egress logged but permitted, secrets hidden, everything recorded. (not built yet)")
    @OptionGroup var logging: LoggingOptions
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []
    func run() async throws { throw notBuiltYet("learn") }
}

struct EnforceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enforce", abstract: "Run an agent under a profile: allowlisted egress, the profile's filesystem view, no privileges. (not built yet)")
    @OptionGroup var logging: LoggingOptions
    @Option(help: "Profile file or bundled name.") var profile: String?
    @Argument(parsing: .postTerminator, help: "The agent command.") var command: [String] = []
    func run() async throws { throw notBuiltYet("enforce") }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a profile as a CiliumNetworkPolicy or Kubernetes NetworkPolicy. (not built yet)")
    func run() async throws { throw notBuiltYet("export") }
}
