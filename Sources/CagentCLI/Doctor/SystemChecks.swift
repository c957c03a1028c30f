import CShim
import CagentCapture
import CagentCore
import CagentNetwork
import CagentSandbox
import CagentTrace
#if canImport(Glibc)
import Glibc
#endif

/// The machine checks of `cagent doctor`. Each later piece of work appends its own checks here.
enum SystemChecks {
    static func all(environment: [String: String], paths: CagentPaths) -> [DoctorCheck] {
        var checks: [DoctorCheck] = [privileges()]
        checks += namespaces()
        checks.append(nftables())
        checks.append(foreignFirewall())
        checks.append(seccompNotify())
        checks.append(seccompFilter())
        checks.append(landlock())
        checks.append(cgroups())
        checks.append(rootless())
        checks.append(ebpf())
        checks.append(Capture.loadError.map { DoctorCheck("libpcap", .fail, $0, remedy: "apt-get install libpcap0.8 (learn mode captures DNS with it; enforce reads its denials through it)") }
                      ?? DoctorCheck("libpcap", .ok, Capture.libraryVersion))
        checks.append(tracee(environment: environment))
        checks.append(learnTracer(environment: environment))
        checks.append(stateDirectory(paths: paths))
        checks.append(DiskChecks.volume())
        checks.append(DiskChecks.workspace(directory: FileSystem.currentDirectory()))
        return checks
    }

    static func privileges() -> DoctorCheck {
        guard geteuid() == 0 else {
            return DoctorCheck("privileges", .info, "uid \(geteuid()), not root: `enforce` and `learn` run in rootless mode (see \"rootless\")")
        }
        // Capabilities root lacks here (e.g. CAP_SYS_RESOURCE in some VMs) only mean limits can be lowered, not raised.
        let last = cg_cap_last_cap()
        var missing: [Int32] = []
        if last >= 0 {
            for cap in 0...last where cg_capbset_read(cap) == 0 { missing.append(cap) }
        }
        if missing.isEmpty { return DoctorCheck("privileges", .ok, "root with the full capability bounding set") }
        let names = missing.map { CapabilityNames.name(of: $0) }.joined(separator: ", ")
        return DoctorCheck("privileges", .info, "root; bounding set lacks \(names) (limits can only be lowered)")
    }

    static func namespaces() -> [DoctorCheck] {
        let kinds: [(String, Int32)] = [
            ("user", CG_CLONE_NEWUSER), ("mount", CG_CLONE_NEWNS), ("pid", CG_CLONE_NEWPID),
            ("net", CG_CLONE_NEWNET), ("uts", CG_CLONE_NEWUTS), ("ipc", CG_CLONE_NEWIPC),
            ("cgroup", CG_CLONE_NEWCGROUP),
        ]
        return kinds.map { name, flag in
            // A plain user's sandbox gets each namespace inside a user namespace of its own (rootless mode).
            let result = cg_probe_unshare(geteuid() == 0 || flag == CG_CLONE_NEWUSER ? flag : flag | CG_CLONE_NEWUSER)
            if result == 0 { return DoctorCheck("namespace \(name)", .ok, "unshare works") }
            return DoctorCheck("namespace \(name)", .fail, "unshare failed: \(String(cString: strerror(result)))",
                               remedy: name == "user"
                                   ? "enable unprivileged/any user namespaces (sysctl user.max_user_namespaces > 0)"
                                   : "run as root on a kernel with \(name) namespaces",
                               required: true)
        }
    }

    static func nftables() -> DoctorCheck {
        if geteuid() != 0 {
            return DoctorCheck("nftables netlink", .info, "not root: rootless sessions program nftables inside the sandbox's own namespace (the host's ruleset is not read)")
        }
        do {
            let chains = try NetfilterInventory.chains()
            let tables = Set(chains.map { "\($0.familyName) \($0.table)" })
            return DoctorCheck("nftables netlink", .ok, "libnftnl dump works (\(tables.count) tables with chains)")
        } catch let error as CagentError {
            return DoctorCheck("nftables netlink", .fail, error.message + (error.errno.map { " (errno \($0))" } ?? ""),
                               remedy: error.hint ?? "a kernel with nf_tables and CAP_NET_ADMIN", required: true)
        } catch {
            return DoctorCheck("nftables netlink", .fail, "\(error)", required: true)
        }
    }

    static func foreignFirewall() -> DoctorCheck {
        guard let chains = try? NetfilterInventory.chains() else {
            return DoctorCheck("other firewalls", .info, "not checked (nftables unreadable)")
        }
        let drops = NetfilterInventory.foreignForwardDrops(in: chains)
        var legacy = ""
        if let names = FileSystem.readText("/proc/net/ip_tables_names"), !names.isEmpty {
            legacy = "; legacy iptables tables exist (\(names.split(separator: "\n").joined(separator: ","))): their FORWARD policy is not visible to cagent"
        }
        if drops.isEmpty {
            return DoctorCheck("other firewalls", legacy.isEmpty ? .ok : .warn,
                               "no other table drops forwarded traffic" + legacy,
                               remedy: legacy.isEmpty ? nil : "check `iptables -S FORWARD`; a DROP policy there blocks sandboxes")
        }
        let names = drops.map { "\($0.familyName) \($0.table) chain \($0.name)" }.joined(separator: ", ")
        return DoctorCheck("other firewalls", .warn,
                           "forward policy drop in \(names): traffic cagent allows would still be dropped" + legacy,
                           remedy: "allow the sandbox interfaces there, e.g. `iptables -I FORWARD -i cgs+ -j ACCEPT; iptables -I FORWARD -o cgs+ -j ACCEPT` (Docker: in DOCKER-USER)")
    }

    static func seccompNotify() -> DoctorCheck {
        switch cg_seccomp_user_notif_available() {
        case 1: return DoctorCheck("seccomp", .ok, "filters and user notification available")
        case 0: return DoctorCheck("seccomp", .warn, "no user notification: the seccomp tracer is unavailable",
                                   remedy: "Linux >= 5.0 for the seccomp learn-mode tracer")
        default: return DoctorCheck("seccomp", .fail, "seccomp(2) unavailable: \(String(cString: strerror(errno)))",
                                    remedy: "a kernel built with CONFIG_SECCOMP_FILTER", required: true)
        }
    }

    /// The sandbox's allowlist filter: it compiles, and the kernel has every action it returns.
    static func seccompFilter() -> DoctorCheck {
        do {
            let program = try SeccompCompiler.compile()
            let decided = SeccompPolicy.rules.count
            return DoctorCheck("seccomp filter", .ok,
                               "x86_64 allowlist: \(decided) of \(SyscallTable.entries.count) syscalls decided (up to #\(SyscallTable.highest)), \(program.instructions.count) BPF instructions; unknown -> ENOSYS, x32 -> EPERM, other arches -> kill")
        } catch {
            return DoctorCheck("seccomp filter", .fail, "\(error)", required: true)
        }
    }

    static func landlock() -> DoctorCheck {
        let abi = cg_landlock_abi_version()
        if abi >= 1 {
            let (_, notices) = LandlockRuleset.forView(readOnly: [], readWrite: []).adapted(toABI: Int(abi))
            if notices.isEmpty {
                return DoctorCheck("landlock", .ok, "ABI \(abi): filesystem rights incl. device ioctls, signal and abstract-socket scoping")
            }
            return DoctorCheck("landlock", .warn, "ABI \(abi), degraded: " + notices.joined(separator: "; "),
                               remedy: "a newer kernel (ABI 6, Linux 6.12+) for the full Landlock layer")
        }
        return DoctorCheck("landlock", .warn, "not available (\(String(cString: strerror(errno)))): one layer fewer",
                           remedy: "boot with lsm=...,landlock on a kernel >= 5.13")
    }

    /// Which limits hold here: the session's cgroups where the pids and memory controllers are mounted (found
    /// through /proc/self/mountinfo, wherever that is) and writable, otherwise the rlimit fallback of
    /// SessionLimits (what `enforce` then uses, with a notice).
    static func cgroups() -> DoctorCheck {
        let layout = CgroupLayout.detect()
        let d = ResourceLimits.defaults
        let fallback = "enforce holds the limits with rlimits: RLIMIT_NPROC (\(d.processes) processes, counted in the sandbox's user namespace) and RLIMIT_DATA per process (\(d.memoryBytes >> 20) MiB, not the session's total)"
        var missing: [String] = []
        if layout.pids == nil { missing.append("pids") }
        if layout.memory == nil { missing.append("memory") }
        if !missing.isEmpty {
            return DoctorCheck("limits", .warn, "no reachable \(missing.joined(separator: "/")) controller (\(layout.summary)): \(fallback)",
                               remedy: "mount the cgroup hierarchies (a fresh sysfs, as `ip netns exec` makes, has none), or run where the pids and memory controllers are mounted")
        }
        // The session's cgroup goes under cagent's own: that directory must be writable (root, or a delegation).
        let parents = [layout.pids, layout.memory].compactMap { $0 }.map { $0.mountPoint + ($0.ownPath == "/" ? "" : $0.ownPath) }
        if let closed = parents.first(where: { access($0, W_OK) != 0 }) {
            return DoctorCheck("limits", .warn, "cgroups (\(layout.summary)) but \(closed) is not writable for uid \(geteuid()): \(fallback)",
                               remedy: "run as root, or in a cgroup delegated to you (systemd: `systemd-run --user --scope -p Delegate=yes cagent ...`)")
        }
        return DoctorCheck("limits", .ok, "session cgroups: \(layout.summary)"
                           + "; default limits: \(d.processes) processes, \(d.memoryBytes >> 20) MiB, \(d.openFiles) open files")
    }

    /// What rootless mode (enforce as a plain user, or `--rootless`) has on this machine and what it lacks.
    static func rootless() -> DoctorCheck {
        var lacks: [String] = []
        if cg_probe_unshare(CG_CLONE_NEWUSER) != 0 { lacks.append("unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)") }
        let slirp = ["/usr/bin/slirp4netns", "/bin/slirp4netns"].first(where: { (path: String) in access(path, X_OK) == 0 })
        if slirp == nil { lacks.append("slirp4netns (apt-get install slirp4netns): without it only --offline") }
        let tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        if tun >= 0 { close(tun) } else if geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0 {
            lacks.append("/dev/net/tun for this user (\(String(cString: strerror(errno))); udev makes it 0666): without it only --offline")
        }
        // Which limits a rootless session gets: the session cgroup where this user may write one (a delegation), else rlimits.
        let limits = geteuid() != 0
            ? (cgroups().status == .ok ? "limits: a delegated cgroup (see \"limits\")" : "limits: rlimits, no writable cgroup (see \"limits\")")
            : "limits: rlimits unless the user has a delegated cgroup"
        let always = "\(limits); always without root: the shadow home is an unbounded directory (no loop device), learn traces with seccomp-notify (no eBPF)"
        if lacks.isEmpty {
            return DoctorCheck("rootless", .ok, "user namespaces, slirp4netns, /dev/net/tun: enforce and learn work as a plain user, online and offline, enforce with --publish and --proxy; \(always)")
        }
        return DoctorCheck("rootless", .warn, "lacks " + lacks.joined(separator: "; ") + "; \(always)",
                           remedy: "install the missing pieces as root once (scripts/install-deps.sh)")
    }

    /// The eBPF tracer uses raw tracepoints (no tracefs needed); tracefs is reported for other tools.
    static func ebpf() -> DoctorCheck {
        let btf = FileSystem.exists("/sys/kernel/btf/vmlinux")
        let tracefs = ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"].contains(where: FileSystem.isDirectory)
        let tracefsNote = tracefs ? "tracefs mounted"
            : "tracefs not mounted (cagent's raw tracepoints do not need it; bpftrace and Tracee do: `mount -t tracefs nodev /sys/kernel/tracing`)"
        guard btf else {
            return DoctorCheck("ebpf tracing", .warn, "no BTF (/sys/kernel/btf/vmlinux): the CO-RE tracer cannot relocate; \(tracefsNote)",
                               remedy: "a kernel with CONFIG_DEBUG_INFO_BTF; learn mode falls back to seccomp")
        }
        return DoctorCheck("ebpf tracing", .ok, "BTF present; \(tracefsNote)")
    }

    /// Which backend `cagent learn --tracer auto` picks here, and why.
    static func learnTracer(environment: [String: String]) -> DoctorCheck {
        let auto = TracerSelection.select(.auto, path: environment["PATH"])
        let tracee = FileSystem.which("tracee", path: environment["PATH"]).map { "; tracee at \($0) with --tracer tracee" } ?? ""
        switch auto.backend {
        case .ebpf?: return DoctorCheck("learn tracer", .ok, "auto picks ebpf: \(auto.reason)\(tracee)")
        case .seccomp?: return DoctorCheck("learn tracer", .warn, "auto picks seccomp: \(auto.reason)\(tracee)",
                                           remedy: "allow BPF (root with CAP_BPF and CAP_PERFMON, unprivileged BPF not needed) for exact results at lower cost")
        case .tracee?, nil: return DoctorCheck("learn tracer", .fail, auto.reason,
                                               remedy: "learn mode needs eBPF or seccomp user notification")
        }
    }

    static func tracee(environment: [String: String]) -> DoctorCheck {
        if let path = FileSystem.which("tracee", path: environment["PATH"]) {
            return DoctorCheck("tracee", .ok, "found at \(path)")
        }
        return DoctorCheck("tracee", .info, "not on PATH (optional: `cagent learn --tracer tracee`)")
    }

    static func stateDirectory(paths: CagentPaths) -> DoctorCheck {
        do {
            try makeDirectories(paths.runtime, mode: 0o700)
            if access(paths.runtime, W_OK) != 0 {
                return DoctorCheck("state", .fail, "\(paths.runtime) not writable", remedy: geteuid() == 0 ? "check the directory's owner and mode" : "set XDG_RUNTIME_DIR to a directory of yours", required: true)
            }
            return DoctorCheck("state", .ok, "runtime \(paths.runtime), data \(paths.data)")
        } catch {
            return DoctorCheck("state", .fail, "\(error)", remedy: "run as root", required: true)
        }
    }
}

/// Capability numbers to names, for messages.
enum CapabilityNames {
    static let names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
        "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]
    static func name(of cap: Int32) -> String { cap >= 0 && Int(cap) < names.count ? names[Int(cap)] : "cap\(cap)" }
}
