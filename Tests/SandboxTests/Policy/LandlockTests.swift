import CagentCore
import CagentSandbox
import Netlab
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Landlock layer")
struct LandlockRulesetTests {
    @Test("rulesets narrow to the kernel's ABI, with a notice for every right or scope lost")
    func adaptation() {
        let view = LandlockRuleset.forView(readOnly: ["/usr"], readWrite: ["/ws"])
        let (v7, n7) = view.adapted(toABI: 7)
        #expect(n7.isEmpty)
        #expect(v7?.handled.contains(.ioctlDev) == true && v7?.scoped == [.abstractUnixSocket, .signal])
        let (v4, n4) = view.adapted(toABI: 4)
        #expect(v4?.handled.contains(.ioctlDev) == false && v4?.handled.contains(.truncate) == true)
        #expect(v4?.scoped == [])
        #expect(n4.contains { $0.contains("ioctl") } && n4.contains { $0.contains("scoping") })
        let (v1, n1) = view.adapted(toABI: 1)
        #expect(v1?.handled == LandlockAccess(rawValue: (1 << 13) - 1))
        #expect(n1.count == 4)
        let (none, n0) = view.adapted(toABI: 0)
        #expect(none == nil && n0.count == 1)
        #expect(v1?.rules.allSatisfy { LandlockAccess.all(forABI: 1).isSuperset(of: $0.access) } == true)
    }
}

/// Landlock on real processes; each assertion has its control without Landlock.
@Suite("Landlock layer: real processes", .serialized)
struct LandlockProcessTests {
    static let probe = #"""
    import errno, os, socket, sys
    work, outside, abstract, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    def attempt(name, fn):
        try:
            fn(); print("probe:%s ok" % name)
        except OSError as x:
            print("probe:%s %s" % (name, errno.errorcode.get(x.errno, x.errno)))
    attempt("write_work", lambda: open(os.path.join(work, "w.txt"), "w").write("x"))
    attempt("write_outside", lambda: open(os.path.join(outside, "o.txt"), "w").write("x"))
    attempt("read_etc", lambda: open("/etc/hostname").read())
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect("\0" + abstract); s.close()
    attempt("abstract_connect", connect)
    attempt("signal_outside", lambda: os.kill(target, 0))
    sys.stdout.flush()
    """#

    static let listener = #"""
    import socket, sys, time
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind("\0" + sys.argv[1]); s.listen(8)
    print("ready", flush=True); time.sleep(60)
    """#

    @Test("writes outside the view, host abstract sockets (H8) and signals to outside processes (H17) are refused",
          .enabled(if: Requirements.mayRun(root: true, tools: ["python3"]), "forks probes"))
    func enforcement() throws {
        try Requirements.root()
        let abi = try #require(LandlockRuleset.kernelABI(), "Landlock is not enabled on this kernel")
        #expect(abi >= 6, "scoping needs ABI 6; this kernel has \(abi)")
        let work = try PolicyProbe.temporaryDirectory(), outside = try PolicyProbe.temporaryDirectory()
        defer { PolicyProbe.removeTree(work); PolicyProbe.removeTree(outside) }
        // A host-side listener on an abstract socket, and a host process to signal: both outside the domain.
        let name = "cagent-ll-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let pipeFds = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
        defer { pipeFds.deallocate() }
        #expect(pipe(pipeFds) == 0)
        let host = try ProcessPolicy().spawn([PolicyProbe.python, "-c", Self.listener, name],
                                             environment: PolicyProbe.environment, stdout: pipeFds[1])
        close(pipeFds[1])
        defer { kill(host, SIGKILL); _ = ProcessPolicy.wait(host, timeout: 5); close(pipeFds[0]) }
        var ready = [UInt8](repeating: 0, count: 6)
        #expect(read(pipeFds[0], &ready, 6) == 6, "listener did not start")

        let argv = [PolicyProbe.python, "-c", Self.probe, work, outside, name, "\(host)"]
        let control = try PolicyProbe.run(argv, policy: ProcessPolicy()).answers
        #expect(control == ["write_work": "ok", "write_outside": "ok", "read_etc": "ok", "abstract_connect": "ok",
                            "signal_outside": "ok"], "control without Landlock: \(control)")
        unlink(outside + "/o.txt")

        let view = LandlockRuleset.forView(readOnly: ["/"], readWrite: [work]).adapted(toABI: abi).ruleset
        let inside = try PolicyProbe.run(argv, policy: ProcessPolicy(landlock: view)).answers
        #expect(inside["write_work"] == "ok")
        #expect(inside["read_etc"] == "ok")
        #expect(inside["write_outside"] == "EACCES", "\(inside)")
        #expect(inside["abstract_connect"] == "EPERM", "\(inside)")
        #expect(inside["signal_outside"] == "EPERM", "\(inside)")
        #expect(!FileSystem.exists(outside + "/o.txt"))
    }
}
