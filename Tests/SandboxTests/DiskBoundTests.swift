import CShim
import CagentCore
import CagentProfile
@testable import CagentSandbox
import Foundation
import Netlab
import Testing

/// Issue #12 section 6: the agent must not fill the host's disk through what cagent owns. The agent tries
/// to write past the profile's bound into the shadow home (enforce), /tmp, and the scratch layer (learn);
/// each write must stop with ENOSPC at the bound while the host loses no more than the bound. A write
/// below the bound succeeds in the same run (positive control).
@Suite(.serialized) struct DiskBoundTests {
    static let bound: UInt64 = 32 << 20
    static let profile = Profile(agent: "disk-test", limits: Limits(tmpBytes: 16 << 20, diskBytes: bound))

    /// Writes `small` MiB (must fit) then `large` MiB (must not) into `directory`, printing what happened.
    static func script(_ directory: String, small: Int, large: Int) -> String {
        """
        cd "\(directory)" || { echo NO-DIR; exit 3; }
        dd if=/dev/zero of=small bs=1M count=\(small) status=none && echo SMALL-OK
        [ -s small ] && echo SMALL-PRESENT
        rm -f small
        fallocate -l \(large)M fallocated 2>&1 && echo FALLOCATE-FIT
        rm -f fallocated
        dd if=/dev/zero of=filled bs=1M count=\(large) status=none 2>&1 && echo DD-FIT
        echo PROBE-DONE
        """
    }

    /// Bytes the host's disk gave a file (a sparse image: what the agent wrote into it, plus metadata).
    static func allocated(_ path: String) -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return UInt64(info.st_blocks) * 512
    }

    /// The dd that hit the bound left its partial file: the image holds about the bound, never more.
    /// (The host's free space is not compared: other processes write to the same disk meanwhile.)
    static func checkImage(_ image: String, _ what: String) {
        let used = allocated(image)
        #expect(used <= bound, "\(what): the image takes \(used >> 20) MiB of the host's disk, more than the bound")
        #expect(used >= bound / 2, "\(what): the image holds \(used >> 20) MiB: the write did not land in it")
    }

    /// Loop devices whose backing file lies under `path` (none may remain after a session).
    static func loopDevices(backing path: String) -> [String] {
        FileSystem.list("/sys/block").filter { $0.hasPrefix("loop") }.filter {
            (FileSystem.readText("/sys/block/\($0)/loop/backing_file") ?? "").hasPrefix(path)
        }
    }

    static func check(_ outcome: SandboxFixture.Outcome, _ what: String) {
        #expect(outcome.output.contains("PROBE-DONE"), "\(what): the probe did not run: \(outcome.output) \(outcome.error)")
        #expect(outcome.output.contains("SMALL-OK") && outcome.output.contains("SMALL-PRESENT"),
                "\(what): a write below the bound failed: \(outcome.output)")
        #expect(!outcome.output.contains("FALLOCATE-FIT"), "\(what): fallocate past the bound succeeded: \(outcome.output)")
        #expect(!outcome.output.contains("DD-FIT"), "\(what): dd past the bound succeeded: \(outcome.output)")
        #expect(outcome.output.contains("No space left on device") || outcome.output.contains("Disk quota exceeded"),
                "\(what): no ENOSPC/EDQUOT: \(outcome.output)")
    }

    @Test("enforce: the shadow home and /tmp stop at the profile's bound (ENOSPC), the host keeps its space",
          .enabled(if: Requirements.mayRun(root: true, tools: ["fallocate", "dd"]), "needs root"))
    func enforceHomeAndTmp() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let home = try fixture.sh(Self.script("$HOME", small: 4, large: 48), profile: Self.profile)
        Self.check(home, "shadow home")
        Self.checkImage(ShadowHome.path(paths: fixture.paths, agent: Self.profile.agent), "shadow home")
        let tmp = try fixture.sh(Self.script("/tmp", small: 4, large: 24), profile: Self.profile)
        Self.check(tmp, "/tmp")
        #expect(Self.loopDevices(backing: fixture.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: fixture.root).isEmpty, "a mount was left behind")
    }

    @Test("learn: the scratch layer stops at the profile's bound (ENOSPC), the host keeps its space",
          .enabled(if: Requirements.mayRun(root: true, tools: ["fallocate", "dd"]), "needs root"))
    func learnScratch() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        var request = LearnRequest(profile: Self.profile, workspace: fixture.workspace, user: fixture.user,
                                   paths: fixture.paths, command: ["/bin/sh", "-c", Self.script("$HOME", small: 4, large: 48)],
                                   environment: ["PATH": "/usr/bin:/bin"], sessionID: SessionID.new())
        request.tmpBytes = 16 << 20
        let plan = try LearnPlanner.plan(request)
        let outcome = try fixture.run(plan)
        Self.check(outcome, "learn scratch")
        // The write really went to the scratch layer: not into the host's home.
        #expect(!FileSystem.exists(fixture.home + "/small") && !FileSystem.exists(fixture.home + "/filled"))
        Self.checkImage(request.scratch, "learn scratch")
        #expect(Self.loopDevices(backing: fixture.root).isEmpty, "a loop device was left behind")
        #expect(hostMounts(under: fixture.root).isEmpty, "a mount was left behind")
    }
}

/// The image's own rules: created root's and sparse, grown when the bound grows, never mounted twice (a
/// second session shares the filesystem), refused when it is not cagent's.
@Suite(.serialized) struct DiskVolumeTests {
    static func spec(_ image: String, _ size: UInt64) -> SandboxPlan.VolumeSpec {
        .init(image: image, sizeBytes: size, journal: true, directories: [.init(path: "a/b", mode: 0o750)], purpose: "test volume")
    }

    static func size(of fd: Int32) -> UInt64 {
        var info = statvfs()
        guard fstatvfs(fd, &info) == 0 else { return 0 }
        return UInt64(info.f_blocks) * UInt64(info.f_frsize)
    }

    @Test("an image is created root's and sparse, grows with the bound, is shared but never mounted twice, and a foreign one is refused",
          .enabled(if: Requirements.mayRun(root: true), "needs root: loop devices"))
    func imageRules() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let image = fixture.state + "/v.img"
        try fixture.makeDirectory(fixture.state)
        do {
            let volume = try DiskVolume(Self.spec(image, 16 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { volume.close() }
            var info = stat()
            #expect(stat(image, &info) == 0 && info.st_uid == 0 && info.st_mode & 0o777 == 0o600 && info.st_size == 16 << 20)
            #expect(UInt64(info.st_blocks) * 512 < 16 << 20, "the image is not sparse")
            // The volume's root and the directories made in it are the user's.
            #expect(fstatat(volume.mountFD, "a/b", &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_uid == fixture.user.uid
                    && info.st_mode & 0o777 == 0o750)
            #expect(fstat(volume.mountFD, &info) == 0 && info.st_uid == fixture.user.uid)
            let small = Self.size(of: volume.mountFD)
            #expect(small > 8 << 20 && small <= 16 << 20, "\(small)")
            // A second session of the same image shares the first one's filesystem (the same superblock, one
            // loop device): the image is never mounted twice, and each sees what the other writes.
            let second = try DiskVolume(Self.spec(image, 16 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { second.close() }
            #expect(!volume.shared && second.shared)
            var first = stat(), other = stat()
            #expect(fstat(volume.mountFD, &first) == 0 && fstat(second.mountFD, &other) == 0 && first.st_dev == other.st_dev,
                    "two filesystems: \(first.st_dev) \(other.st_dev)")
            #expect(DiskBoundTests.loopDevices(backing: image).count == 1, "\(DiskBoundTests.loopDevices(backing: image))")
            let written = openat(volume.mountFD, "a/b/shared", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            #expect(written >= 0 && write(written, "x", 1) == 1)
            close(written)
            #expect(fstatat(second.mountFD, "a/b/shared", &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_size == 1)
            // A larger bound cannot grow an image in use: it keeps its size and says so.
            let grown = try DiskVolume(Self.spec(image, 48 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { grown.close() }
            #expect(grown.shared && Self.size(of: grown.mountFD) <= 16 << 20)
            #expect(grown.notices.contains { $0.contains("while another session") }, "\(grown.notices)")
        }
        // The image detaches when its last mount goes (a few milliseconds).
        for _ in 0..<100 where !DiskBoundTests.loopDevices(backing: image).isEmpty { usleep(20_000) }
        // A larger bound grows the filesystem (online resize); a smaller one keeps the size and says so.
        do {
            let volume = try DiskVolume(Self.spec(image, 48 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { volume.close() }
            #expect(Self.size(of: volume.mountFD) > 32 << 20, "did not grow: \(Self.size(of: volume.mountFD))")
            #expect(volume.notices.isEmpty, "\(volume.notices)")
        }
        do {
            let volume = try DiskVolume(Self.spec(image, 16 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { volume.close() }
            #expect(volume.notices.contains { $0.contains("does not shrink") }, "\(volume.notices)")
        }
        // Attached by hand (as `mount -o loop` does: no lock): cagent shares that filesystem, never attaches
        // the image a second time.
        do {
            for _ in 0..<100 where !DiskBoundTests.loopDevices(backing: image).isEmpty { usleep(20_000) }
            let raw = open(image, O_RDWR | O_CLOEXEC)
            var failed: UnsafePointer<CChar>?
            let byHand = cg_volume_mount(raw, &failed)
            close(raw)
            #expect(byHand >= 0, "positive control: the image attaches")
            defer { close(byHand) }
            let volume = try DiskVolume(Self.spec(image, 16 << 20), uid: fixture.user.uid, gid: fixture.user.gid)
            defer { volume.close() }
            var theirs = stat(), ours = stat()
            #expect(volume.shared && fstat(byHand, &theirs) == 0 && fstat(volume.mountFD, &ours) == 0 && theirs.st_dev == ours.st_dev)
            #expect(DiskBoundTests.loopDevices(backing: image).count == 1, "\(DiskBoundTests.loopDevices(backing: image))")
        }
        for _ in 0..<100 where !DiskBoundTests.loopDevices(backing: image).isEmpty { usleep(20_000) }
        // An image the user could have written (theirs, or group-readable) is never mounted.
        chown(image, fixture.user.uid, fixture.user.gid)
        #expect { _ = try DiskVolume(Self.spec(image, 16 << 20), uid: fixture.user.uid, gid: fixture.user.gid) } throws: {
            "\($0)".contains("is not cagent's image")
        }
        #expect(DiskBoundTests.loopDevices(backing: fixture.root).isEmpty, "a loop device was left behind")
    }

    @Test func enforcePlanMountsTheShadowHomeVolume() throws {
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let plan = try fixture.plan(["/bin/true"], profile: DiskBoundTests.profile)
        #expect(plan.steps.map(\.operation).contains(.volume(target: fixture.home)))
        #expect(plan.volume == .init(image: ShadowHome.path(paths: fixture.paths, agent: "disk-test"), sizeBytes: DiskBoundTests.bound,
                                     journal: true, purpose: "shadow home",
                                     seed: ShadowHome.legacyDirectory(paths: fixture.paths, agent: "disk-test")))
        #expect(!plan.steps.contains { if case .bind(_, fixture.home, _, _) = $0.operation { return true }; return false })
    }

    @Test("an older cagent's shadow-home directory is copied into the new image once; its links stay links",
          .enabled(if: Requirements.mayRun(root: true), "needs root: real sandboxes"))
    func legacyShadowHomeIsCopiedIn() throws {
        try Requirements.root()
        let fixture = try SandboxFixture()
        defer { fixture.remove() }
        let legacy = ShadowHome.legacyDirectory(paths: fixture.paths, agent: "test")
        try fixture.write(legacy + "/.agent/login", "kept-login\n")
        #expect(symlink("/etc/shadow", legacy + "/escape") == 0)
        let result = try fixture.sh("cat ~/.agent/login; readlink ~/escape")
        #expect(result.output.contains("kept-login"), "\(result.output) \(result.error)")
        #expect(result.output.contains("/etc/shadow"), "the link was not kept as a link: \(result.output)")
        try fixture.withShadowHome { home in
            var info = stat()
            #expect(fstatat(home, "escape", &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK)
            #expect(fstatat(home, ".agent/login", &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_uid == fixture.user.uid)
        }
        // Made once: a change to the old directory later is not copied again.
        try fixture.write(legacy + "/later", "x")
        #expect(!(try fixture.sh("ls -a ~").output.contains("later")))
    }
}
