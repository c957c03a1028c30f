import ArgumentParser
import CagentCore

// Commands planned in docs/architecture.md whose implementation lands with later work. Each lives in its
// own file once built; until then it parses its arguments and says it is not built.

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a profile as a CiliumNetworkPolicy or Kubernetes NetworkPolicy. (not built yet)")
    func run() async throws { throw notBuiltYet("export") }
}
