import CShim
import CagentCore
import CagentSandbox
#if canImport(Glibc)
import Glibc
#endif

/// Which disk bounds hold on this machine (issue #12 section 6): what cagent owns (shadow home, learn's
/// scratch) is an ext4 image of limits.disk; the workspace is the user's directory, bounded only by a
/// project quota of its filesystem.
enum DiskChecks {
    /// Really creates, mounts (detached) and removes a small image: loop devices, mkfs.ext4 and ext4 all work.
    static func volume() -> DoctorCheck {
        let limit = ResourceLimits.defaults.diskBytes >> 20
        if geteuid() != 0 {
            return DoctorCheck("disk bound", .info, "not root: rootless sessions keep the shadow home in a directory of yours, not bounded (a loop device needs root)")
        }
        var template = Array("/tmp/cagent-doctor-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            return DoctorCheck("disk bound", .warn, "cannot make a temporary directory to probe loop devices")
        }
        let directory = String(cString: made)
        let image = directory + "/probe.img"
        defer { unlink(image); unlink(image + ".new"); rmdir(directory) }
        do {
            let volume = try DiskVolume(.init(image: image, sizeBytes: 16 << 20, journal: false, purpose: "doctor probe"),
                                        uid: 0, gid: 0)
            volume.close()
            return DoctorCheck("disk bound", .ok,
                               "shadow home and learn scratch are ext4 images of limits.disk (default \(limit) MiB): loop devices, mkfs.ext4 and a detached ext4 mount work")
        } catch {
            return DoctorCheck("disk bound", .fail, "the shadow home and scratch cannot be bounded: \(error)",
                               remedy: "loop devices (CONFIG_BLK_DEV_LOOP, /dev/loop-control) and e2fsprogs' mkfs.ext4; without them cagent does not start",
                               required: true)
        }
    }

    /// The workspace's filesystem (the current directory, the default workspace): project quota or not.
    static func workspace(directory: String) -> DoctorCheck {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return DoctorCheck("workspace disk", .warn, "cannot open \(TerminalEscape.escape(directory))") }
        defer { close(fd) }
        return workspaceVerdict(type: cg_filesystem_type(fd), quotaState: cg_project_quota_state(fd),
                                directory: TerminalEscape.escape(directory))
    }

    /// Pure: the check from the filesystem type (statfs magic) and quotactl's answer (0: project quota on).
    static func workspaceVerdict(type: UInt, quotaState: Int32, directory: String) -> DoctorCheck {
        let name: String
        let enable: String
        switch type {
        case 0xEF53:
            name = "ext4"
            enable = "ext4: `tune2fs -O project,quota DEVICE` (unmounted), mount with `prjquota`, then a project id and limit for the workspace (chattr -p ID +P; setquota -P)"
        case 0x5846_5342:
            name = "xfs"
            enable = "xfs: mount with `pquota` (or `prjquota`), then `xfs_quota -x -c 'project -s ...' -c 'limit -p bhard=...'` for the workspace"
        case 0x9123_683E:
            name = "btrfs"
            enable = "btrfs: a subvolume for the workspace with a qgroup limit (`btrfs quota enable`, `btrfs qgroup limit`)"
        case 0x0102_1994:
            return DoctorCheck("workspace disk", .ok, "\(directory) is on tmpfs: bounded by its size= and by memory")
        default:
            name = String(type, radix: 16)
            enable = "a filesystem with project quotas (ext4 with `-O project,quota` + `prjquota`, or xfs with `pquota`)"
        }
        if quotaState == 0 {
            return DoctorCheck("workspace disk", .info,
                               "\(directory) is on \(name) with project quota on: a project limit set on the workspace holds (cagent does not set one itself)")
        }
        let state = quotaState == ESRCH ? "off" : "unsupported (errno \(quotaState))"
        return DoctorCheck("workspace disk", .warn,
                           "workspace disk use is not bounded on this filesystem (\(name) at \(directory), project quota \(state)): the agent can fill it through the workspace",
                           remedy: enable)
    }
}
