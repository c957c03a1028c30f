// The filesystem view, built with the new mount API (open_tree/fsopen/fsmount/move_mount/mount_setattr):
// every mount is attached to a file descriptor that was resolved without following symlinks, and
// read-only/nosuid/nodev are applied recursively to a bind *before* it becomes visible.
#define _GNU_SOURCE
#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mount.h>
#include <linux/openat2.h>

#ifndef MOUNT_ATTR_SIZE_VER0
#define MOUNT_ATTR_SIZE_VER0 32
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

static int old_root = -1;   // the host's root, at /oldroot of the base tmpfs until mounts_finish
static int new_root = -1;   // the sandbox's root tmpfs, at /newroot

static int sys_open_tree(int dfd, const char *path, unsigned flags) {
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static int sys_move_mount(int from, int to) {
    return (int)syscall(SYS_move_mount, from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}
static int sys_mount_setattr(int fd, unsigned flags, uint64_t set, uint64_t clear) {
    struct mount_attr attr = { .attr_set = set, .attr_clr = clear };
    return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | flags, &attr, MOUNT_ATTR_SIZE_VER0);
}
static int sys_openat2(int dfd, const char *path, int flags, uint64_t resolve) {
    struct open_how how = { .flags = (uint64_t)flags, .resolve = resolve };
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}

// Never O_NOFOLLOW together with these: O_PATH|O_NOFOLLOW would hand back a trailing symlink itself
// (and a mount could land on it); without it, any symlink anywhere in the path fails with ELOOP.
#define NO_LINKS (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH)

static const char *relative(const char *path) {
    while (*path == '/') path++;
    return *path ? path : ".";
}

/// A filesystem instance (tmpfs, proc, devpts) as a detached mount with the given options and attributes.
static int new_fs(const char *type, const char *const *options, uint64_t attributes) {
    int fs = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0) fail("the kernel refused a new filesystem instance in the sandbox's user namespace");
    for (int i = 0; options && options[i]; i += 2) {
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, options[i], options[i + 1], 0) < 0)
            fail("a filesystem option was refused");
    }
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) fail("filesystem creation failed");
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attributes);
    if (mnt < 0) fail("fsmount failed");
    close(fs);
    return mnt;
}

/// Opens (creating when missing) a path under the new root, never following a symlink: a symlink on the
/// way (planted by the agent in the workspace or the shadow home) aborts the start with ELOOP.
/// New directories and files belong to cagent-init's uid, which is the agent user's.
static int open_target(const char *path, int directory) {
    const char *rel = relative(path);
    int fd = sys_openat2(new_root, rel, O_PATH | O_CLOEXEC, NO_LINKS);
    if (fd >= 0 || errno != ENOENT) {
        if (fd < 0) fail(errno == ELOOP || errno == EXDEV
                         ? "a symlink on a mount target's path: refusing to follow it (H11)"
                         : "cannot open a mount target");
        return fd;
    }
    // Walk component by component, creating what is missing, each step relative to its parent fd.
    char buffer[4096];
    if (strlen(rel) >= sizeof buffer) { errno = ENAMETOOLONG; fail("mount target path too long"); }
    strcpy(buffer, rel);
    int parent = dup(new_root);
    char *cursor = buffer;
    for (;;) {
        char *slash = strchr(cursor, '/');
        int last = slash == NULL;
        if (slash) *slash = '\0';
        if (*cursor) {
            int next = sys_openat2(parent, cursor, O_PATH | O_CLOEXEC, NO_LINKS);
            if (next < 0 && errno == ENOENT) {
                if (!last || directory) {
                    if (mkdirat(parent, cursor, 0755) < 0 && errno != EEXIST) fail("cannot create a mount point");
                } else {
                    int file = openat(parent, cursor, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                    if (file < 0) fail("cannot create a mount point file");
                    close(file);
                }
                next = sys_openat2(parent, cursor, O_PATH | O_CLOEXEC, NO_LINKS);
            }
            if (next < 0) fail(errno == ELOOP || errno == EXDEV
                               ? "a symlink on a mount target's path: refusing to follow it (H11)"
                               : "cannot open a mount target");
            close(parent);
            parent = next;
        }
        if (last) break;
        cursor = slash + 1;
    }
    return parent;
}

/// Parent directory fd and last component of a path in the new root (for files and symlinks we create).
static int open_parent(const char *path, const char **name) {
    static char buffer[4096];
    const char *rel = relative(path);
    if (strlen(rel) >= sizeof buffer) { errno = ENAMETOOLONG; fail("path too long"); }
    strcpy(buffer, rel);
    char *slash = strrchr(buffer, '/');
    if (!slash) { *name = rel; return dup(new_root); }
    *slash = '\0';
    *name = rel + (slash - buffer) + 1;
    return open_target(buffer, 1);
}

static void attach(int tree, const char *target_path, int directory) {
    int target = open_target(target_path, directory);
    if (sys_move_mount(tree, target) < 0) fail("move_mount onto the target failed");
    close(target);
    close(tree);
}

/// Host path (through /oldroot) without following symlinks; -1 with ENOENT when absent.
static int open_source(const char *path) {
    int fd = sys_openat2(old_root, relative(path), O_PATH | O_CLOEXEC, NO_LINKS);
    if (fd < 0 && errno != ENOENT)
        fail(errno == ELOOP || errno == EXDEV ? "a symlink in a bind source's path: refusing to follow it"
                                              : "cannot open a bind source");
    return fd;
}

static int is_directory(int fd) {
    struct stat info;
    if (fstat(fd, &info) < 0) fail("fstat failed");
    return S_ISDIR(info.st_mode);
}

static uint64_t mode_attributes(const char *mode) {
    if (strcmp(mode, "ro") == 0) return MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (strcmp(mode, "rw") == 0) return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (strcmp(mode, "dev") == 0) return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;  // device nodes only
    errno = EINVAL;
    fail("unknown bind mode in the plan");
}

/// bind SRC DST ro|rw|dev [optional]: a recursive clone of a host tree, attributes set before it is attached.
static void op_bind(const struct plan_record *r) {
    if (r->argc < 3) { errno = EINVAL; fail("bind needs SRC DST MODE"); }
    int optional = r->argc > 3 && strcmp(r->argv[3], "optional") == 0;
    int source = open_source(r->argv[0]);
    if (source < 0) {
        if (optional) return;
        fail("the bind source does not exist");
    }
    int directory = is_directory(source);
    int tree = sys_open_tree(source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    if (tree < 0) fail("open_tree (clone) failed");
    close(source);
    if (sys_mount_setattr(tree, AT_RECURSIVE, mode_attributes(r->argv[2]), 0) < 0)
        fail("cannot set read-only/nosuid/nodev on the bind");
    attach(tree, r->argv[1], directory);
}

/// hide DST: cover an existing path with an empty read-only directory or file; nothing to do when absent.
static void op_hide(const struct plan_record *r) {
    if (r->argc < 1) { errno = EINVAL; fail("hide needs DST"); }
    int target = sys_openat2(new_root, relative(r->argv[0]), O_PATH | O_CLOEXEC, NO_LINKS);
    if (target < 0) {
        if (errno == ENOENT) return;
        fail(errno == ELOOP || errno == EXDEV ? "a symlink on a hidden path: refusing to follow it (H11)"
                                              : "cannot open a path to hide");
    }
    int tree;
    if (is_directory(target)) {
        const char *options[] = { "mode", "0555", "size", "4k", NULL };
        tree = new_fs("tmpfs", options, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    } else {
        tree = sys_open_tree(AT_FDCWD, "/empty", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (tree < 0) fail("open_tree of the empty file failed");
        if (sys_mount_setattr(tree, 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0) < 0)
            fail("cannot make the cover read-only");
    }
    if (sys_move_mount(tree, target) < 0) fail("move_mount over the hidden path failed");
    close(tree);
    close(target);
}

/// tmpfs DST MODE SIZE ro|rw
static void op_tmpfs(const struct plan_record *r) {
    if (r->argc < 4) { errno = EINVAL; fail("tmpfs needs DST MODE SIZE ro|rw"); }
    const char *options[] = { "mode", r->argv[1], "size", r->argv[2], NULL };
    if (strcmp(r->argv[2], "0") == 0) options[2] = NULL;
    uint64_t attributes = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (strcmp(r->argv[3], "ro") == 0) attributes |= MOUNT_ATTR_RDONLY;
    attach(new_fs("tmpfs", options, attributes), r->argv[0], 1);
}

static void op_proc(const struct plan_record *r) {
    attach(new_fs("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC), r->argv[0], 1);
}

/// The sandbox's own devpts instance: ptys allocated here are the only terminals the agent can reach.
static void op_devpts(const struct plan_record *r) {
    const char *options[] = { "newinstance", "", "ptmxmode", "0666", "mode", "0620", NULL };
    int fs = (int)syscall(SYS_fsopen, "devpts", FSOPEN_CLOEXEC);
    if (fs < 0) fail("devpts refused");
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "newinstance", NULL, 0) < 0) fail("devpts newinstance refused");
    for (int i = 2; options[i]; i += 2)
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, options[i], options[i + 1], 0) < 0) fail("devpts option refused");
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) fail("devpts creation failed");
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (mnt < 0) fail("fsmount devpts failed");
    close(fs);
    attach(mnt, r->argv[0], 1);
}

static void op_dir(const struct plan_record *r) {
    int fd = open_target(r->argv[0], 1);
    close(fd);
}

/// file DST MODE CONTENT: a generated file (passwd, hosts, ...) in a tmpfs we own.
static void op_file(const struct plan_record *r) {
    if (r->argc < 3) { errno = EINVAL; fail("file needs DST MODE CONTENT"); }
    const char *name;
    int parent = open_parent(r->argv[0], &name);
    mode_t mode = (mode_t)strtoul(r->argv[1], NULL, 8);
    int fd = openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot create a generated file");
    size_t length = strlen(r->argv[2]);
    const char *data = r->argv[2];
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0) { if (errno == EINTR) continue; fail("cannot write a generated file"); }
        data += n; length -= (size_t)n;
    }
    fchmod(fd, mode);
    close(fd);
    close(parent);
}

/// symlink TARGET DST
static void op_symlink(const struct plan_record *r) {
    if (r->argc < 2) { errno = EINVAL; fail("symlink needs TARGET DST"); }
    const char *name;
    int parent = open_parent(r->argv[1], &name);
    if (symlinkat(r->argv[0], parent, name) < 0) fail("cannot create a symlink");
    close(parent);
}

/// readonly DST: make the mount at DST read-only (after it was populated: /etc, /dev).
/// volume DST|-: the size-bounded volume cagent mounted (detached) and handed over as INIT_VOLUME_FD: the
/// shadow home at DST, or with `-` at /volume of the base tmpfs, outside the view, for overlay layers.
static void op_volume(const struct plan_record *r) {
    struct stat info;
    if (fstat(INIT_VOLUME_FD, &info) < 0 || !S_ISDIR(info.st_mode)) fail("cagent handed over no volume");
    if (strcmp(r->argv[0], "-") == 0) {
        if (mkdir("/volume", 0700) < 0) fail("mkdir /volume in the base tmpfs");
        int slot = open("/volume", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (slot < 0 || sys_move_mount(INIT_VOLUME_FD, slot) < 0) fail("cannot attach the volume");
        close(slot);
        close(INIT_VOLUME_FD);
        return;
    }
    attach(INIT_VOLUME_FD, r->argv[0], 1);
}

/// An optional overlay's host directory is gone: LOWER absent on the host, or its mount point absent in the view.
static int vanished(const char *lower, const char *target) {
    int fd = sys_openat2(old_root, relative(lower), O_PATH | O_CLOEXEC, NO_LINKS);
    if (fd < 0) return errno == ENOENT;
    close(fd);
    fd = sys_openat2(new_root, relative(target), O_PATH | O_CLOEXEC, NO_LINKS);
    if (fd < 0) return errno == ENOENT;
    close(fd);
    return 0;
}

/// overlay LOWER UPPER WORK DST [volume] [optional]: learn mode's scratch layer. LOWER (a host tree) shows through, writes go to
/// UPPER (the session's scratch directory, owned by the user). Paths are the host's, reached through
/// /oldroot; with `volume`, UPPER and WORK are paths in the volume (attached by `volume -`, bounded).
/// `userxattr` because trusted.* xattrs are not available in a user namespace.
/// With `optional`, a LOWER gone from the host (removed after the plan listed it) is skipped: it has nothing
/// to show, and its mount point would lie in a read-only bind of the host (EROFS when creating it).
static void op_overlay(const struct plan_record *r) {
    if (r->argc < 4) { errno = EINVAL; fail("overlay needs LOWER UPPER WORK DST"); }
    int in_volume = 0, optional = 0;
    for (int i = 4; i < r->argc; i++) {
        if (strcmp(r->argv[i], "volume") == 0) in_volume = 1;
        else if (strcmp(r->argv[i], "optional") == 0) optional = 1;
    }
    if (optional && vanished(r->argv[0], r->argv[3])) return;
    char options[3][4200];
    const char *keys[] = { "lowerdir", "upperdir", "workdir" };
    for (int i = 0; i < 3; i++) {
        if (strpbrk(r->argv[i], ",:\\") || r->argv[i][0] != '/') { errno = EINVAL; fail("an overlay path with , : or \\"); }
        snprintf(options[i], sizeof options[i], "%s%s", i > 0 && in_volume ? "/volume" : "/oldroot", r->argv[i]);
    }
    int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) fail("the kernel refused an overlay in the sandbox's user namespace");
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) fail("overlay option userxattr refused");
    for (int i = 0; i < 3; i++)
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, keys[i], options[i], 0) < 0) {
            if (optional && vanished(r->argv[0], r->argv[3])) { close(fs); return; }   // removed meanwhile
            fail("an overlay directory was refused");
        }
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        if (optional && vanished(r->argv[0], r->argv[3])) { close(fs); return; }   // removed meanwhile
        fail("overlay creation failed");
    }
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (mnt < 0) fail("fsmount of the overlay failed");
    close(fs);
    if (!optional) { attach(mnt, r->argv[3], 1); return; }
    // Optional: onto the existing mount point only (never created in the read-only view); gone = skipped.
    int target = sys_openat2(new_root, relative(r->argv[3]), O_PATH | O_CLOEXEC, NO_LINKS);
    if (target < 0 && errno == ENOENT) { close(mnt); return; }
    if (target < 0) fail(errno == ELOOP || errno == EXDEV ? "a symlink on a mount target's path: refusing to follow it (H11)"
                                                          : "cannot open a mount target");
    if (sys_move_mount(mnt, target) < 0) {
        if (errno == ENOENT && vanished(r->argv[0], r->argv[3])) { close(target); close(mnt); return; }
        fail("move_mount onto the target failed");
    }
    close(target);
    close(mnt);
}

static void op_readonly(const struct plan_record *r) {
    int fd = open_target(r->argv[0], 1);
    if (sys_mount_setattr(fd, 0, MOUNT_ATTR_RDONLY, 0) < 0) fail("cannot make the mount read-only");
    close(fd);
}

void mounts_apply(const struct plan_record *r) {
    // Stage name: the operation and its target ("bind /usr", "hide /home/u/.ssh").
    int two_paths = strcmp(r->op, "bind") == 0 || strcmp(r->op, "symlink") == 0;
    int target_index = strcmp(r->op, "overlay") == 0 ? 3 : two_paths ? 1 : 0;
    if (r->argc < target_index + 1) { errno = EINVAL; stage(r->op); fail("an operation without a target"); }
    char name[512];
    snprintf(name, sizeof name, "%s %s", r->op, r->argv[target_index]);
    stage(name);
    if (strcmp(r->op, "bind") == 0) op_bind(r);
    else if (strcmp(r->op, "hide") == 0) op_hide(r);
    else if (strcmp(r->op, "tmpfs") == 0) op_tmpfs(r);
    else if (strcmp(r->op, "proc") == 0) op_proc(r);
    else if (strcmp(r->op, "devpts") == 0) op_devpts(r);
    else if (strcmp(r->op, "dir") == 0) op_dir(r);
    else if (strcmp(r->op, "file") == 0) op_file(r);
    else if (strcmp(r->op, "symlink") == 0) op_symlink(r);
    else if (strcmp(r->op, "readonly") == 0) op_readonly(r);
    else if (strcmp(r->op, "overlay") == 0) op_overlay(r);
    else if (strcmp(r->op, "volume") == 0) op_volume(r);
    else { errno = EINVAL; fail("unknown operation in the plan"); }
}

void mounts_begin(void) {
    // Private first: nothing mounted from here on may propagate back to the host's mount namespace.
    stage("private-mounts");
    if (syscall(SYS_mount, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail("cannot make / private");

    // A scratch tmpfs becomes the root for the duration of setup, with the host's tree at /oldroot:
    // host paths stay reachable as sources while the new root is assembled next to it (bubblewrap's way).
    stage("base-root");
    const char *base_options[] = { "mode", "0755", "size", "64k", NULL };
    int base = new_fs("tmpfs", base_options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    int tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (tmp < 0) fail("the host has no /tmp to stage the sandbox on");
    if (sys_move_mount(base, tmp) < 0) fail("cannot attach the base tmpfs");
    close(base); close(tmp);
    if (chdir("/tmp") < 0) fail("chdir to the base tmpfs");
    if (mkdir("oldroot", 0700) < 0 || mkdir("newroot", 0755) < 0) fail("mkdir in the base tmpfs");
    // The cover for hidden files: one empty read-only file, bound wherever a secret file must vanish.
    int empty = open("empty", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (empty < 0) fail("cannot create the empty cover file");
    close(empty);
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0) fail("pivot_root into the base tmpfs");
    if (chdir("/") < 0) fail("chdir /");

    stage("new-root");
    const char *root_options[] = { "mode", "0755", "size", "1m", NULL };
    int root = new_fs("tmpfs", root_options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    int slot = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (slot < 0 || sys_move_mount(root, slot) < 0) fail("cannot attach the new root tmpfs");
    close(root); close(slot);
    old_root = open("/oldroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    new_root = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (old_root < 0 || new_root < 0) fail("cannot open the old or new root");
}

void mounts_finish(void) {
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then drops the base
    // tmpfs and, with it, every host mount: nothing outside the view stays reachable.
    stage("pivot-root");
    close(old_root);
    if (fchdir(new_root) < 0) fail("fchdir to the new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0) fail("pivot_root into the new root");
    if (syscall(SYS_umount2, ".", MNT_DETACH) < 0) fail("cannot detach the old root");
    if (chdir("/") < 0) fail("chdir / in the new root");
    close(new_root);

    // The root tmpfs only holds mount points and /etc's skeleton: the agent may not add to it.
    stage("root-readonly");
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || sys_mount_setattr(root, 0, MOUNT_ATTR_RDONLY, 0) < 0) fail("cannot make / read-only");
    close(root);
}
