// cg_volume.h — a size-bounded filesystem for what cagent stores for the agent (shadow home, learn scratch).
// Why: the host's filesystem may have no project quota (ext4 without `-O project,quota`), so a directory
// cannot be bounded; an ext4 image of a fixed size can. It is attached to a loop device with AUTOCLEAR and
// mounted *detached* (fsmount, never attached in the host's mount namespace): the mount fd is handed to
// cagent-init, and when the sandbox's namespace and the fd are gone, the mount and the loop device go too.
// Concurrent sessions of one agent share the loop device and its one superblock (cg_volume_share).
#ifndef CG_VOLUME_H
#define CG_VOLUME_H
#include <stdint.h>
#include <sys/types.h>

/// Formats the open image `image_fd` (already truncated to its size) as ext4 with `mkfs` (mkfs.ext4's
/// path), its root directory owned by uid:gid, with a journal of `journal_mib` MiB (0: none; ext4's minimum
/// is 4), filled from the directory `seed` when not NULL (mke2fs -d: symlinks are copied as links, never
/// followed). Returns 0, or -1 with errno set (EIO when mkfs exited non-zero; its stderr goes to `log_fd`).
int cg_volume_format(const char *mkfs, int image_fd, uid_t uid, gid_t gid, int journal_mib, const char *seed, int log_fd);

/// Attaches the image to a free loop device (AUTOCLEAR) and returns a detached ext4 mount of it
/// (nosuid, nodev), or -1 with errno set and *stage naming the step that failed.
int cg_volume_mount(int image_fd, const char **stage);

/// Another detached mount of the filesystem already mounted from the image: finds the one loop device the
/// image `image_fd` is attached to (LOOP_GET_STATUS64: the backing file's device and inode, no offset or
/// size limit) and mounts it again, which gives the same superblock (the kernel keeps one filesystem per
/// block device), so sessions sharing an image never mount it twice. Returns the mount fd, or -1 with errno
/// ENOENT (no loop device has the image: it is not mounted, or it is detaching), EEXIST (two have: not
/// cagent's doing, refused), or another errno with *stage naming the step.
int cg_volume_share(int image_fd, const char **stage);

/// Moves a detached mount onto a directory (host side, in the caller's own mount namespace): tests only.
int cg_volume_attach(int mount_fd, int directory_fd);

/// Grows the (unmounted) filesystem in the image to the file's size with resize2fs (offline: the online
/// resize ioctl needs CAP_SYS_RESOURCE, which root lacks on some machines). Returns 0 or -1 with errno.
int cg_volume_resize(const char *resize2fs, int image_fd, int log_fd);

/// rename(2) that never replaces an existing target (renameat2 RENAME_NOREPLACE): 0 or -1 with errno.
int cg_rename_noreplace(const char *from, const char *to);

/// Whether the filesystem holding `fd` enforces project quotas: 0 when they are on, else the errno of
/// quotactl_fd(Q_GETINFO, PRJQUOTA) (ESRCH: quota off; ENOSYS/EOPNOTSUPP: no quota support).
int cg_project_quota_state(int fd);

/// The filesystem type (statfs f_type) of `fd`, 0 on error.
unsigned long cg_filesystem_type(int fd);

#endif
