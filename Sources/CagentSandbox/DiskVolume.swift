import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// A size-bounded filesystem for what cagent stores for the agent: an ext4 image of the profile's
/// `limits.disk`, loop-attached (AUTOCLEAR) and mounted *detached* (cg_volume.h), so the agent's writes stop
/// with ENOSPC at the bound instead of filling the host's disk. Why an image: the host's filesystem usually
/// has no project quota (ext4 needs `-O project,quota` and `prjquota`; docs/security.md "Disk"), and
/// nothing else bounds a directory. The image is sparse: it takes on disk what the agent wrote, never more
/// than its size.
///
/// The image is root's (0600, one link): the user who owns the state directory may delete it but cannot
/// write a crafted filesystem into it for the kernel to mount.
///
/// Concurrent sessions of one agent share the image's one filesystem: ext4 mounted twice (through two loop
/// devices) would corrupt it, so the first session attaches the image and every later one mounts the same
/// loop device again, which the kernel answers with the same superblock (`cg_volume_share`; a loop device
/// a user attached by hand is shared the same way). No mount is
/// kept in the host's namespace and nothing is left for a crash to strand: the filesystem and its loop
/// device go when the last session's sandbox and fds are gone.
// @unchecked: its fds (mount, image, loop device) are closed once by the owner.
package final class DiskVolume: @unchecked Sendable {
    package let image: String
    /// The volume's root as a detached mount (a directory fd): handed to cagent-init, or used host-side
    /// with *at() calls. -1 once closed.
    package private(set) var mountFD: Int32
    /// The image, open. When this session attached it, the fd holds the image's exclusive flock and is the
    /// loop device's backing file: the loop device keeps that open file, so the lock lasts exactly as long
    /// as the image is attached — until the last session sharing it has ended, whichever that is — and
    /// marks it as mounted for every later session (they share instead of attaching it again).
    private var imageFD: Int32
    /// True when another session had the image mounted and this one shares that filesystem.
    package private(set) var shared = false
    /// What the user should know (an image larger than the profile's bound keeps its size).
    package private(set) var notices: [String] = []

    package static let mkfsCandidates = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
    package static let resize2fsCandidates = ["/usr/sbin/resize2fs", "/sbin/resize2fs"]
    package static func mkfsPath() -> String? { mkfsCandidates.first { access($0, X_OK) == 0 } }

    /// Opens the image (creating and formatting it when missing, growing it offline with resize2fs when the
    /// bound grew) and mounts it, or shares the filesystem of a session that has it mounted.
    package init(_ spec: SandboxPlan.VolumeSpec, uid: UInt32, gid: UInt32) throws {
        image = spec.image
        mountFD = -1
        imageFD = -1
        let stage = "disk bound (\(spec.purpose))"
        let setup = try Self.lockDirectory(of: spec.image, stage: stage)
        defer { Glibc.close(setup) }
        var fd = open(spec.image, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            (fd, notices) = try Self.create(spec, uid: uid, gid: gid, stage: stage)
        }
        guard fd >= 0 else { throw CagentError.system(stage, "cannot open \(TerminalEscape.escape(spec.image))") }
        imageFD = fd
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(),
              info.st_nlink == 1, info.st_mode & 0o077 == 0 else {
            close()
            throw CagentError(stage: stage, "\(TerminalEscape.escape(spec.image)) is not cagent's image (root's, mode 0600, one link)",
                              hint: "remove it; cagent creates a new one (what the agent kept in it is lost)")
        }
        let current = UInt64(info.st_size)
        if current > spec.sizeBytes {
            notices.append("the \(spec.purpose) keeps its \(current >> 20) MiB (limits.disk says \(spec.sizeBytes >> 20) MiB; an image does not shrink): remove \(TerminalEscape.escape(spec.image)) to start over")
        }
        // A loop device with the image attached: a session has it mounted (or a user attached it by hand),
        // share that filesystem. None and a free lock: nothing has it attached, this session attaches it.
        // None but the lock taken: the last session's loop device is detaching (a few milliseconds), wait.
        // The setup lock keeps other cagents out meanwhile.
        var mounted: Int32 = -1
        var failed: UnsafePointer<CChar>?
        for _ in 0..<50 {
            let locked = flock(fd, LOCK_EX | LOCK_NB) == 0
            mounted = cg_volume_share(fd, &failed)
            if mounted >= 0 {
                shared = true
                if locked { flock(fd, LOCK_UN) }   // not the loop device's file: its lock would mark nothing
                if current < spec.sizeBytes {
                    notices.append("the \(spec.purpose) keeps \(current >> 20) MiB while another session of this agent runs; it grows to \(spec.sizeBytes >> 20) MiB (limits.disk) at a start when none does")
                }
                break
            }
            guard errno == ENOENT else {
                let error = errno
                close()
                throw CagentError(stage: stage, error == EEXIST
                    ? "\(TerminalEscape.escape(spec.image)) is attached to two loop devices: mounting either could corrupt it"
                    : "cannot share the mounted \(TerminalEscape.escape(spec.image)) (\(failed.map { String(cString: $0) } ?? "mount"))",
                    errno: error == EEXIST ? nil : error,
                    hint: error == EEXIST ? "cagent attaches an image once; detach the other (`losetup -j IMAGE` lists them), then start again"
                                          : "end the other sessions of this agent and start again")
            }
            if locked {
                mounted = try mountAlone(spec, current: current, stage: stage)
                break
            }
            usleep(10_000)
        }
        guard mounted >= 0 else {
            close()
            throw CagentError(stage: stage, "\(TerminalEscape.escape(spec.image)) is locked, but no loop device has it attached",
                              hint: "another program holds a lock on it (`fuser -v` names it): end it, or use another agent name")
        }
        mountFD = mounted
        do {
            for directory in spec.directories { try makeDirectory(directory, uid: uid, gid: gid, stage: stage) }
        } catch { self.close(); throw error }
    }

    /// Grows the image when the bound grew (the image is locked: nobody has it mounted), then attaches and
    /// mounts it; the loop device keeps `imageFD`, and with it the lock.
    private func mountAlone(_ spec: SandboxPlan.VolumeSpec, current: UInt64, stage: String) throws -> Int32 {
        let grow = current < spec.sizeBytes
        if grow && ftruncate(imageFD, off_t(spec.sizeBytes)) != 0 {
            close()
            throw CagentError.system(stage, "cannot grow \(TerminalEscape.escape(spec.image)) to \(spec.sizeBytes >> 20) MiB")
        }
        if grow && current > 0 {
            let tool = Self.resize2fsCandidates.first { access($0, X_OK) == 0 }
            if tool == nil || cg_volume_resize(tool!, imageFD, -1) != 0 {
                // The file grew but the filesystem did not: it stays usable at its old size.
                notices.append("the \(spec.purpose) could not grow to \(spec.sizeBytes >> 20) MiB (resize2fs \(tool == nil ? "not found" : "failed")); it keeps \(current >> 20) MiB")
            }
        }
        var failed: UnsafePointer<CChar>?
        let mounted = cg_volume_mount(imageFD, &failed)
        guard mounted >= 0 else {
            close()
            let step = failed.map { String(cString: $0) } ?? "mount"
            throw CagentError.system(stage, "cannot mount \(TerminalEscape.escape(spec.image)) (\(step))",
                                     hint: step.hasPrefix("loop") ? "loop devices are needed to bound the disk (CONFIG_BLK_DEV_LOOP, /dev/loop-control): `cagent doctor`"
                                                                  : "the image may be damaged (e.g. by a host crash): `e2fsck -p \(TerminalEscape.escape(spec.image))`, or remove it (cagent recreates it)")
        }
        return mounted
    }

    /// Setting up the images of one directory is serialised (creating one, growing it, attaching it or
    /// sharing its mount), with an flock on the directory held until `init` returns: two sessions of a new
    /// agent must not both create its image, and a session must not find an image locked while the session
    /// attaching it is still growing or mounting it. A bounded wait: a start never hangs on a lock.
    private static func lockDirectory(of image: String, stage: String) throws -> Int32 {
        let directory = image.lastIndex(of: "/").map { String(image[..<$0]) } ?? "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | CG_O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CagentError.system(stage, "cannot open \(TerminalEscape.escape(directory))") }
        for _ in 0..<6000 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
            usleep(10_000)
        }
        Glibc.close(fd)
        throw CagentError(stage: stage, "another process has been holding \(TerminalEscape.escape(directory)) locked for a minute",
                          hint: "a cagent may be creating a large image there (an older shadow home copied in): start again when it is done")
    }

    /// Creates `<image>.new` (root's, 0600, sparse), formats it (filled from `spec.seed` when that is a
    /// directory; empty, with a notice, when the seed does not fit) and moves it into place; returns its fd.
    private static func create(_ spec: SandboxPlan.VolumeSpec, uid: UInt32, gid: UInt32, stage: String) throws -> (Int32, [String]) {
        guard let mkfs = mkfsPath() else {
            throw CagentError(stage: stage, "mkfs.ext4 not found (\(mkfsCandidates.joined(separator: ", ")))",
                              hint: "install e2fsprogs: cagent bounds the agent's disk use with an ext4 image")
        }
        let temporary = spec.image + ".new"
        unlink(temporary)   // a leftover of an interrupted creation (unlink never follows a link)
        let fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CagentError.system(stage, "cannot create \(TerminalEscape.escape(temporary))") }
        var notices: [String] = []
        var seeded = false
        var seedInfo = stat()
        if let seed = spec.seed, lstat(seed, &seedInfo) == 0, (seedInfo.st_mode & S_IFMT) == S_IFDIR {
            seeded = ftruncate(fd, off_t(spec.sizeBytes)) == 0 && cg_volume_format(mkfs, fd, uid, gid, journalMiB(spec), seed, -1) == 0
            notices.append(seeded
                ? "the \(spec.purpose) is now a bounded image (\(TerminalEscape.escape(spec.image)), limits.disk): \(TerminalEscape.escape(seed)) was copied into it and is no longer used (remove it when you no longer need it)"
                : "the \(spec.purpose) is now a bounded image (\(TerminalEscape.escape(spec.image)), limits.disk); \(TerminalEscape.escape(seed)) did not fit in \(spec.sizeBytes >> 20) MiB and was not copied: raise limits.disk and remove the image, or copy what the agent needs")
        }
        guard seeded || (ftruncate(fd, 0) == 0 && ftruncate(fd, off_t(spec.sizeBytes)) == 0
                         && cg_volume_format(mkfs, fd, uid, gid, journalMiB(spec), nil, -1) == 0),
              cg_rename_noreplace(temporary, spec.image) == 0 else {   // never over a file planted meanwhile
            let error = CagentError.system(stage, "cannot create the \(spec.sizeBytes >> 20) MiB image \(TerminalEscape.escape(spec.image)) with \(mkfs)")
            Glibc.close(fd); unlink(temporary)
            throw error
        }
        return (fd, notices)
    }

    /// 8 MiB of journal from 128 MiB up, ext4's minimum of 4 MiB from 16 MiB, none below (a tiny bound
    /// would lose too much of itself to it).
    static func journalMiB(_ spec: SandboxPlan.VolumeSpec) -> Int32 {
        guard spec.journal else { return 0 }
        return spec.sizeBytes >= 128 << 20 ? 8 : spec.sizeBytes >= 16 << 20 ? 4 : 0
    }

    /// A directory in the volume, created step by step without following any symlink, owned by the user.
    private func makeDirectory(_ directory: SandboxPlan.VolumeSpec.Directory, uid: UInt32, gid: UInt32, stage: String) throws {
        var parent = dup(mountFD)
        defer { Glibc.close(parent) }
        let parts = directory.path.split(separator: "/").map(String.init)
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            if mkdirat(parent, part, 0o700) == 0 {
                _ = fchownat(parent, part, uid, gid, AT_SYMLINK_NOFOLLOW)
                if last { _ = fchmodat(parent, part, mode_t(directory.mode), 0) }
            } else if errno != EEXIST {
                throw CagentError.system(stage, "cannot create \(TerminalEscape.escape(directory.path)) in the volume")
            }
            let next = cg_openat2(parent, part, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC, 0,
                                  CG_RESOLVE_NO_SYMLINKS | CG_RESOLVE_BENEATH)
            guard next >= 0 else { throw CagentError.system(stage, "cannot open \(TerminalEscape.escape(directory.path)) in the volume") }
            Glibc.close(parent)
            parent = next
        }
    }

    /// Our copy of the mount (after cagent-init got its own).
    package func releaseMount() {
        if mountFD >= 0 { Glibc.close(mountFD); mountFD = -1 }
    }

    package func close() {
        releaseMount()
        if imageFD >= 0 { Glibc.close(imageFD); imageFD = -1 }
    }

    deinit { close() }
}

/// A DiskVolume opened on its own thread while the caller does the rest of its start-up (the cgroups, the
/// store, the tracer): creating an image costs tens of milliseconds, mounting one a few. `Launcher.run`
/// takes it when the plan's volume is this one; one not taken is closed (nothing stays mounted).
package final class PendingVolume: Sendable {
    package let spec: SandboxPlan.VolumeSpec
    private let uid: UInt32, gid: UInt32
    /// nil: no thread could be started (resources exhausted); `take` opens it then, on the caller's thread.
    private let opening: ThreadWork<DiskVolume>?

    package init(_ spec: SandboxPlan.VolumeSpec, uid: UInt32, gid: UInt32) {
        self.spec = spec; self.uid = uid; self.gid = gid
        opening = try? ThreadWork.start(name: "cagent-volume") { try DiskVolume(spec, uid: uid, gid: gid) }
    }

    /// The opened volume, or the error that opening it gave. Call once.
    package func take() throws -> DiskVolume {
        if let outcome = opening?.join() { return try outcome.get() }
        return try DiskVolume(spec, uid: uid, gid: gid)
    }

    /// Waits for the thread and closes a volume nobody took (safe after `take`, and twice).
    package func discard() {
        if case .success(let volume)? = opening?.join() { volume.close() }
    }

    deinit { discard() }
}
