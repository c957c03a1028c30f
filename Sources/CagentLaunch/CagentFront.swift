import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The `cagent` executable. `cagent enforce` in its common forms runs here, in a process that loads no
/// Foundation, SQLite, libpcap or ArgumentParser before the sandbox starts (what an agent start costs is
/// docs/benchmarks.md "Sandbox start"); everything else — every other command, and `enforce` with help or
/// arguments the fast path leaves to ArgumentParser — is the full command set, `cagent-full` next to this
/// binary, exec'd with the same arguments.
package enum CagentFront {
    package static func main() -> Never {
        let arguments = CommandLine.arguments
        if arguments.count > 1 && arguments[1] == "enforce",
           let options = EnforceOptions.parseCommon(Array(arguments.dropFirst(2))) {
            runEnforce(options)
        }
        execFullCommandSet(arguments)
    }

    /// Synchronous on purpose: no concurrency runtime, and the sandbox's parent-death signal follows the
    /// thread that cloned cagent-init, which is this main thread.
    static func runEnforce(_ options: EnforceOptions) -> Never {
        signal(SIGPIPE, SIG_IGN)   // here, not before the exec below: an ignored signal stays ignored across exec
        do {
            try options.run()
            Glibc.exit(0)
        } catch {
            ErrorBoundary.exitIfOurs(error)
            FileDescriptorStream.standardError.write("cagent: \(error)\n  hint: \(ErrorBoundary.defaultHint)\n")
            Glibc.exit(ExitStatus.failure)
        }
    }

    static func execFullCommandSet(_ arguments: [String]) -> Never {
        guard let path = OwnExecutable.sibling("cagent-full") else {
            FileDescriptorStream.standardError.write("cagent: start failed: cannot read /proc/self/exe\nhint: is /proc mounted?\n")
            Glibc.exit(ExitStatus.failure)
        }
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(path, &pointers)
        let reason = String(cString: strerror(errno))
        FileDescriptorStream.standardError.write(
            "cagent: start failed: cannot run \(TerminalEscape.escape(path)): \(reason)\n"
            + "hint: the full command set, cagent-full, is installed next to cagent (`make build` builds both)\n")
        Glibc.exit(ExitStatus.failure)
    }
}
