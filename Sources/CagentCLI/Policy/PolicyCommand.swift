import ArgumentParser
import CagentCore
import CagentSandbox
#if canImport(Glibc)
import Glibc
#endif

/// `cagent policy`: show the process policy every sandbox gets, for review.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Show the sandbox's seccomp policy for review.",
        subcommands: [SeccompPolicyCommand.self], defaultSubcommand: SeccompPolicyCommand.self)
}

/// `cagent policy seccomp`: every x86_64 syscall with the answer the compiled filter gives it.
struct SeccompPolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp",
        abstract: "List every x86_64 syscall with the filter's answer, or write the compiled filter.",
        discussion: "The answers are read from the compiled BPF program's reference, not typed by hand. --bpf writes the raw struct sock_filter array (as bwrap --seccomp reads it).")

    @Option(help: "Write the compiled filter (struct sock_filter[]) to this file.") var bpf: String?
    /// scripts/gen-seccomp-program.sh: the policy compiled now, as the Swift source of SeccompPrecompiled.swift.
    @Flag(help: .hidden) var swiftSource = false

    func run() throws {
        if swiftSource {
            print(SeccompCompiler.precompiledSource(try SeccompCompiler.compileFromPolicy()), terminator: "")
            return
        }
        let program = try SeccompCompiler.compile()
        if let bpf {
            // A file the user names: written with the user's rights (docs/security.md, "confused deputy").
            if case .failure(let error) = FileSystem.writeAsUser(bpf, bytes: Array(program.bytes), mode: 0o644,
                                                                 identity: FileIdentity.invoking(environment: ProcessEnvironment.current)) {
                throw CagentError(stage: "policy seccomp", error.message(path: bpf))
            }
            print("wrote \(program.instructions.count) instructions to \(bpf)")
            return
        }
        var category: [String: String] = [:]
        for (cat, _, names) in SeccompPolicy.byCategory { for name in names { category[name] = cat.rawValue } }
        for entry in SyscallTable.entries {
            let rule = SeccompPolicy.rules[entry.name]
            let answer: String
            switch rule {
            case .allow?: answer = "allow"
            case .allowUnless(let check)?: answer = "allow unless \(check.rawValue) (then EPERM)"
            case .deny(let code)?: answer = SeccompAction.errno(code).description
            case nil: answer = SeccompPolicy.unknownAction.description
            }
            print("\(entry.number)\t\(entry.name)\t\(answer)\t\(category[entry.name] ?? "not named")")
        }
        print("other numbers\t\(SeccompPolicy.unknownAction)\nx32 (nr >= 0x40000000)\t\(SeccompPolicy.x32Action)\nother arch (int 0x80, ...)\t\(SeccompPolicy.foreignArchAction)")
    }
}
