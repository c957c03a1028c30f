import CagentCore

/// Everything cagent-init will do, decided host-side: the sandbox's identity, the agent's command and
/// environment, and the filesystem view as an ordered list of mount operations (each with the reason it
/// sits where it does). cagent-init executes it in order and decides nothing itself.
///
/// Wire format (read by Sources/cagent-init/plan.c without Foundation): each record is an operation name
/// followed by its arguments, every token NUL-terminated, and an empty token ending the record.
package struct SandboxPlan: Sendable, Equatable {
    package enum BindMode: String, Sendable { case readOnly = "ro", readWrite = "rw", device = "dev" }

    package enum Operation: Sendable, Equatable {
        /// A recursive bind of a host path; `optional` skips it when the source is absent.
        case bind(source: String, target: String, mode: BindMode, optional: Bool = false)
        /// Cover an existing path with an empty read-only directory or file (absent: nothing to do).
        case hide(String)
        case tmpfs(target: String, mode: String, sizeBytes: UInt64, readOnly: Bool = false)
        case proc(String)
        case devpts(String)
        case directory(String)
        case file(path: String, mode: String, contents: String)
        case symlink(target: String, path: String)
        /// Make the mount at a path read-only once it has been populated.
        case readOnly(String)
        /// Learn mode's scratch layer: host `lower` visible at `target`, writes to `upper`: a host path, or
        /// with `inVolume` a path in the plan's volume (attached by `.volume(target: nil)` before). With
        /// `optional`, a `lower` gone from the host by the time cagent-init mounts it is skipped (nothing of it to show).
        case overlay(lower: String, upper: String, work: String, target: String, inVolume: Bool = false, optional: Bool = false)
        /// The plan's bounded volume (`SandboxPlan.volume`) at `target` (the shadow home), or with nil
        /// outside the view, for overlay layers.
        case volume(target: String?)

        var tokens: [String] {
            switch self {
            case let .bind(source, target, mode, optional):
                return ["bind", source, target, mode.rawValue] + (optional ? ["optional"] : [])
            case let .hide(path): return ["hide", path]
            case let .tmpfs(target, mode, size, readOnly): return ["tmpfs", target, mode, String(size), readOnly ? "ro" : "rw"]
            case let .proc(path): return ["proc", path]
            case let .devpts(path): return ["devpts", path]
            case let .directory(path): return ["dir", path]
            case let .file(path, mode, contents): return ["file", path, mode, contents]
            case let .symlink(target, path): return ["symlink", target, path]
            case let .readOnly(path): return ["readonly", path]
            case let .overlay(lower, upper, work, target, inVolume, optional):
                return ["overlay", lower, upper, work, target] + (inVolume ? ["volume"] : []) + (optional ? ["optional"] : [])
            case let .volume(target): return ["volume", target ?? "-"]
            }
        }

        /// The stage name cagent-init reports for this operation ("bind /usr").
        package var stageName: String {
            let t = tokens
            switch self {
            case .bind, .symlink: return "\(t[0]) \(t[2])"
            case .overlay: return "\(t[0]) \(t[4])"
            default: return "\(t[0]) \(t[1])"
            }
        }
    }

    /// One step of the filesystem view and why it sits where it does in the order.
    package struct Step: Sendable, Equatable {
        package var operation: Operation
        package var reason: String
        package init(_ operation: Operation, _ reason: String) { self.operation = operation; self.reason = reason }
    }

    package struct TerminalSize: Sendable, Equatable {
        package var rows: UInt16
        package var columns: UInt16
        package init(rows: UInt16, columns: UInt16) { self.rows = rows; self.columns = columns }
    }

    package var sessionID: String
    package var hostname: String
    package var uid: UInt32
    package var gid: UInt32
    /// The agent's working directory inside the view (the workspace).
    package var workingDirectory: String
    package var command: [String]
    /// `NAME=value` entries: the agent's whole environment.
    package var environment: [String]
    package var steps: [Step]
    /// Non-nil: the agent gets a pty from the sandbox's devpts (cagent relays it); nil: plain pipes.
    package var terminal: TerminalSize?
    /// A seccomp program (bytes of struct sock_filter[]) installed as the last step before exec (a bare
    /// filter; `policy` is the complete form).
    package var seccompProgram: [UInt8]?
    /// The agent's process policy (rlimits, Landlock, seccomp) as the CGP1 message of cg_policy.h
    /// (`ProcessPolicy.serialized()`): cagent-init applies it with cg_policy_apply right before exec.
    package var policy: [UInt8]?
    /// What the running kernel's Landlock ABI loses, to show the user.
    package var policyNotices: [String] = []
    /// Learn mode's seccomp tracer: the agent child installs the listener filter before exec and passes its
    /// fd to cagent over the control socket (`Launcher.onListener`).
    package var traceNotify = false
    /// Test hook (`--fail-at-stage`): the setup stage to fail on purpose ("bind /usr", "pivot-root", "cgroup", ...).
    package var failAtStage: SetupStage?
    /// Rootless mode (host side only, never sent to cagent-init): the launcher denies setgroups before the
    /// gid map, as the kernel requires of an unprivileged writer (cg_spawn_request.rootless).
    package var rootless = false
    /// Host paths of the workspace and shadow home: the trees the agent controls (for reports).
    package var workspace: String
    package var shadowHome: String?
    /// The workspace's files the profile's workspace patterns matched at plan time (each a hide step).
    package var workspaceSecrets = WorkspaceSecrets.Scan()
    /// Host trees bound read-only because the agent lives there (AgentBootstrap), for the start line.
    package var agentMapped: [String] = []

    /// The size-bounded filesystem the Launcher mounts for this sandbox (DiskVolume), if any.
    package var volume: VolumeSpec?

    /// An ext4 image of a fixed size (the profile's `limits.disk`), created when missing.
    package struct VolumeSpec: Sendable, Equatable {
        package struct Directory: Sendable, Equatable {
            /// Relative to the volume's root; created (owned by the plan's user) when missing.
            package var path: String
            package var mode: UInt32
            package init(path: String, mode: UInt32) { self.path = path; self.mode = mode }
        }
        package var image: String
        package var sizeBytes: UInt64
        /// A journal for a persistent volume (the shadow home); none for a throwaway scratch.
        package var journal: Bool
        package var directories: [Directory]
        /// What the volume holds, for messages ("shadow home", "scratch layer").
        package var purpose: String
        /// A host directory copied in when the image is created (the shadow-home directory of older cagent).
        package var seed: String?

        package init(image: String, sizeBytes: UInt64, journal: Bool, directories: [Directory] = [], purpose: String,
                    seed: String? = nil) {
            self.image = image; self.sizeBytes = sizeBytes; self.journal = journal
            self.directories = directories; self.purpose = purpose; self.seed = seed
        }
    }

    package init(sessionID: String, hostname: String, uid: UInt32, gid: UInt32, workingDirectory: String,
                command: [String], environment: [String], steps: [Step], terminal: TerminalSize? = nil,
                seccompProgram: [UInt8]? = nil, failAtStage: SetupStage? = nil, workspace: String, shadowHome: String? = nil) {
        self.sessionID = sessionID; self.hostname = hostname; self.uid = uid; self.gid = gid
        self.workingDirectory = workingDirectory; self.command = command; self.environment = environment
        self.steps = steps; self.terminal = terminal; self.seccompProgram = seccompProgram
        self.failAtStage = failAtStage; self.workspace = workspace; self.shadowHome = shadowHome
    }

    /// The plan in cagent-init's wire format. Throws when a value cannot be represented (a NUL byte).
    package func serialized() throws -> [UInt8] {
        var records: [[String]] = [
            ["session", sessionID],
            ["hostname", hostname],
            ["user", String(uid), String(gid)],
            ["cwd", workingDirectory],
            ["argv"] + command,
            ["env"] + environment,
            ["tty", terminal == nil ? "0" : "1", String(terminal?.rows ?? 0), String(terminal?.columns ?? 0)],
        ]
        if let failAtStage, failAtStage.runner == .initProcess { records.append(["fail", failAtStage.description]) }
        if traceNotify { records.append(["notify", "1"]) }
        func hex(_ bytes: [UInt8]) -> String {
            // One pass into a byte buffer: the filter is ~1.4 KB and this runs on every agent start.
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count * 2)
            for byte in bytes {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0f)])
            }
            return String(decoding: out, as: UTF8.self)
        }
        if let seccompProgram {
            guard seccompProgram.count % 8 == 0, !seccompProgram.isEmpty else {
                throw CagentError(stage: "plan", "the seccomp program is not a whole number of sock_filter entries")
            }
            records.append(["seccomp", hex(seccompProgram)])
        }
        if let policy, !policy.isEmpty { records.append(["policy", hex(policy)]) }
        records += steps.map { $0.operation.tokens }
        var bytes: [UInt8] = []
        for record in records {
            for token in record {
                if token.utf8.contains(0) {
                    throw CagentError(stage: "plan", "a value contains a NUL byte: \(TerminalEscape.escape(token))")
                }
                if token.isEmpty {   // an empty token would end the record early
                    throw CagentError(stage: "plan", "an empty value in \(record.first ?? "?")")
                }
                bytes += token.utf8
                bytes.append(0)
            }
            bytes.append(0)
        }
        return bytes
    }

    /// Replaces the contents of a generated file (`.file` step at `path`); false when the plan has none.
    @discardableResult
    package mutating func replaceFile(at path: String, contents: String) -> Bool {
        guard let index = steps.firstIndex(where: { if case .file(path, _, _) = $0.operation { true } else { false } }),
              case let .file(_, mode, _) = steps[index].operation else { return false }
        steps[index].operation = .file(path: path, mode: mode, contents: contents)
        return true
    }
}
