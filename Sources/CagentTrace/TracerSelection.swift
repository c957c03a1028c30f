import CEbpf
import CShim
import CagentCore

/// Which tracer `cagent learn --tracer auto` uses, and why (also printed by `cagent doctor`).
/// auto: eBPF when its programs load here (the cheapest and the only one that sees results); else seccomp
/// user notification (works without BPF; results inferred). Tracee is used only when asked for
/// (`--tracer tracee`): it needs kprobes or fentry and a separate install.
package enum TracerChoice: String, Sendable, CaseIterable {
    case auto, ebpf, seccomp, tracee
}

package struct TracerSelection: Sendable {
    /// nil: nothing usable (learn mode cannot trace; the reason says why).
    package var backend: TracerBackend?
    package var reason: String
    /// Set for the Tracee backend: the executable found on PATH.
    package var traceePath: String?

    package static func select(_ choice: TracerChoice, path: String?) -> TracerSelection {
        switch choice {
        case .ebpf:
            // Asked for: not probed (loading is what the tracer does next, and it reports its own error).
            return TracerSelection(backend: .ebpf, reason: "asked for")
        case .seccomp:
            let probe = probeSeccomp()
            return TracerSelection(backend: probe == nil ? .seccomp : nil, reason: probe ?? "seccomp user notification available")
        case .tracee:
            guard let found = FileSystem.which("tracee", path: path) else {
                return TracerSelection(backend: nil, reason: "tracee is not on PATH")
            }
            return TracerSelection(backend: .tracee, reason: "tracee found at \(found)", traceePath: found)
        case .auto:
            return auto(ebpfFailure: probeEbpf())
        }
    }

    /// The auto choice, given whether the eBPF programs loaded (nil) or why not: a caller that loads the
    /// real tracer anyway (learn) passes its outcome instead of loading the programs twice.
    package static func auto(ebpfFailure ebpf: String?) -> TracerSelection {
        guard let ebpf else {
            return TracerSelection(backend: .ebpf, reason: "raw syscall tracepoints, ring buffer and cgroup scope load here (in-kernel dedup, real results)")
        }
        if let seccomp = probeSeccomp() {
            return TracerSelection(backend: nil, reason: "no tracer: eBPF \(ebpf); seccomp \(seccomp)")
        }
        return TracerSelection(backend: .seccomp, reason: "seccomp notify, because eBPF is not allowed (\(ebpf)); results are inferred")
    }

    /// nil when the eBPF tracer's programs load, else why not.
    package static func probeEbpf() -> String? {
        var message = [CChar](repeating: 0, count: 600)
        if cg_ebpf_probe(&message, message.count) == 0 { return nil }
        return "cannot load: " + String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// nil when seccomp user notification is available, else why not.
    package static func probeSeccomp() -> String? {
        cg_seccomp_user_notif_available() == 1 ? nil : "no seccomp user notification (Linux >= 5.0 with CONFIG_SECCOMP_FILTER)"
    }
}
