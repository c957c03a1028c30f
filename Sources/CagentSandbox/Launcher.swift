import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// The streams the agent's input and output are relayed from and to (the user's 0, 1, 2 by default).
package struct StandardStreams: Sendable {
    package var input: Int32
    package var output: Int32
    package var error: Int32
    package init(input: Int32, output: Int32, error: Int32) { self.input = input; self.output = output; self.error = error }
    package static let inherited = StandardStreams(input: 0, output: 1, error: 2)
}

/// Starts a sandbox from a plan and stays with it until it ends: clone in C (cg_spawn_init) -> exec
/// cagent-init -> [beforeRelease hook] -> plan -> relay the agent's terminal or pipes -> exit status.
///
/// Hooks for later work (docs/architecture.md, "Sandbox"):
/// - `beforeRelease(pid)`: runs after clone, with every namespace created and cagent-init waiting for its
///   plan, before anything inside runs. The network layer configures the veth into `/proc/PID/ns/net` here;
///   sending the plan afterwards is the "network ready" release.
/// - `SandboxPlan.seccompProgram`: installed by cagent-init as the last step before exec.
/// - learn mode: the same launcher with a different plan (SandboxPlan.steps).
package final class Launcher {
    package var initPath: String
    package var streams: StandardStreams
    /// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGTSTP/SIGCONT/SIGUSR1/2 and follow window size changes
    /// (the CLI); in-process tests leave it off (signal handlers are process-wide).
    package var forwardSignals: Bool
    /// With the sandbox's namespaces in place and cagent-init waiting for its plan (nothing inside has run):
    /// what the plan depends on, e.g. the network (its addresses go into resolv.conf). Throwing aborts.
    package var beforeRelease: ((Int32) throws -> Void)?
    /// After the plan was sent, while cagent-init builds the view; the agent is forked only once it has
    /// returned. For what the agent must not start without but the view does not need (the session's
    /// cgroups: attaching a process is ~1 ms of cgroup v1 locking, overlapped with the mounts). Throwing
    /// ends the sandbox before the agent exists.
    package var beforeAgent: ((Int32) throws -> Void)?
    /// Called when the agent has been exec'd (tests and the network layer's bookkeeping).
    package var onStarted: ((Int32) -> Void)?
    /// cagent's own lines during the session (live denials): printed by the relay loop between the agent's
    /// lines (see NoticeChannel).
    package var notices: NoticeChannel?
    /// `cagent enforce --ask`: questions to the user, shown by the relay loop (QuestionChannel).
    package var questions: QuestionChannel?
    /// Learn mode: the seccomp tracer's listener fd (`SandboxPlan.traceNotify`), passed by the agent child
    /// before its exec; the callee owns it and must start servicing it at once (the exec is traced).
    package var onListener: ((Int32) -> Void)?
    /// Runs after `beforeRelease`, before the plan is sent: for plan parts known only then (learn mode's
    /// resolver address, which the network setup allocates).
    package var finalizePlan: ((SandboxPlan) throws -> SandboxPlan)?
    /// The session's cgroups to clone the init into (SessionCgroup.cloneTargets), instead of the caller adding
    /// it after the clone; `cgroupsPlacedAtClone` says whether that worked.
    package var cloneIntoCgroups: (joinTasks: [String], leaveTasks: [String], unified: String?)?
    /// The init was cloned into `cloneIntoCgroups` (set before `beforeRelease` runs).
    package private(set) var cgroupsPlacedAtClone = false
    /// The sandbox's network namespace, made and wired before the clone (Uplink.attachAhead): returns its
    /// descriptor (kept open by the caller until the sandbox has started), or nil for a new, empty one made by
    /// the clone. Called right before the clone, so that the network's setup overlaps everything before it;
    /// throwing aborts the start. The init is cloned on this thread after it entered that namespace, and the
    /// thread returns to its own.
    package var networkNamespace: (() throws -> Int32?)?
    /// The plan's volume, already being opened (`PendingVolume`); used when it is the plan's.
    package var pendingVolume: PendingVolume?
    /// What the bounded volume's setup wants the user to know (DiskVolume.notices), after `run` started.
    package private(set) var volumeNotices: [String] = []

    package init(initPath: String = Launcher.defaultInitPath(), streams: StandardStreams = .inherited,
                forwardSignals: Bool = true) {
        self.initPath = initPath
        self.streams = streams
        self.forwardSignals = forwardSignals
    }

    /// cagent-init next to the running executable (`CAGENT_INIT` overrides, for tests of other builds).
    package static func defaultInitPath() -> String {
        if let explicit = ProcessEnvironment.current["CAGENT_INIT"], !explicit.isEmpty { return explicit }
        return OwnExecutable.sibling("cagent-init") ?? "/usr/local/libexec/cagent-init"
    }

    static let relayedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGUSR1, SIGUSR2, SIGWINCH]

    /// The signals that would end cagent. A caller with host-side setup and teardown around `run` (the
    /// network, the cgroup) calls `holdTerminatingSignals()` first: outside the relay loop they are then
    /// caught and noted (a handler, not a blocked mask: any thread may take a process signal), so Ctrl-C
    /// during setup or teardown cannot skip the teardown; during the relay loop they go to the agent.
    package static let terminatingSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
    nonisolated(unsafe) static var heldPipe: [Int32] = [-1, -1]

    package static func holdTerminatingSignals() {
        if heldPipe[0] < 0 { guard cg_pipe(&heldPipe, 1) == 0 else { return } }
        _ = terminatingSignals.withUnsafeBufferPointer { cg_signal_pipe_install(heldPipe[1], $0.baseAddress, Int32($0.count)) }
    }

    /// The first terminating signal caught while held (since the last call), if any.
    package static func takeHeldSignal() -> Int32? {
        guard heldPipe[0] >= 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(heldPipe[0], &bytes, bytes.count)
        return count > 0 ? Int32(bytes[0]) : nil
    }

    /// Runs `body` (the clone) with the calling thread in the network namespace `fd`, then back in its own. A
    /// namespace it cannot enter fails the clone (-1, errno set); not coming back would leave this thread acting
    /// in the sandbox's namespace: that must not continue.
    private static func inNetworkNamespace(_ fd: Int32, _ body: () -> Int32) -> Int32 {
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { return -1 }
        defer { close(home) }
        guard cg_setns(fd, CG_CLONE_NEWNET) == 0 else { return -1 }
        let result = body()
        let saved = errno
        if cg_setns(home, CG_CLONE_NEWNET) != 0 { fatalError("cannot return to the original network namespace") }
        errno = saved
        return result
    }

    /// Runs the plan; returns the agent's exit status (128+N when killed by signal N). Throws when setup
    /// failed (the agent never ran), naming the stage.
    package func run(_ plan: SandboxPlan) throws -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        var bytes = try plan.serialized()   // early: a plan that cannot be serialized starts nothing
        let tty = plan.terminal != nil

        var control: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &control) == 0 else {
            throw CagentError.system("launch", "socketpair")
        }
        var planPipe: [Int32] = [-1, -1]
        guard cg_pipe(&planPipe, 0) == 0 else { throw CagentError.system("launch", "pipe2") }
        var childEnds: [Int32] = []
        var ourEnds: [Int32] = []   // parent side of the agent's stdin, stdout, stderr pipes (pipe mode)
        if tty {
            let null = open("/dev/null", O_RDWR | O_CLOEXEC)
            childEnds = [null, null, null]
        } else {
            for index in 0..<3 {
                var fds: [Int32] = [-1, -1]
                guard cg_pipe(&fds, 0) == 0 else { throw CagentError.system("launch", "pipe2") }
                childEnds.append(index == 0 ? fds[0] : fds[1])
                ourEnds.append(index == 0 ? fds[1] : fds[0])
            }
        }

        // The bounded volume (shadow home or scratch) is mounted detached here (or shared with a running
        // session of the same agent: DiskVolume) and handed over as fd 5; our copy is closed right after the
        // clone, so the mount ends with the sandbox, and the loop device with the last sandbox using it.
        Timing.mark("launch: pipes")
        let volume: DiskVolume?
        do {
            if let pending = pendingVolume, let spec = plan.volume, pending.spec == spec {
                pendingVolume = nil
                volume = try pending.take()
            } else {
                volume = try plan.volume.map { try DiskVolume($0, uid: plan.uid, gid: plan.gid) }
            }
        } catch {
            for fd in Set(childEnds) + ourEnds + [planPipe[0], planPipe[1], control[0], control[1]] { close(fd) }
            throw error
        }
        defer { volume?.close() }
        volumeNotices = volume?.notices ?? []
        // Links an earlier session left at mount targets in the shadow home would stop the start (H11):
        // repaired on the mounted volume, before cagent-init mounts into it.
        if let volume, let home = plan.steps.lazy.compactMap({ step -> String? in
            if case let .volume(target?) = step.operation { return target } else { return nil }
        }).first {
            do {
                volumeNotices += try ShadowHome.repair(root: volume.mountFD, shadowHome: plan.volume?.image ?? home,
                                                       home: home, steps: plan.steps)
            } catch {
                for fd in Set(childEnds) + ourEnds + [planPipe[0], planPipe[1], control[0], control[1]] { close(fd) }
                throw error
            }
        }
        for notice in volumeNotices {   // before the relay starts: written directly
            (notices ?? NoticeChannel()).write(line: "cagent: notice: \(notice)")
        }
        Timing.mark("launch: volume mounted")
        let joinNetwork: Int32?
        do { joinNetwork = try networkNamespace?() } catch {
            for fd in Set(childEnds) + ourEnds + [planPipe[0], planPipe[1], control[0], control[1]] { close(fd) }
            throw error
        }
        Timing.mark("launch: network namespace ready")
        var request = cg_spawn_request()
        request.volume_fd = volume?.mountFD ?? -1
        request.stdio = (childEnds[0], childEnds[1], childEnds[2])
        request.plan_fd = planPipe[0]
        request.control_fd = control[1]
        request.uid = plan.uid
        request.gid = plan.gid
        request.namespaces = joinNetwork == nil ? CG_SPAWN_NAMESPACES : CG_SPAWN_NAMESPACES & ~CG_CLONE_NEWNET
        request.rootless = plan.rootless ? 1 : 0
        var result = cg_spawn_result()
        let arguments = ["cagent-init", plan.sessionID]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let childFault = plan.failAtStage.flatMap { $0.runner == .child ? strdup($0.description) : nil }
        defer { free(childFault) }
        request.fail_at = UnsafePointer(childFault)
        // The session's cgroups at the clone (cg_spawn.h says why): C strings kept until the spawn returns.
        let joinTasks: [UnsafeMutablePointer<CChar>?] = (cloneIntoCgroups?.joinTasks ?? []).map { strdup($0) }
        let leaveTasks: [UnsafeMutablePointer<CChar>?] = (cloneIntoCgroups?.leaveTasks ?? []).map { strdup($0) }
        let cgroupFD = cloneIntoCgroups?.unified.map { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } ?? -1
        defer { (joinTasks + leaveTasks).forEach { free($0) }; if cgroupFD >= 0 { close(cgroupFD) } }
        if cloneIntoCgroups != nil, cloneIntoCgroups?.unified == nil || cgroupFD >= 0 {
            request.tasks_count = Int32(joinTasks.count)
            request.into_cgroup = cgroupFD >= 0 ? 1 : 0
            request.cgroup_fd = cgroupFD
        }
        let spawned = joinTasks.withUnsafeBufferPointer { join in leaveTasks.withUnsafeBufferPointer { leave in
            request.join_tasks = UnsafePointer(OpaquePointer(join.baseAddress))
            request.leave_tasks = UnsafePointer(OpaquePointer(leave.baseAddress))
            return initPath.withCString { path -> Int32 in
                request.init_path = path
                return argv.withUnsafeBufferPointer { pointer in
                    request.argv = UnsafePointer(pointer.baseAddress)
                    guard let joinNetwork else { return cg_spawn_init(&request, &result) }
                    let spawned = Self.inNetworkNamespace(joinNetwork) { cg_spawn_init(&request, &result) }
                    if spawned != 0 && result.error_stage == nil {   // the namespace could not be entered
                        result.error = errno
                        result.error_stage = UnsafePointer(OpaquePointer(("join-network-namespace" as StaticString).utf8Start))
                    }
                    return spawned
                }
            }
        } }
        cgroupsPlacedAtClone = spawned == 0 && result.cgroups_placed != 0
        for fd in Set(childEnds) + [planPipe[0], control[1]] { close(fd) }
        volume?.releaseMount()
        Timing.mark("launch: clone")
        guard spawned == 0 else {
            ourEnds.forEach { close($0) }
            close(planPipe[1]); close(control[0])
            let stage = result.error_stage.map { String(cString: $0) } ?? "launch"
            throw CagentError(stage: stage, "cannot start the sandbox", errno: result.error,
                              hint: stage == "find-init" ? "cagent-init must sit next to cagent (\(initPath))"
                                  : "user namespaces must be available: see `cagent doctor`")
        }
        let pid = result.pid
        var reaped = false
        var closedBySession: Set<Int32> = []
        defer {
            if !reaped { kill(pid, SIGKILL); var status: Int32 = 0; while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
            close(result.lifeline_fd)
            close(control[0])
            ourEnds.filter { !closedBySession.contains($0) }.forEach { close($0) }
        }

        do {
            try beforeRelease?(pid)
            if let finalizePlan { bytes = try finalizePlan(plan).serialized() }
        } catch { close(planPipe[1]); throw error }
        // The plan is the release: cagent-init runs nothing before it has read all of it.
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(planPipe[1], $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR { continue } else { break } }   // init died: its report says why
            offset += written
        }
        close(planPipe[1])
        // While cagent-init builds the view: what must hold before the agent exists but is not needed for
        // the view (the session's cgroups). Then the go; the agent is forked only after it.
        try beforeAgent?(pid)
        var go = UInt8(ascii: "G")
        _ = send(control[0], &go, 1, Int32(MSG_NOSIGNAL))   // fails only if init already failed: the relay reads why

        let session = Session(pid: pid, control: control[0], streams: streams, tty: tty, ourEnds: ourEnds,
                              forwardSignals: forwardSignals, onStarted: onStarted, onListener: onListener)
        session.noticeFD = notices?.beginRelay() ?? -1
        if let questions, tty { session.questions = questions; session.questionFD = questions.beginRelay() }
        Timing.mark("launch: go")
        let setupError = session.relay()
        questions?.endRelay()
        if let notices {
            // The terminal is restored: what is still queued goes out as plain lines (after a cut-off agent line).
            var rest = notices.endRelay()
            if !rest.isEmpty {
                if session.agentMidLine { rest.insert(0x0a, at: 0) }
                _ = rest.withUnsafeBytes { write(streams.error, $0.baseAddress, $0.count) }
            }
        }
        closedBySession = Set(session.pumps.filter(\.destinationClosed).map(\.destination))

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        if let setupError { throw Self.setupError(setupError) }
        let signalNumber = status & 0x7f
        if signalNumber == 0 { return (status >> 8) & 0xff }
        if signalNumber == 0x7f { return 128 + ((status >> 8) & 0xff) }
        return 128 + signalNumber
    }

    /// The status for a start that failed at the agent's exec, like env(1) and the shells: 127 when the
    /// command was not found, 126 when it exists but cannot be executed; nil for any other setup failure (125).
    package static func agentExecStatus(_ error: CagentError) -> Int32? {
        guard case .sandboxSetup(.step(.execAgent(let commandNotFound))?) = error.stage else { return nil }
        return commandNotFound ? 127 : 126
    }

    /// "stage X failed: <errno> (<hint>)" from cagent-init -> CagentError(stage: X, ...).
    static func setupError(_ message: String) -> CagentError {
        let text = TerminalEscape.escape(message)
        let marker = " failed: "
        if text.hasPrefix("stage ") {
            let body = text.dropFirst(6)
            var index = body.startIndex
            while index < body.endIndex {
                if body[index...].hasPrefix(marker) {
                    let reason = String(body[body.index(index, offsetBy: marker.count)...])
                    var stage = SetupStage(String(body[..<index]))
                    var hint = "the agent did not start; nothing was left behind"
                    if case .execAgent = stage {
                        // The reason starts with the errno's name (cagent-init's `fail`).
                        let name = reason.prefix { $0 != " " }
                        stage = .execAgent(commandNotFound: name == "ENOENT" || name == "ENOTDIR")
                        hint = "the agent did not start: is the command installed, executable and visible in the profile's "
                            + "filesystem view (`cagent profile show --resolved PROFILE`), on the PATH it gets?"
                    }
                    return CagentError(stage: .sandboxSetup(.step(stage)), reason, hint: hint)
                }
                index = body.index(after: index)
            }
        }
        return CagentError(stage: .sandboxSetup(nil), text, hint: "the agent did not start; nothing was left behind")
    }
}

/// One copy direction with a small buffer: read when empty, write when full (never blocks the loop on
/// fds we own; the user's own fds are left in their blocking mode so their shell sees no change).
final class Pump {
    let source: Int32
    let destination: Int32
    var buffer: [UInt8] = []
    var sourceDone = false
    let closesDestination: Bool
    init(_ source: Int32, _ destination: Int32, closesDestination: Bool) {
        self.source = source; self.destination = destination; self.closesDestination = closesDestination
    }
    var finished: Bool { sourceDone && buffer.isEmpty }
    /// True once this pump closed its destination (the agent's stdin pipe), so nobody closes it twice: in a
    /// multithreaded process a second close() can hit an unrelated fd that reused the number.
    private(set) var destinationClosed = false

    func closeDestination() {
        guard closesDestination, !destinationClosed else { return }
        close(destination)
        destinationClosed = true
    }
}

/// The supervisor's loop for one sandbox: control messages from cagent-init, the agent's streams, and
/// the user's signals.
final class Session {
    let pid: Int32
    let control: Int32
    let streams: StandardStreams
    let tty: Bool
    let forwardSignals: Bool
    let onStarted: ((Int32) -> Void)?
    let onListener: ((Int32) -> Void)?
    var pumps: [Pump] = []
    var master: Int32 = -1
    var terminal: Terminal?
    var setupError: String?
    var suspended = false
    /// cagent's own lines (NoticeChannel's pipe), and whether the agent's output last stopped mid-line.
    var noticeFD: Int32 = -1
    var pendingNotices: [UInt8] = []
    var pendingSince: Double?
    /// Ask mode: the channel, its wake-up descriptor, and the serial of the question on the screen (while it
    /// is, the agent's output and cagent's lines wait, and the user's keys answer it).
    var questions: QuestionChannel?
    var questionFD: Int32 = -1
    var shownQuestion: Int?
    /// Per destination (the user's stdout, stderr): did the agent's last write there end mid-line?
    var midLine: [Int32: Bool] = [:]
    /// Whether the agent's stdout lands where cagent's lines do (a terminal, or the same file as stderr).
    lazy var outputSharesError: Bool = {
        if tty { return true }
        var a = stat(), b = stat()
        guard fstat(streams.output, &a) == 0, fstat(streams.error, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }()
    /// True when printing a line now would land inside one of the agent's.
    var agentMidLine: Bool {
        (midLine[streams.error] ?? false) || (outputSharesError && (midLine[streams.output] ?? false))
    }

    init(pid: Int32, control: Int32, streams: StandardStreams, tty: Bool, ourEnds: [Int32], forwardSignals: Bool,
         onStarted: ((Int32) -> Void)?, onListener: ((Int32) -> Void)? = nil) {
        self.pid = pid; self.control = control; self.streams = streams; self.tty = tty
        self.forwardSignals = forwardSignals; self.onStarted = onStarted; self.onListener = onListener
        if !tty {
            for fd in ourEnds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            pumps = [Pump(streams.input, ourEnds[0], closesDestination: true),
                     Pump(ourEnds[1], streams.output, closesDestination: false),
                     Pump(ourEnds[2], streams.error, closesDestination: false)]
        }
    }

    /// Relays until cagent-init has exited and the agent's output is drained; returns a setup error.
    func relay() -> String? {
        var signalPipe: [Int32] = [-1, -1]
        if forwardSignals, cg_pipe(&signalPipe, 1) == 0 {
            _ = Launcher.relayedSignals.withUnsafeBufferPointer {
                cg_signal_pipe_install(signalPipe[1], $0.baseAddress, Int32($0.count))
            }
        }
        defer {
            if signalPipe[0] >= 0 {
                Launcher.relayedSignals.withUnsafeBufferPointer { cg_signal_pipe_remove($0.baseAddress, Int32($0.count)) }
                // Held again from here when the caller asked: its teardown must not be cut short.
                if Launcher.heldPipe[0] >= 0 { Launcher.holdTerminatingSignals() }
                close(signalPipe[0]); close(signalPipe[1])
            }
            terminal?.restore()
            if master >= 0 { close(master) }
        }

        var controlOpen = true
        var idleSince: Double? = nil
        while true {
            if !controlOpen {
                // cagent-init is gone: input can no longer be delivered; drain what the agent wrote.
                for pump in pumps where pump.source == streams.input { pump.sourceDone = true; pump.buffer = [] }
                if pumps.allSatisfy({ $0.finished }) { break }
            }
            var fds: [pollfd] = []
            var owners: [(Pump?, Int)] = []   // pump and role: 0 control, 1 signals, 2 read, 3 write
            if controlOpen { fds.append(pollfd(fd: control, events: Int16(POLLIN), revents: 0)); owners.append((nil, 0)) }
            if signalPipe[0] >= 0 { fds.append(pollfd(fd: signalPipe[0], events: Int16(POLLIN), revents: 0)); owners.append((nil, 1)) }
            for pump in pumps where !pump.finished {
                if shownQuestion != nil && pump.source == master && master >= 0 { continue }   // paused while asking
                if shownQuestion != nil && pump.source == streams.input && pump.buffer.isEmpty {
                    fds.append(pollfd(fd: pump.source, events: Int16(POLLIN), revents: 0)); owners.append((pump, 7))
                    continue
                }
                if pump.buffer.isEmpty { fds.append(pollfd(fd: pump.source, events: Int16(POLLIN), revents: 0)); owners.append((pump, 2)) }
                else { fds.append(pollfd(fd: pump.destination, events: Int16(POLLOUT), revents: 0)); owners.append((pump, 3)) }
            }
            if noticeFD >= 0 { fds.append(pollfd(fd: noticeFD, events: Int16(POLLIN), revents: 0)); owners.append((nil, 4)) }
            if questionFD >= 0 { fds.append(pollfd(fd: questionFD, events: Int16(POLLIN), revents: 0)); owners.append((nil, 6)) }
            let ready = poll(&fds, nfds_t(fds.count), !pendingNotices.isEmpty ? 200 : controlOpen ? -1 : 1000)
            if ready < 0 { if errno == EINTR { continue }; break }
            if !pendingNotices.isEmpty { flushNotices() }
            if ready == 0 {
                // Output still open a while after init exited (cannot normally happen: the pid namespace
                // is gone): stop waiting after a few seconds.
                let now = monotonicSeconds()
                if idleSince == nil { idleSince = now } else if now - idleSince! > 5 { break }
                continue
            }
            idleSince = nil
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let (pump, role) = owners[index]
                switch role {
                case 0: controlOpen = handleControl()
                case 1: handleSignals(signalPipe[0])
                case 2: pump.map(fill)
                case 4: readNotices()
                case 6: showQuestion()
                case 7: pump.map(answerQuestion)
                default: pump.map(drain)
                }
            }
        }
        return setupError
    }

    private func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// One message from cagent-init. Returns false at EOF (cagent-init exited).
    private func handleControl() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 2048)
        var passed: Int32 = -1
        let count = cg_recv_with_fd(control, &buffer, buffer.count, &passed)
        // ECONNRESET: cagent-init exited with our go byte unread (it failed while building the view); the
        // error is reported once and its queued messages, the failure's report among them, follow.
        if count <= 0 { return count < 0 && (errno == EINTR || errno == ECONNRESET) }
        let message = Array(buffer[0..<count])
        switch message.first {
        case UInt8(ascii: "E"):
            setupError = String(decoding: message.dropFirst(), as: UTF8.self)
        case UInt8(ascii: "T") where passed >= 0:
            master = passed
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            pumps = [Pump(streams.input, master, closesDestination: false),
                     Pump(master, streams.output, closesDestination: false)]
            terminal = Terminal(fd: streams.input)
            terminal?.copySize(to: master)
            terminal?.makeRaw()
        case UInt8(ascii: "R"):
            onStarted?(pid)
        case UInt8(ascii: "N") where passed >= 0:
            if let onListener { onListener(passed) } else { close(passed) }
        case UInt8(ascii: "Z"):
            suspend()
        default:
            if passed >= 0 { close(passed) }
        }
        return true
    }

    /// The agent stopped (Ctrl-Z): stop cagent too, like any job, with the user's terminal restored.
    /// `fg` (SIGCONT) continues cagent; `handleSignals` then re-enters raw mode and continues the agent.
    /// raise() targets this thread, so it stops here and cannot run on and wake the agent too early.
    private func suspend() {
        guard forwardSignals else { return }
        terminal?.restore()
        suspended = true
        raise(SIGSTOP)
    }

    private func handleSignals(_ fd: Int32) {
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return }
        for byte in bytes[0..<count] {
            let sig = Int32(byte)
            if sig == SIGWINCH {
                if master >= 0 { terminal?.copySize(to: master) }
            } else if sig == SIGCONT {
                if suspended {
                    suspended = false
                    terminal?.makeRaw()
                    if master >= 0 { terminal?.copySize(to: master) }
                }
                kill(pid, SIGCONT)
            } else {
                kill(pid, sig)   // cagent-init forwards it to the agent's process group
            }
        }
    }

    private func fill(_ pump: Pump) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let count = read(pump.source, &chunk, chunk.count)
        if count > 0 { pump.buffer = Array(chunk[0..<count]); return }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        // EOF, or EIO on a pty master once every slave is closed.
        pump.sourceDone = true
        pump.closeDestination()
    }

    private func readNotices() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = read(noticeFD, &chunk, chunk.count)
        guard count > 0 else { return }
        if pendingNotices.isEmpty { pendingSince = monotonicSeconds() }
        pendingNotices += chunk[0..<count]
        flushNotices()
    }

    /// Shows the open question (only with a terminal: without one nobody can answer), or takes down one that
    /// timed out.
    private func showQuestion() {
        guard let questions else { return }
        let open = questions.current()
        if let open, terminal != nil, shownQuestion != open.serial {
            flushNotices()
            shownQuestion = open.serial
            writeToTerminal((agentMidLine ? [0x0a] : []) + open.prompt)
            midLine = [:]
        } else if open == nil, shownQuestion != nil {
            shownQuestion = nil
            writeToTerminal(Array("\ncagent: no answer in time: denied\n".utf8))
            if !pendingNotices.isEmpty { flushNotices() }
        }
    }

    /// The user's keys while a question is shown: the first listed one answers it; the rest are dropped
    /// (they were typed at cagent's question, not for the agent).
    private func answerQuestion(_ pump: Pump) {
        var chunk = [UInt8](repeating: 0, count: 256)
        let count = read(pump.source, &chunk, chunk.count)
        guard count > 0, let serial = shownQuestion, let questions else {
            if count == 0 { pump.sourceDone = true }
            return
        }
        for byte in chunk[0..<count] where questions.offer(byte, serial: serial) {
            shownQuestion = nil
            writeToTerminal([byte, 0x0a])
            if !pendingNotices.isEmpty { flushNotices() }
            return
        }
    }

    /// cagent's own text on the user's terminal: "\n" as "\r\n" while it is raw.
    private func writeToTerminal(_ bytes: [UInt8]) {
        let raw = terminal != nil && !suspended
        var text: [UInt8] = []
        for byte in bytes {
            if byte == 0x0a && raw { text.append(0x0d) }
            text.append(byte)
        }
        var offset = 0
        while offset < text.count {
            let written = text[offset...].withUnsafeBytes { write(streams.error, $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR || errno == EAGAIN { continue } else { return } }
            offset += written
        }
    }

    /// Prints the complete lines queued when the agent's output is at a line start, or after half a second
    /// anyway (a prompt without newline must not hold them back forever), then on a line of their own.
    private func flushNotices() {
        guard shownQuestion == nil, let end = pendingNotices.lastIndex(of: 0x0a) else { return }
        if agentMidLine, let since = pendingSince, monotonicSeconds() - since < 0.5 { return }
        let raw = terminal != nil && !suspended
        var text: [UInt8] = agentMidLine ? (raw ? [0x0d, 0x0a] : [0x0a]) : []
        for byte in pendingNotices[...end] {
            if byte == 0x0a && raw { text.append(0x0d) }
            text.append(byte)
        }
        pendingNotices.removeFirst(end + 1)
        pendingSince = pendingNotices.isEmpty ? nil : monotonicSeconds()
        midLine = [:]
        var offset = 0
        while offset < text.count {
            let written = text[offset...].withUnsafeBytes { write(streams.error, $0.baseAddress, $0.count) }
            if written < 0 { if errno == EINTR || errno == EAGAIN { continue } else { return } }
            offset += written
        }
    }

    private func drain(_ pump: Pump) {
        let written = pump.buffer.withUnsafeBytes { write(pump.destination, $0.baseAddress, $0.count) }
        if written > 0 && (pump.destination == streams.output || pump.destination == streams.error) {
            midLine[pump.destination] = pump.buffer[written - 1] != 0x0a
        }
        if written > 0 {
            pump.buffer.removeFirst(written)
            if !agentMidLine && !pendingNotices.isEmpty { flushNotices() }
            return
        }
        if written < 0 && (errno == EAGAIN || errno == EINTR) { return }
        pump.buffer = []   // the reader is gone: drop the data
        pump.sourceDone = true
        pump.closeDestination()
    }
}
