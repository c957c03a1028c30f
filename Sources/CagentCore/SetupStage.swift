/// The steps of a sandbox's start that code names: what a setup failure reports, and what the one test hook,
/// `--fail-at-stage NAME` (tests prove every step fails closed), fails on purpose. The name is read once into
/// this type; the plan carries it to whoever runs the step: the supervisor (`inject(at:asked:)`), the
/// launcher's C child (`cg_spawn_request.fail_at`) or cagent-init (the plan's `fail` record), the two C
/// sides with the same rule (`cg_fail_requested`, cg_fault.h).
package enum SetupStage: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The supervisor's, while the init waits for its plan (Launcher.beforeRelease): uplink, DNS gate,
    /// filtering proxy, flow log, `--publish`'s relay.
    case network, dnsGate, proxy, nflog, publish
    /// The supervisor's, while the init builds the view (Launcher.beforeAgent): the session's cgroups.
    case cgroup
    /// The launcher's C child, between clone and cagent-init's exec (cg_spawn.c).
    case childCredentials, execInit
    /// cagent-init's exec of the agent; `commandNotFound` when the command is missing (ENOENT/ENOTDIR:
    /// exit status 127, like the shells; 126 otherwise).
    case execAgent(commandNotFound: Bool)
    /// Any other step of cagent-init (main.c's `stage()`): "mount-proc", "bind /usr", "pivot-root", ...
    /// To fail on purpose, a name may be a step's first word ("bind" fails the first bind).
    case initStep(String)
    /// A Ctrl-C or kill -TERM arrived during setup (the start is abandoned).
    case interrupted

    /// Who runs a step, and so who checks the test hook for it.
    package enum Runner: Sendable { case supervisor, child, initProcess }

    /// The stage a name means (the inverse of `description`).
    package init(_ name: String) {
        switch name {
        case "network": self = .network
        case "dns-gate": self = .dnsGate
        case "proxy": self = .proxy
        case "nflog": self = .nflog
        case "publish": self = .publish
        case "cgroup": self = .cgroup
        case "child-credentials": self = .childCredentials
        case "exec-init": self = .execInit
        case "exec-agent": self = .execAgent(commandNotFound: false)
        case "interrupted": self = .interrupted
        default: self = .initStep(name)
        }
    }

    package init(stringLiteral value: String) { self.init(value) }

    package var description: String {
        switch self {
        case .network: return "network"
        case .dnsGate: return "dns-gate"
        case .proxy: return "proxy"
        case .nflog: return "nflog"
        case .publish: return "publish"
        case .cgroup: return "cgroup"
        case .childCredentials: return "child-credentials"
        case .execInit: return "exec-init"
        case .execAgent: return "exec-agent"
        case .initStep(let name): return name
        case .interrupted: return "interrupted"
        }
    }

    package var runner: Runner {
        switch self {
        case .network, .dnsGate, .proxy, .nflog, .publish, .cgroup, .interrupted: return .supervisor
        case .childCredentials, .execInit: return .child
        case .execAgent, .initStep: return .initProcess
        }
    }

    /// The supervisor's side of the test hook: throws at `stage` when it is the one asked to fail.
    package static func inject(at stage: SetupStage, asked: SetupStage?) throws {
        if asked == stage { throw CagentError(stage: .step(stage), "failing as asked (--fail-at-stage)") }
    }
}
