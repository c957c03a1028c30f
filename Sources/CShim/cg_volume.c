// cg_volume.c — see cg_volume.h.
#define _GNU_SOURCE
#include "cg_volume.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/loop.h>
#include <linux/mount.h>

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
#endif

extern char **environ;

/// Runs an e2fsprogs tool on the image as /dev/fd/3 (the file we opened and checked, never a path the user
/// could swap in between), stdin/stdout to /dev/null, stderr to `log_fd` or /dev/null.
static int run_on_image(const char *tool, char *const argv[], int image_fd, int log_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, image_fd, 3);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        posix_spawn_file_actions_adddup2(&actions, null, 0);
        posix_spawn_file_actions_adddup2(&actions, null, 1);
    }
    posix_spawn_file_actions_adddup2(&actions, log_fd >= 0 ? log_fd : (null >= 0 ? null : 2), 2);
    char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, tool, &actions, NULL, argv, env);
    posix_spawn_file_actions_destroy(&actions);
    if (null >= 0) close(null);
    if (rc != 0) { errno = rc; return -1; }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) { if (errno != EINTR) return -1; }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { errno = EIO; return -1; }
    return 0;
}

int cg_volume_format(const char *mkfs, int image_fd, uid_t uid, gid_t gid, int journal_mib, const char *seed, int log_fd) {
    char owner[64];
    snprintf(owner, sizeof owner, "root_owner=%u:%u,nodiscard,lazy_itable_init=1", (unsigned)uid, (unsigned)gid);
    // 4 KiB blocks, no reserved blocks (the agent is the only user), a small journal for a persistent home
    // (a host crash must not cost it), none for a throwaway scratch.
    char journal_size[32];
    snprintf(journal_size, sizeof journal_size, "size=%d", journal_mib);
    char *argv[24];
    int n = 0;
    const char *common[] = { mkfs, "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-E", owner, "-L", "cagent" };
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) argv[n++] = (char *)common[i];
    if (journal_mib > 0) { argv[n++] = "-J"; argv[n++] = journal_size; }
    else { argv[n++] = "-O"; argv[n++] = "^has_journal"; }
    if (seed) { argv[n++] = "-d"; argv[n++] = (char *)seed; }
    argv[n++] = "/dev/fd/3";
    argv[n] = NULL;
    return run_on_image(mkfs, argv, image_fd, log_fd);
}

int cg_volume_resize(const char *resize2fs, int image_fd, int log_fd) {
    // -f: no "run e2fsck first" prompt; the image is cagent's and not mounted (its flock is ours).
    char *const argv[] = { (char *)resize2fs, "-f", "/dev/fd/3", NULL };
    return run_on_image(resize2fs, argv, image_fd, log_fd);
}

/// A detached ext4 mount (nosuid, nodev) of `device`. When the device already carries a mounted ext4, the
/// kernel gives a new mount of that same superblock (one filesystem per block device), never a second one.
static int mount_ext4(const char *device, const char **stage) {
    *stage = "ext4-open";
    int fs = (int)syscall(SYS_fsopen, "ext4", FSOPEN_CLOEXEC);
    int mnt = -1;
    if (fs >= 0) {
        // nobarrier: no cache flush of the host's disk at each journal commit and at mount and unmount (the
        // loop device turns a flush into an fsync of the image). It halves the mount and cuts the unmount
        // from ~10 ms to ~1.5 ms on a busy machine (docs/benchmarks.md "Disk bound"); the price is that a
        // host crash may leave the image needing `e2fsck -p` (the mount error says so).
        *stage = "ext4-options";
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", device, 0) == 0 &&
            syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "nobarrier", NULL, 0) == 0) {
            *stage = "ext4-create";
            if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0) {
                *stage = "ext4-fsmount";
                mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
            }
        }
    }
    int e = errno;
    if (fs >= 0) close(fs);
    errno = e;
    return mnt;
}

int cg_volume_mount(int image_fd, const char **stage) {
    *stage = "loop-control";
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) return -1;
    int loop = -1;
    char device[32];
    // Another process may take the free device between GET_FREE and CONFIGURE (EBUSY): try again.
    for (int attempt = 0; attempt < 16 && loop < 0; attempt++) {
        *stage = "loop-get-free";
        int number = ioctl(control, LOOP_CTL_GET_FREE);
        if (number < 0) { int e = errno; close(control); errno = e; return -1; }
        snprintf(device, sizeof device, "/dev/loop%d", number);
        *stage = "loop-open";
        int fd = open(device, O_RDWR | O_CLOEXEC);
        if (fd < 0) { int e = errno; close(control); errno = e; return -1; }
        struct loop_config config;
        memset(&config, 0, sizeof config);
        config.fd = (uint32_t)image_fd;
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) { loop = fd; break; }
        int e = errno;
        close(fd);
        if (e != EBUSY) { close(control); errno = e; *stage = "loop-configure"; return -1; }
    }
    close(control);
    if (loop < 0) { errno = EBUSY; *stage = "loop-configure"; return -1; }
    // From here, closing `loop` detaches the device unless the filesystem holds it (AUTOCLEAR).
    int mnt = mount_ext4(device, stage);
    int e = errno;
    close(loop);
    errno = e;
    return mnt;
}

int cg_volume_share(int image_fd, const char **stage) {
    *stage = "loop-find";
    struct stat image;
    if (fstat(image_fd, &image) != 0) return -1;
    DIR *block = opendir("/sys/block");
    if (!block) return -1;
    int loop = -1, found = 0;
    char device[300];
    struct dirent *entry;
    while ((entry = readdir(block)) != NULL) {
        if (strncmp(entry->d_name, "loop", 4) != 0) continue;
        // Bound devices only (the `loop` directory exists while a file is attached): the others are never opened.
        char bound[300];
        snprintf(bound, sizeof bound, "/sys/block/%s/loop/backing_file", entry->d_name);
        if (access(bound, F_OK) != 0) continue;
        char path[300];
        snprintf(path, sizeof path, "/dev/%s", entry->d_name);
        // Open, the device cannot detach itself (AUTOCLEAR waits for its last opener) while we mount it.
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;   // ENXIO: detaching right now
        struct loop_info64 info;
        if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0 && info.lo_device == (uint64_t)image.st_dev &&
            info.lo_inode == (uint64_t)image.st_ino && info.lo_offset == 0 && info.lo_sizelimit == 0) {
            found++;
            if (loop < 0) { loop = fd; memcpy(device, path, sizeof device); continue; }
        }
        close(fd);
    }
    closedir(block);
    if (found != 1) {
        // None: nothing has the image attached (or it is detaching). Two: not cagent's doing (it attaches only
        // under the image's exclusive lock): mounting either could give the image two filesystems.
        if (loop >= 0) close(loop);
        errno = found == 0 ? ENOENT : EEXIST;
        return -1;
    }
    int mnt = mount_ext4(device, stage);
    int e = errno;
    close(loop);
    errno = e;
    return mnt;
}

int cg_volume_attach(int mount_fd, int directory_fd) {
    return (int)syscall(SYS_move_mount, mount_fd, "", directory_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif

int cg_project_quota_state(int fd) {
    struct if_dqinfo info;
    if (syscall(SYS_quotactl_fd, fd, QCMD(Q_GETINFO, PRJQUOTA), 0, &info) == 0) return 0;
    return errno;
}

unsigned long cg_filesystem_type(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return 0;
    return (unsigned long)info.f_type;
}

int cg_rename_noreplace(const char *from, const char *to) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */);
}
