#if canImport(Glibc)
import Glibc
#endif

/// What the filter answers for one system call.
package enum SeccompAction: Sendable, Equatable, CustomStringConvertible {
    case allow
    /// Fail the call with this errno; the process goes on.
    case errno(Int32)
    /// Kill the whole process (SIGSYS); only for a foreign architecture, where nothing can be trusted.
    case killProcess

    /// The SECCOMP_RET_* value the BPF program returns.
    package var returnValue: UInt32 {
        switch self {
        case .allow: return 0x7FFF_0000                                  // SECCOMP_RET_ALLOW
        case .errno(let code): return 0x0005_0000 | (UInt32(code) & 0xFFFF) // SECCOMP_RET_ERRNO | data
        case .killProcess: return 0x8000_0000                            // SECCOMP_RET_KILL_PROCESS
        }
    }

    package init?(returnValue: UInt32) {
        switch returnValue & 0xFFFF_0000 {
        case 0x7FFF_0000: self = .allow
        case 0x0005_0000: self = .errno(Int32(returnValue & 0xFFFF))
        case 0x8000_0000: self = .killProcess
        default: return nil
        }
    }

    package var description: String {
        switch self {
        case .allow: return "allow"
        case .errno(EPERM): return "EPERM"
        case .errno(ENOSYS): return "ENOSYS"
        case .errno(let code): return "errno \(code)"
        case .killProcess: return "kill"
        }
    }
}

/// A check on a syscall's register arguments. Seccomp sees registers only, never memory, so only integer
/// arguments can be checked; calls whose decisive input sits in memory (clone3) are refused instead.
package enum ArgumentCheck: String, Sendable, Equatable, CaseIterable {
    /// clone(flags, ...): EPERM when flags (low 32 bits; the kernel ignores the rest) ask for a new namespace.
    case cloneNamespaceFlags
    /// socket(family, type, ...): EPERM for AF_PACKET, AF_VSOCK, and raw or packet sockets of AF_INET/AF_INET6.
    case socketFamilyAndType
    /// ioctl(fd, request, ...): EPERM for TIOCSTI and TIOCLINUX, compared on the low 32 bits only, because the
    /// tty layer truncates the request to 32 bits (so `0x1_0000_5412` is TIOCSTI too).
    case terminalInjection
    /// ptrace(request, pid, ...): EPERM when pid is 1, the sandbox's init; the agent's own children stay traceable.
    case ptraceOfInit
}

/// The intended answer for one syscall.
package enum SyscallRule: Sendable, Equatable {
    case allow
    /// Allow unless the argument check matches; then EPERM.
    case allowUnless(ArgumentCheck)
    case deny(Int32)
}

/// Why a syscall gets its answer, for the policy table in docs/security.md.
package enum SyscallCategory: String, Sendable, CaseIterable {
    case files = "files and directories"
    case io = "reading, writing, polling"
    case memory = "memory"
    case process = "processes and threads"
    case signals = "signals"
    case time = "time and timers"
    case identity = "identity and credentials (inside the user namespace)"
    case ipc = "System V and POSIX IPC"
    case network = "sockets"
    case selfRestriction = "self-restriction (only narrows rights)"
    case namespaces = "mounts and namespaces (EPERM)"
    case kernelAdmin = "kernel and host administration (EPERM)"
    case inspection = "inspection of other processes and the kernel (EPERM)"
    case keys = "kernel keyrings (EPERM)"
    case bypass = "seccomp and tracing bypass (ENOSYS, so libraries fall back)"
    case obsolete = "obsolete or unimplemented (ENOSYS)"
}

/// The sandbox's seccomp policy: an allowlist over the whole x86_64 syscall table. Syscalls not named here
/// (including every number a newer kernel adds) answer ENOSYS, so libraries fall back to older calls.
package enum SeccompPolicy {
    /// Any syscall the table does not name, or the policy does not allow.
    package static let unknownAction: SeccompAction = .errno(ENOSYS)
    /// x32 ABI numbers (nr | 0x40000000) on the x86_64 arch: a second syscall table that a filter written for
    /// x86_64 numbers alone would let through.
    package static let x32Action: SeccompAction = .errno(EPERM)
    /// Any audit arch other than x86_64 (`int 0x80` enters as i386, with different numbers).
    package static let foreignArchAction: SeccompAction = .killProcess
    /// First x32 syscall number.
    package static let x32Bit: UInt32 = 0x4000_0000

    /// Namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET. CLONE_NEWTIME
    /// (0x80) is not among them: for clone(2) that bit is part of the exit signal, and NEWTIME needs clone3.
    package static let cloneNamespaceMask: UInt32 = 0x7E02_0000
    package static let afInet: UInt32 = 2, afInet6: UInt32 = 10, afPacket: UInt32 = 17, afVsock: UInt32 = 40
    package static let sockRaw: UInt32 = 3, sockPacket: UInt32 = 10, sockTypeMask: UInt32 = 0xF
    package static let tiocsti: UInt32 = 0x5412, tioclinux: UInt32 = 0x541C

    /// Every decision, by category. The order of the categories is the order of docs/security.md.
    package static let byCategory: [(SyscallCategory, SyscallRule, [String])] = [
        (.files, .allow, [
            "open", "openat", "openat2", "creat", "close", "close_range", "stat", "fstat", "lstat", "newfstatat",
            "statx", "access", "faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
            "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat",
            "symlink", "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown",
            "fchown", "lchown", "fchownat", "umask", "truncate", "ftruncate", "fallocate", "utime", "utimes",
            "futimesat", "utimensat", "mknod", "mknodat", "statfs", "fstatfs", "fcntl", "flock", "fsync",
            "fdatasync", "sync", "syncfs", "sync_file_range", "fadvise64", "readahead", "setxattr", "lsetxattr",
            "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
            "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "getxattrat", "listxattrat",
            "removexattrat", "file_getattr", "file_setattr", "name_to_handle_at", "inotify_init", "inotify_init1",
            "inotify_add_watch", "inotify_rm_watch", "memfd_create", "cachestat", "statmount", "listmount",
        ]),
        (.io, .allow, [
            "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
            "lseek", "pipe", "pipe2", "dup", "dup2", "dup3", "sendfile", "splice", "tee", "vmsplice",
            "copy_file_range", "select", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl",
            "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
            "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit", "io_cancel",
        ]),
        (.io, .allowUnless(.terminalInjection), ["ioctl"]),
        (.memory, .allow, [
            "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock", "mlock2",
            "munlock", "mlockall", "munlockall", "remap_file_pages", "membarrier", "pkey_mprotect", "pkey_alloc",
            "pkey_free", "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node", "mseal",
            "map_shadow_stack", "memfd_secret", "process_madvise", "process_mrelease",
        ]),
        (.process, .allow, [
            "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "getpid", "getppid",
            "gettid", "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_waitv",
            "futex_wake", "futex_wait", "futex_requeue", "sched_yield", "sched_setparam", "sched_getparam",
            "sched_setscheduler", "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
            "sched_rr_get_interval", "sched_setaffinity", "sched_getaffinity", "sched_setattr", "sched_getattr",
            "getpriority", "setpriority", "ioprio_get", "ioprio_set", "getcpu", "prctl", "arch_prctl",
            "set_thread_area", "get_thread_area", "personality", "rseq", "getrlimit", "setrlimit", "prlimit64",
            "getrusage", "times", "sysinfo", "uname", "restart_syscall", "pidfd_open", "pidfd_getfd",
            "pidfd_send_signal", "getrandom", "uretprobe", "uprobe", "lsm_get_self_attr", "lsm_list_modules",
        ]),
        (.process, .allowUnless(.cloneNamespaceFlags), ["clone"]),
        (.process, .allowUnless(.ptraceOfInit), ["ptrace"]),
        (.signals, .allow, [
            "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
            "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "kill", "tkill", "tgkill", "pause",
        ]),
        (.time, .allow, [
            "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "alarm",
            "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun",
            "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime", "adjtimex", "clock_adjtime",
        ]),
        (.identity, .allow, [
            "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid",
            "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "capget",
            "capset", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
        ]),
        (.ipc, .allow, [
            "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd",
            "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
            "mq_getsetattr",
        ]),
        (.network, .allow, [
            "socketpair", "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
            "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
            "recvmmsg",
        ]),
        (.network, .allowUnless(.socketFamilyAndType), ["socket"]),
        (.selfRestriction, .allow, [
            "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
        ]),
        (.namespaces, .deny(EPERM), [
            "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr", "move_mount", "fsopen",
            "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "open_by_handle_at",
            "quotactl", "quotactl_fd",
        ]),
        (.kernelAdmin, .deny(EPERM), [
            "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon",
            "swapoff", "syslog", "acct", "settimeofday", "clock_settime", "sethostname", "setdomainname", "iopl",
            "ioperm", "vhangup", "modify_ldt", "lsm_set_self_attr", "fanotify_init", "fanotify_mark",
            "migrate_pages", "move_pages",
        ]),
        (.inspection, .deny(EPERM), [
            "process_vm_readv", "process_vm_writev", "kcmp", "bpf", "perf_event_open", "userfaultfd",
        ]),
        (.keys, .deny(EPERM), ["keyctl", "add_key", "request_key"]),
        (.bypass, .deny(ENOSYS), ["clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"]),
        (.obsolete, .deny(ENOSYS), [
            "uselib", "ustat", "sysfs", "_sysctl", "create_module", "get_kernel_syms", "query_module",
            "nfsservctl", "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security", "lookup_dcookie",
            "epoll_ctl_old", "epoll_wait_old", "vserver",
        ]),
    ]

    /// Name to rule. A name listed twice is a bug the policy test catches.
    package static let rules: [String: SyscallRule] = {
        var table: [String: SyscallRule] = [:]
        for (_, rule, names) in byCategory { for name in names { table[name] = rule } }
        return table
    }()

    /// The rule for a syscall number of the x86_64 table; nil when the policy does not name it (ENOSYS).
    package static func rule(for number: Int32) -> SyscallRule? {
        guard let name = namesByNumber[number] else { return nil }
        return rules[name]
    }

    /// Syscall number to name (the compiler asks for every number: a linear search each time was
    /// quadratic on the start path).
    static let namesByNumber: [Int32: String] = {
        var table: [Int32: String] = [:]
        for entry in SyscallTable.entries { table[entry.number] = entry.name }
        return table
    }()

    /// The intended answer for one call, written as plainly as possible: the reference the compiled BPF
    /// program is checked against.
    package static func intendedAction(arch: UInt32, number: UInt32, args: [UInt64]) -> SeccompAction {
        guard arch == SyscallTable.auditArch else { return foreignArchAction }
        if number >= x32Bit { return x32Action }
        guard let rule = rule(for: Int32(bitPattern: number)) else { return unknownAction }
        switch rule {
        case .allow: return .allow
        case .deny(let code): return .errno(code)
        case .allowUnless(let check):
            return matches(check, args: args) ? .errno(EPERM) : .allow
        }
    }

    static func matches(_ check: ArgumentCheck, args: [UInt64]) -> Bool {
        func low(_ index: Int) -> UInt32 { index < args.count ? UInt32(truncatingIfNeeded: args[index]) : 0 }
        switch check {
        case .cloneNamespaceFlags:
            return low(0) & cloneNamespaceMask != 0
        case .socketFamilyAndType:
            let family = low(0), type = low(1) & sockTypeMask
            if family == afPacket || family == afVsock { return true }
            return (family == afInet || family == afInet6) && (type == sockRaw || type == sockPacket)
        case .terminalInjection:
            return low(1) == tiocsti || low(1) == tioclinux
        case .ptraceOfInit:
            return low(1) == 1
        }
    }
}
