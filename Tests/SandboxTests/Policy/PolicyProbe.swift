import CagentCore
import CagentSandbox
#if canImport(Glibc)
import Glibc
#endif

/// Runs a real command under a real ProcessPolicy and collects what it printed (stdout and stderr).
enum PolicyProbe {
    struct Result {
        var termination: ProcessPolicy.Termination
        var output: String
        /// `name result` lines printed by the Python probe.
        var answers: [String: String] {
            var map: [String: String] = [:]
            for line in output.split(separator: "\n") {
                let f = line.split(separator: " ", maxSplits: 1)
                if f.count == 2, f[0].hasPrefix("probe:") { map[String(f[0].dropFirst(6))] = String(f[1]) }
            }
            return map
        }
    }

    static let python = "/usr/bin/python3"
    static let environment = ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"]

    /// The compiled filter, once.
    static let filter: SeccompProgram = try! SeccompCompiler.compile()

    static func run(_ argv: [String], policy: ProcessPolicy, flags: ProcessPolicy.SpawnFlags = [],
                    stdin: Int32 = -1, timeout: Double = 60) throws -> Result {
        var template = Array("/tmp/cagent-probe-out-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw CagentError.system("probe", "mkstemp") }
        let path = PolicyProbe.string(template)
        defer { close(fd); unlink(path) }
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devnull) }
        let pid = try policy.spawn(argv, environment: environment, stdin: stdin >= 0 ? stdin : devnull,
                                   stdout: fd, stderr: fd, flags: flags)
        let termination = ProcessPolicy.wait(pid, timeout: timeout)
        let bytes = FileSystem.read(path) ?? []
        return Result(termination: termination, output: String(decoding: bytes, as: UTF8.self))
    }

    /// Runs the Python probe script with the given probe names, under `policy`.
    static func python(_ probes: [String], policy: ProcessPolicy, flags: ProcessPolicy.SpawnFlags = [],
                       extra: [String] = []) throws -> Result {
        try run([python, "-c", script] + extra + ["--"] + probes, policy: policy, flags: flags)
    }

    /// A temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/cagent-policy-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw CagentError.system("probe", "mkdtemp")
        }
        return PolicyProbe.string(template)
    }

    /// A C string buffer (mkstemp/mkdtemp template) as a String.
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func removeTree(_ path: String) {
        _ = try? run(["/bin/rm", "-rf", path], policy: ProcessPolicy())
    }

    /// Each probe runs in a forked child (a probe that worked, such as unshare, must not change the next
    /// one's process) and prints `probe:<name> ok` or `probe:<name> <ERRNO name>`.
    static let script = #"""
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    conv = [a if not isinstance(a, int) else ctypes.c_long(a) for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *conv)
    return r, ctypes.get_errno()
def res(r, e):
    return "ok" if r >= 0 else errno.errorcode.get(e, str(e))
def sock(family, kind, proto=0):
    try:
        socket.socket(family, kind, proto).close(); return "ok"
    except OSError as x:
        return errno.errorcode.get(x.errno, str(x.errno))
args = sys.argv[1:]
extra = args[:args.index("--")]; probes = args[args.index("--") + 1:]
mnt = extra[0] if extra else "/nonexistent"
def clone_ns():
    r, e = sc(56, 0x10000000 | 17, 0, 0, 0, 0)
    if r == 0: os._exit(0)
    if r > 0: os.waitpid(r, 0)
    return res(r, e)
def vm_read():
    buf = ctypes.create_string_buffer(8); src = ctypes.create_string_buffer(b"cagent!")
    class iovec(ctypes.Structure): _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    local = iovec(ctypes.addressof(buf), 8); remote = iovec(ctypes.addressof(src), 8)
    return res(*sc(310, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
def tiocsti(request):
    master, slave = os.openpty()
    c = ctypes.c_char(b"x")
    return res(*sc(16, slave, request, ctypes.byref(c)))
def ptrace_init():
    # PTRACE_SEIZE attaches without stopping pid 1; exiting detaches.
    return res(*sc(101, 0x4206, 1, 0, 0))
b = ctypes.c_char_p
P = {
    "mount": lambda: res(*sc(165, b(b"none"), b(mnt.encode()), b(b"tmpfs"), 0, 0)),
    "mount_cgroup_v1": lambda: res(*sc(165, b(b"cgroup"), b(mnt.encode()), b(b"cgroup"), 0, b(b"none,name=cagentprobe"))),
    "umount2": lambda: res(*sc(166, b(b"/nonexistent"), 0)),
    "pivot_root": lambda: res(*sc(155, b(b"/nonexistent"), b(b"/nonexistent"))),
    "open_tree": lambda: res(*sc(428, -100, b(b"/"), 0)),
    "move_mount": lambda: res(*sc(429, -1, b(b""), -1, b(b""), 0)),
    "fsopen": lambda: res(*sc(430, b(b"tmpfs"), 0)),
    "fsconfig": lambda: res(*sc(431, -1, 0, 0, 0, 0)),
    "fsmount": lambda: res(*sc(432, -1, 0, 0)),
    "fspick": lambda: res(*sc(433, -100, b(b"/"), 0)),
    "mount_setattr": lambda: res(*sc(442, -1, b(b""), 0, 0, 0)),
    "open_tree_attr": lambda: res(*sc(467, -100, b(b"/"), 0, 0, 0)),
    "unshare_user": lambda: res(*sc(272, 0x10000000)),
    "unshare_mount": lambda: res(*sc(272, 0x00020000)),
    "setns": lambda: res(*sc(308, -1, 0)),
    "clone_newuser": clone_ns,
    "clone3": lambda: res(*sc(435, 0, 0)),
    "keyctl": lambda: res(*sc(250, 0, -3, 0)),
    "add_key": lambda: res(*sc(248, b(b"cagent_none"), b(b"cagent"), 0, 0, -3)),
    "request_key": lambda: res(*sc(249, b(b"user"), b(b"cagent-none"), 0, 0)),
    "bpf": lambda: res(*sc(321, 0xffff, 0, 0)),
    "perf_event_open": lambda: res(*sc(298, 0, 0, -1, -1, 0)),
    "userfaultfd": lambda: res(*sc(323, 0)),
    "syslog": lambda: res(*sc(103, 10, 0, 0)),
    "reboot": lambda: res(*sc(169, 0, 0, 0, 0)),
    "swapoff": lambda: res(*sc(168, b(b"/nonexistent"))),
    "init_module": lambda: res(*sc(175, 0, 0, b(b""))),
    "delete_module": lambda: res(*sc(176, b(b"cagent_none"), 0)),
    "open_by_handle_at": lambda: res(*sc(304, -1, 0, 0)),
    "process_vm_readv": vm_read,
    "io_uring_setup": lambda: res(*sc(425, 1, 0)),
    "af_packet": lambda: sock(17, socket.SOCK_RAW),
    "af_packet_dgram": lambda: sock(17, socket.SOCK_DGRAM),
    "raw_inet": lambda: sock(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 1),
    "raw_inet6": lambda: sock(socket.AF_INET6, socket.SOCK_RAW, 58),
    "af_vsock": lambda: sock(40, socket.SOCK_STREAM),
    "tcp": lambda: sock(socket.AF_INET, socket.SOCK_STREAM),
    "netlink_raw": lambda: sock(16, socket.SOCK_RAW),
    "tiocsti": lambda: tiocsti(0x5412),
    "tiocsti_high": lambda: tiocsti(0x1_0000_5412),
    "tioclinux_high": lambda: tiocsti(0x8_0000_541C),
    "x32_getpid": lambda: res(*sc(0x40000000 | 39)),
    "x32_mount": lambda: res(*sc(0x40000000 | 165, b(b"none"), b(mnt.encode()), b(b"tmpfs"), 0, 0)),
    "ptrace_init": ptrace_init,
    "unknown_470": lambda: res(*sc(470)),
}
for name in probes:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = P[name]()
        except Exception as x:
            out = "exception:" + type(x).__name__
        os.write(w, out.encode()); os._exit(0)
    os.close(w)
    out = os.read(r, 200).decode() or "no-answer"
    os.close(r); os.waitpid(pid, 0)
    print("probe:%s %s" % (name, out), flush=True)
"""#
}
