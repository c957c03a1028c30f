import ArgumentParser
import CagentCore
import CagentLaunch
#if canImport(Glibc)
import Glibc
#endif

/// The `cagent` command tree. Commands are grouped by what they act on; the top-level `main` is the one
/// error boundary that turns failures into "stage failed: reason / hint" lines.
package struct CagentCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "cagent",
        abstract: "A Linux sandbox for AI coding agents that learns what the agent needs, then enforces exactly that.",
        discussion: """
        Typical use:
          cagent learn -- claude        # observe: egress logged, secrets hidden
          cagent profile propose        # a minimal profile from what was seen
          cagent enforce --profile claude-code -- claude
        """,
        version: CagentVersion.string,
        subcommands: [
            LearnCommand.self, EnforceCommand.self, ProfileCommand.self,
            SessionsCommand.self, ReportCommand.self, ImportCommand.self, ExportCommand.self,
            DoctorCommand.self, PolicyCommand.self, NetworkSessionCommand.self, SyntheticCommand.self, TraceCommand.self,
            RecordEnforceCommand.self, DockerCommand.self,
        ]
    )

    package init() {}

    /// Parses, runs, and reports errors in one place.
    package static func entry() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            CommandBoundary.exit(after: error, root: CagentCommand.self)
        }
    }
}
