import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter` (8 bytes, host byte order).
public struct SockFilter: Sendable, Equatable, CustomStringConvertible {
    public var code: UInt16
    public var jt: UInt8
    public var jf: UInt8
    public var k: UInt32

    public init(code: UInt16, jt: UInt8 = 0, jf: UInt8 = 0, k: UInt32 = 0) {
        self.code = code; self.jt = jt; self.jf = jf; self.k = k
    }

    // Opcodes used here (linux/filter.h, linux/bpf_common.h).
    public static let ldAbsWord: UInt16 = 0x20   // BPF_LD | BPF_W | BPF_ABS
    public static let andK: UInt16 = 0x54        // BPF_ALU | BPF_AND | BPF_K
    public static let ja: UInt16 = 0x05          // BPF_JMP | BPF_JA
    public static let jeqK: UInt16 = 0x15        // BPF_JMP | BPF_JEQ | BPF_K
    public static let jgeK: UInt16 = 0x35        // BPF_JMP | BPF_JGE | BPF_K
    public static let jsetK: UInt16 = 0x45       // BPF_JMP | BPF_JSET | BPF_K
    public static let retK: UInt16 = 0x06        // BPF_RET | BPF_K

    public var description: String {
        "{ 0x\(String(code, radix: 16)), \(jt), \(jf), 0x\(String(k, radix: 16)) }"
    }
}

/// Offsets into `struct seccomp_data` (nr, arch, instruction_pointer, args[6]); arguments are read by their
/// low 32-bit word (x86_64 is little-endian), which is all the kernel uses of an int argument.
public enum SeccompData {
    public static let nr: UInt32 = 0
    public static let arch: UInt32 = 4
    public static func argLow(_ index: Int) -> UInt32 { 16 + UInt32(index) * 8 }
}

/// A compiled filter: the instructions and the bytes `cg_seccomp_install` takes.
public struct SeccompProgram: Sendable, Equatable {
    public var instructions: [SockFilter]

    /// The kernel refuses programs longer than BPF_MAXINSNS.
    public static let maximumLength = 4096

    /// `struct sock_filter[]` in memory order, ready for the C installer (or a pipe to cagent-init).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(instructions.count * 8)
        for ins in instructions {
            withUnsafeBytes(of: ins.code.littleEndian) { out += $0 }
            out.append(ins.jt); out.append(ins.jf)
            withUnsafeBytes(of: ins.k.littleEndian) { out += $0 }
        }
        return out
    }
}

/// Compiles `SeccompPolicy` into classic BPF, once, in the supervisor: the arch check first (kill on any other
/// arch), then the x32 check, then a binary search over syscall-number ranges whose leaves return an action or
/// run a small argument check. Every block ends in a return, so blocks never fall into each other.
public enum SeccompCompiler {
    public static func compile() throws -> SeccompProgram {
        var program: [SockFilter] = [
            SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.arch),
            SockFilter(code: SockFilter.jeqK, jt: 1, jf: 0, k: SyscallTable.auditArch),
            SockFilter(code: SockFilter.retK, k: SeccompPolicy.foreignArchAction.returnValue),
            SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.nr),
            SockFilter(code: SockFilter.jgeK, jt: 0, jf: 1, k: SeccompPolicy.x32Bit),
            SockFilter(code: SockFilter.retK, k: SeccompPolicy.x32Action.returnValue),
        ]
        program += emit(tree(over: ranges()))
        guard program.count <= SeccompProgram.maximumLength else {
            throw CagentError(stage: "seccomp: compile",
                              "filter has \(program.count) instructions, more than the kernel's \(SeccompProgram.maximumLength)")
        }
        return SeccompProgram(instructions: program)
    }

    /// What one syscall-number range leads to.
    enum Leaf: Equatable {
        case action(SeccompAction)
        case check(ArgumentCheck)
    }

    struct Range: Equatable {
        var first: UInt32
        var leaf: Leaf
    }

    indirect enum Node {
        case leaf(Leaf)
        /// nr < pivot goes to `below`, nr >= pivot to `above`.
        case split(pivot: UInt32, below: Node, above: Node)
    }

    /// Consecutive syscall numbers with the same answer, merged; the last range runs up to the x32 bit.
    static func ranges() -> [Range] {
        var result: [Range] = []
        for number in 0...(SyscallTable.highest + 1) {
            let leaf: Leaf
            switch number > SyscallTable.highest ? nil : SeccompPolicy.rule(for: number) {
            case nil: leaf = .action(SeccompPolicy.unknownAction)
            case .allow?: leaf = .action(.allow)
            case .deny(let code)?: leaf = .action(.errno(code))
            case .allowUnless(let check)?: leaf = .check(check)
            }
            // A check covers exactly one syscall; never merge two of them.
            if let last = result.last, last.leaf == leaf, case .action = leaf { continue }
            result.append(Range(first: UInt32(number), leaf: leaf))
        }
        return result
    }

    static func tree(over ranges: [Range]) -> Node {
        if ranges.count == 1 { return .leaf(ranges[0].leaf) }
        let middle = ranges.count / 2
        return .split(pivot: ranges[middle].first,
                      below: tree(over: Array(ranges[..<middle])),
                      above: tree(over: Array(ranges[middle...])))
    }

    static func emit(_ node: Node) -> [SockFilter] {
        switch node {
        case .leaf(.action(let action)):
            return [ret(action)]
        case .leaf(.check(let check)):
            return emit(check)
        case .split(let pivot, let below, let above):
            let low = emit(below), high = emit(above)
            if low.count <= Int(UInt8.max) {
                return [SockFilter(code: SockFilter.jgeK, jt: UInt8(low.count), jf: 0, k: pivot)] + low + high
            }
            // Conditional jumps reach 255 instructions at most; a JA (32-bit offset) skips a long branch.
            return [SockFilter(code: SockFilter.jgeK, jt: 0, jf: 1, k: pivot),
                    SockFilter(code: SockFilter.ja, k: UInt32(low.count))] + low + high
        }
    }

    static func ret(_ action: SeccompAction) -> SockFilter {
        SockFilter(code: SockFilter.retK, k: action.returnValue)
    }

    /// The argument checks; each block loads what it needs and returns.
    static func emit(_ check: ArgumentCheck) -> [SockFilter] {
        let allow = ret(.allow), deny = ret(.errno(EPERM))
        switch check {
        case .cloneNamespaceFlags:
            return [
                SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.argLow(0)),
                SockFilter(code: SockFilter.jsetK, jt: 0, jf: 1, k: SeccompPolicy.cloneNamespaceMask),
                deny, allow,
            ]
        case .socketFamilyAndType:
            return [
                SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.argLow(0)),              // 0 family
                SockFilter(code: SockFilter.jeqK, jt: 8, jf: 0, k: SeccompPolicy.afPacket),     // 1 -> 10
                SockFilter(code: SockFilter.jeqK, jt: 7, jf: 0, k: SeccompPolicy.afVsock),      // 2 -> 10
                SockFilter(code: SockFilter.jeqK, jt: 1, jf: 0, k: SeccompPolicy.afInet),       // 3 -> 5
                SockFilter(code: SockFilter.jeqK, jt: 0, jf: 4, k: SeccompPolicy.afInet6),      // 4 -> 5 / 9
                SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.argLow(1)),              // 5 type
                SockFilter(code: SockFilter.andK, k: SeccompPolicy.sockTypeMask),              // 6 drop flags
                SockFilter(code: SockFilter.jeqK, jt: 2, jf: 0, k: SeccompPolicy.sockRaw),      // 7 -> 10
                SockFilter(code: SockFilter.jeqK, jt: 1, jf: 0, k: SeccompPolicy.sockPacket),   // 8 -> 10
                allow,                                                                         // 9
                deny,                                                                          // 10
            ]
        case .terminalInjection:
            return [
                SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.argLow(1)),              // low word only
                SockFilter(code: SockFilter.jeqK, jt: 2, jf: 0, k: SeccompPolicy.tiocsti),
                SockFilter(code: SockFilter.jeqK, jt: 1, jf: 0, k: SeccompPolicy.tioclinux),
                allow, deny,
            ]
        case .ptraceOfInit:
            return [
                SockFilter(code: SockFilter.ldAbsWord, k: SeccompData.argLow(1)),
                SockFilter(code: SockFilter.jeqK, jt: 1, jf: 0, k: 1),
                allow, deny,
            ]
        }
    }
}

