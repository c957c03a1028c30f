import CagentCore
import CagentSandbox
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A classic-BPF interpreter for the opcodes a seccomp filter uses: the compiled program is run over
/// every syscall number, as the kernel would run it.
struct BPFInterpreter {
    let program: [SockFilter]

    struct Fault: Error, CustomStringConvertible { var description: String }

    /// seccomp_data as the kernel lays it out: nr, arch, instruction pointer, six 64-bit args.
    static func data(arch: UInt32, nr: UInt32, args: [UInt64]) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: nr.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: arch.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt64(0)) { bytes += $0 }
        for i in 0..<6 { withUnsafeBytes(of: (i < args.count ? args[i] : 0).littleEndian) { bytes += $0 } }
        return bytes
    }

    func run(arch: UInt32, nr: UInt32, args: [UInt64] = []) throws -> UInt32 {
        let data = Self.data(arch: arch, nr: nr, args: args)
        var a: UInt32 = 0
        var pc = 0
        var steps = 0
        while pc < program.count {
            steps += 1
            if steps > 10_000 { throw Fault(description: "loop") }
            let ins = program[pc]
            pc += 1
            switch ins.code {
            case SockFilter.ldAbsWord:
                let off = Int(ins.k)
                guard off % 4 == 0, off + 4 <= data.count else { throw Fault(description: "bad load \(off)") }
                a = UInt32(data[off]) | UInt32(data[off + 1]) << 8 | UInt32(data[off + 2]) << 16 | UInt32(data[off + 3]) << 24
            case SockFilter.andK: a &= ins.k
            case SockFilter.ja: pc += Int(ins.k)
            case SockFilter.jeqK: pc += a == ins.k ? Int(ins.jt) : Int(ins.jf)
            case SockFilter.jgeK: pc += a >= ins.k ? Int(ins.jt) : Int(ins.jf)
            case SockFilter.jsetK: pc += a & ins.k != 0 ? Int(ins.jt) : Int(ins.jf)
            case SockFilter.retK: return ins.k
            default: throw Fault(description: "opcode 0x\(String(ins.code, radix: 16)) at \(pc - 1)")
            }
        }
        throw Fault(description: "fell off the end")
    }

    func action(arch: UInt32 = SyscallTable.auditArch, nr: UInt32, args: [UInt64] = []) throws -> SeccompAction {
        let value = try run(arch: arch, nr: nr, args: args)
        guard let action = SeccompAction(returnValue: value) else { throw Fault(description: "ret 0x\(String(value, radix: 16))") }
        return action
    }
}

@Suite("Seccomp policy: table walk")
struct SeccompTableTests {
    let program = try! SeccompCompiler.compile()
    var bpf: BPFInterpreter { BPFInterpreter(program: program.instructions) }
    static let archI386: UInt32 = 0x4000_0003
    static let archAArch64: UInt32 = 0xC000_00B7

    /// The filter sandboxes get is precompiled (SeccompPrecompiled.swift); it must be what the policy compiles
    /// to now — the interpreter walks below then check the policy itself.
    @Test("the precompiled filter is the policy's compilation")
    func precompiledIsThePolicy() throws {
        let fresh = try SeccompCompiler.compileFromPolicy()
        #expect(program == fresh, "SeccompPrecompiled.swift is stale: run scripts/gen-seccomp-program.sh")
        #expect(program.instructions.count > 100)
    }

    @Test("every syscall of the table has an explicit decision, and the policy names no unknown syscall")
    func everySyscallDecided() {
        let tableNames = Set(SyscallTable.entries.map(\.name))
        let undecided = SyscallTable.entries.filter { SeccompPolicy.rules[$0.name] == nil }.map(\.name)
        #expect(undecided.isEmpty, "no decision for: \(undecided)")
        let policyNames = SeccompPolicy.byCategory.flatMap { $0.2 }
        #expect(Set(policyNames).subtracting(tableNames).isEmpty, "policy names unknown syscalls")
        #expect(policyNames.count == Set(policyNames).count, "a syscall is listed twice")
        #expect(SyscallTable.entries.count == Set(SyscallTable.entries.map(\.number)).count)
        #expect(SyscallTable.highest >= 469)
    }

    @Test("compiled program fits the kernel's limit and starts with the arch check")
    func programShape() {
        #expect(program.instructions.count < SeccompProgram.maximumLength)
        #expect(program.instructions[0] == SockFilter(code: SockFilter.ldAbsWord, k: 4))
        #expect(program.instructions[1].k == SyscallTable.auditArch)
        #expect(program.bytes.count == program.instructions.count * 8)
    }

    @Test("BPF answer equals the intended answer for every number 0..1100, every x32 number and foreign arches")
    func tableWalk() throws {
        let mismatches = try Self.walk(bpf)
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20))")
    }

    @Test("the walk catches a corrupted program (one allow turned into ENOSYS)")
    func walkDetectsCorruption() throws {
        var corrupted = program.instructions
        let index = try #require(corrupted.lastIndex { $0.code == SockFilter.retK && $0.k == SeccompAction.allow.returnValue })
        corrupted[index].k = SeccompAction.errno(ENOSYS).returnValue
        #expect(try !Self.walk(BPFInterpreter(program: corrupted)).isEmpty)
    }

    static func walk(_ bpf: BPFInterpreter) throws -> [String] {
        var mismatches: [String] = []
        func check(_ arch: UInt32, _ nr: UInt32, _ args: [UInt64]) throws {
            let got = try bpf.action(arch: arch, nr: nr, args: args)
            let want = SeccompPolicy.intendedAction(arch: arch, number: nr, args: args)
            if got != want { mismatches.append("arch 0x\(String(arch, radix: 16)) nr \(nr) args \(args): bpf \(got), intended \(want)") }
        }
        let argSets: [[UInt64]] = [[], [UInt64.max, UInt64.max, UInt64.max], [1, 1, 1]]
        for nr in UInt32(0)...1100 {
            for args in argSets {
                try check(SyscallTable.auditArch, nr, args)
                try check(SyscallTable.auditArch, nr | SeccompPolicy.x32Bit, args)
            }
            try check(Self.archI386, nr, [])
            try check(Self.archAArch64, nr, [])
        }
        for nr in [UInt32(0x3FFF_FFFF), 0x7FFF_FFFF, 0xFFFF_FFFF] { try check(SyscallTable.auditArch, nr, []) }
        return mismatches
    }

    /// The list, written out independently of SeccompPolicy.
    @Test("the denials the issue names answer exactly as specified")
    func namedDenials() throws {
        let eperm: [String] = [
            "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
            "mount_setattr", "open_tree_attr", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
            "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
            "delete_module", "open_by_handle_at", "syslog", "reboot", "swapon", "swapoff", "process_vm_readv",
            "process_vm_writev",
        ]
        let enosys = ["clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"]
        let allowed = ["read", "write", "openat", "execve", "fork", "vfork", "wait4", "mmap", "futex", "rseq",
                       "getrandom", "statx", "pidfd_open", "close_range", "epoll_pwait2", "seccomp",
                       "landlock_restrict_self", "fchmodat2", "futex_waitv", "newfstatat", "prlimit64"]
        for name in eperm {
            let nr = try #require(SyscallTable.numbers[name], "\(name) missing from the table")
            #expect(try bpf.action(nr: UInt32(nr)) == .errno(EPERM), "\(name)")
        }
        for name in enosys {
            #expect(try bpf.action(nr: UInt32(SyscallTable.numbers[name]!)) == .errno(ENOSYS), "\(name)")
        }
        for name in allowed {
            #expect(try bpf.action(nr: UInt32(SyscallTable.numbers[name]!), args: [0, 0, 0]) == .allow, "\(name)")
        }
        // Unknown numbers (a gap in the table, and beyond the newest syscall): ENOSYS, so libraries fall back.
        #expect(try bpf.action(nr: 400) == .errno(ENOSYS))
        #expect(try bpf.action(nr: 470) == .errno(ENOSYS))
        #expect(try bpf.action(nr: 100_000) == .errno(ENOSYS))
        // x32 numbers and foreign arches.
        #expect(try bpf.action(nr: 0x4000_0000 | 39) == .errno(EPERM))
        #expect(try bpf.action(nr: 0x4000_0000 | 165) == .errno(EPERM))
        #expect(try bpf.action(arch: Self.archI386, nr: 20) == .killProcess)
    }

    @Test("argument checks: clone namespace flags, socket family/type, TIOCSTI/TIOCLINUX on the low 32 bits, ptrace of pid 1")
    func argumentChecks() throws {
        let clone = UInt32(SyscallTable.numbers["clone"]!), socket = UInt32(SyscallTable.numbers["socket"]!)
        let ioctl = UInt32(SyscallTable.numbers["ioctl"]!), ptrace = UInt32(SyscallTable.numbers["ptrace"]!)
        let threadFlags: UInt64 = 0x3D0F00   // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
        #expect(try bpf.action(nr: clone, args: [threadFlags]) == .allow)
        #expect(try bpf.action(nr: clone, args: [0x0120_0011]) == .allow)   // fork(): CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
        for ns: UInt64 in [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000] {
            #expect(try bpf.action(nr: clone, args: [ns | 17]) == .errno(EPERM), "clone ns flag 0x\(String(ns, radix: 16))")
        }
        #expect(try bpf.action(nr: clone, args: [0xFFFF_FFFF_0000_0011]) == .allow)   // the kernel ignores the high word
        let cloexec: UInt64 = 0x80000, nonblock: UInt64 = 0x800
        #expect(try bpf.action(nr: socket, args: [17, 3]) == .errno(EPERM))           // AF_PACKET SOCK_RAW
        #expect(try bpf.action(nr: socket, args: [17, 2]) == .errno(EPERM))           // AF_PACKET SOCK_DGRAM
        #expect(try bpf.action(nr: socket, args: [40, 1]) == .errno(EPERM))           // AF_VSOCK
        #expect(try bpf.action(nr: socket, args: [2, 3 | cloexec, 1]) == .errno(EPERM))   // AF_INET SOCK_RAW
        #expect(try bpf.action(nr: socket, args: [10, 3 | nonblock, 58]) == .errno(EPERM)) // AF_INET6 SOCK_RAW
        #expect(try bpf.action(nr: socket, args: [2, 10]) == .errno(EPERM))           // AF_INET SOCK_PACKET
        #expect(try bpf.action(nr: socket, args: [2, 1 | cloexec]) == .allow)         // TCP
        #expect(try bpf.action(nr: socket, args: [10, 2]) == .allow)                  // UDP v6
        #expect(try bpf.action(nr: socket, args: [1, 1]) == .allow)                   // AF_UNIX
        #expect(try bpf.action(nr: socket, args: [16, 3 | cloexec]) == .allow)        // AF_NETLINK SOCK_RAW (getaddrinfo)
        #expect(try bpf.action(nr: ioctl, args: [0, 0x5412]) == .errno(EPERM))
        #expect(try bpf.action(nr: ioctl, args: [0, 0x1_0000_5412]) == .errno(EPERM))
        #expect(try bpf.action(nr: ioctl, args: [0, 0xFFFF_FFFF_0000_5412]) == .errno(EPERM))
        #expect(try bpf.action(nr: ioctl, args: [0, 0x541C]) == .errno(EPERM))
        #expect(try bpf.action(nr: ioctl, args: [0, 0x8_0000_541C]) == .errno(EPERM))
        #expect(try bpf.action(nr: ioctl, args: [0, 0x5401]) == .allow)               // TCGETS
        #expect(try bpf.action(nr: ioctl, args: [0, 0x5413]) == .allow)               // TIOCGWINSZ
        #expect(try bpf.action(nr: ptrace, args: [16, 1]) == .errno(EPERM))           // PTRACE_ATTACH 1
        #expect(try bpf.action(nr: ptrace, args: [0x4206, 1]) == .errno(EPERM))       // PTRACE_SEIZE 1
        #expect(try bpf.action(nr: ptrace, args: [16, 2]) == .allow)
        #expect(try bpf.action(nr: ptrace, args: [0, 0]) == .allow)                   // PTRACE_TRACEME
    }
}

@Suite("Seccomp policy: generated table")
struct SyscallTableGenerationTests {
    @Test("SyscallTable.swift is what scripts/gen-syscall-table.sh generates from the installed kernel headers",
          .enabled(if: Requirements.isCI || FileSystem.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), "needs linux-libc-dev"))
    func tableIsCurrent() throws {
        // Under CI it runs (and fails when the headers are missing) instead of skipping silently.
        try #require(FileSystem.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), "needs linux-libc-dev (make deps installs it)")
        let parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        let root = parts.prefix(upTo: parts.lastIndex(of: "Tests")!).joined(separator: "/")
        let out = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(out) }
        let run = try PolicyProbe.run(["/bin/bash", root + "/scripts/gen-syscall-table.sh",
                                       "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", out + "/SyscallTable.swift"],
                                      policy: ProcessPolicy())
        #expect(run.termination == .exited(0), "\(run.output)")
        let generated = FileSystem.read(out + "/SyscallTable.swift")
        let committed = FileSystem.read(root + "/Sources/CagentSandbox/Policy/SyscallTable.swift")
        #expect(generated != nil && generated == committed, "regenerate with scripts/gen-syscall-table.sh")
    }
}
