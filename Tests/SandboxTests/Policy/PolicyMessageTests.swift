import CShim
import CagentSandbox
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The flat policy message the supervisor sends to cagent-init, decoded by the C side the init uses.
@Suite("Policy message for cagent-init")
struct PolicyMessageTests {
    static let full = ProcessPolicy(
        cgroupProcs: ["/sys/fs/cgroup/pids/cagent-x/cgroup.procs"],
        rlimits: ResourceLimits.defaults.rlimits,
        landlock: LandlockRuleset.forView(readOnly: ["/usr", "/etc"], readWrite: ["/ws"]),
        seccomp: try! SeccompCompiler.compile())

    func decode(_ bytes: [UInt8]) -> (Int32, cg_policy_storage) {
        let storage = UnsafeMutablePointer<cg_policy_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        let rc = bytes.withUnsafeBytes { cg_policy_decode($0.baseAddress, UInt($0.count), storage) }
        return (rc, storage.pointee)
    }

    @Test("a message decodes to the same policy")
    func roundTrip() throws {
        let bytes = try Self.full.serialized()
        let storage = UnsafeMutablePointer<cg_policy_storage>.allocate(capacity: 1)
        defer { storage.deallocate() }
        try bytes.withUnsafeBytes { raw in
            #expect(cg_policy_decode(raw.baseAddress, UInt(raw.count), storage) == 0)
            let policy = storage.pointee.policy
            #expect(policy.cgroup_count == 1)
            #expect(String(cString: policy.cgroup_procs[0]!) == "/sys/fs/cgroup/pids/cagent-x/cgroup.procs")
            #expect(policy.rlimit_count == 2 && policy.rlimits[0].soft == 4096)
            let landlock = try #require(policy.landlock)
            #expect(landlock.pointee.abi == 7 && landlock.pointee.count == UInt32(Self.full.landlock!.rules.count))
            #expect(landlock.pointee.handled_fs == LandlockAccess.all(forABI: 7).rawValue)
            #expect(String(cString: landlock.pointee.paths[2]!) == "/ws")
            #expect(landlock.pointee.access[2] == LandlockAccess.readWrite.rawValue)
            #expect(policy.seccomp_count == UInt32(Self.full.seccomp!.instructions.count))
            let filter = UnsafeRawBufferPointer(start: policy.seccomp_filter, count: Int(policy.seccomp_count) * 8)
            #expect(Array(filter) == Self.full.seccomp!.bytes)
        }
    }

    @Test("malformed messages are refused: bad magic, truncated, trailing bytes, empty")
    func malformed() throws {
        let bytes = try Self.full.serialized()
        #expect(decode([]).0 == -EINVAL)
        #expect(decode(Array("CGP2".utf8) + bytes.dropFirst(4)).0 == -EINVAL)
        for cut in [5, 30, bytes.count / 2, bytes.count - 1] {
            #expect(decode(Array(bytes.prefix(cut))).0 == -EINVAL, "truncated at \(cut)")
        }
        #expect(decode(bytes + [0]).0 == -EINVAL)
        #expect(decode(try ProcessPolicy().serialized()).0 == 0)
    }

    @Test("forSandbox: filter, Landlock narrowed to the kernel with notices, rlimits; no cgroup paths")
    func forSandbox() throws {
        let (policy, notices) = try ProcessPolicy.forSandbox(limits: .defaults, readOnly: ["/usr"], readWrite: ["/ws"], kernelABI: 4)
        #expect(policy.seccomp != nil && policy.cgroupProcs.isEmpty && policy.rlimits.count == 2)
        #expect(policy.landlock?.abi == 4 && policy.landlock?.scoped == [])
        #expect(!notices.isEmpty)
        let (none, missing) = try ProcessPolicy.forSandbox(limits: .defaults, readOnly: [], readWrite: [], kernelABI: nil)
        #expect(none.landlock == nil && missing.count == 1)
    }
}
