import ArgumentParser
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The `cagent` executable. `cagent enforce` runs here, in a process that loads no Foundation, no SQLite and
/// no libpcap before the sandbox starts (what an agent start costs is docs/benchmarks.md "Sandbox start");
/// every other command is the full command set, `cagent-full` next to this binary, exec'd with the same
/// arguments.
public enum CagentFront {
    public static func main() -> Never {
        let arguments = CommandLine.arguments
        if arguments.count > 1 && arguments[1] == EnforceCommand.configuration.commandName {
            runEnforce(Array(arguments.dropFirst()))
        }
        execFullCommandSet(arguments)
    }

    /// Synchronous on purpose: no concurrency runtime, and the sandbox's parent-death signal follows the
    /// thread that cloned cagent-init, which is this main thread.
    static func runEnforce(_ arguments: [String]) -> Never {
        signal(SIGPIPE, SIG_IGN)   // here, not before the exec below: an ignored signal stays ignored across exec
        do {
            if let options = EnforceOptions.parseCommon(Array(arguments.dropFirst())) {
                try options.run()
                Glibc.exit(0)
            }
            var command = try EnforceRoot.parseAsRoot(arguments)
            try command.run()
            Glibc.exit(0)
        } catch {
            CommandBoundary.exit(after: error, root: EnforceRoot.self)
        }
    }

    static func execFullCommandSet(_ arguments: [String]) -> Never {
        guard let path = OwnExecutable.sibling("cagent-full") else {
            FileDescriptorStream.standardError.write("cagent: start failed: cannot read /proc/self/exe\nhint: is /proc mounted?\n")
            Glibc.exit(1)
        }
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(path, &pointers)
        let reason = String(cString: strerror(errno))
        FileDescriptorStream.standardError.write(
            "cagent: start failed: cannot run \(TerminalEscape.escape(path)): \(reason)\n"
            + "hint: the full command set, cagent-full, is installed next to cagent (`make build` builds both)\n")
        Glibc.exit(1)
    }
}

/// The command tree the lean path parses: `cagent enforce` alone, so usage and help read "cagent enforce".
struct EnforceRoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cagent", version: CagentVersion.string, subcommands: [EnforceCommand.self])
}
