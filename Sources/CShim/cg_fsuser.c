#define _GNU_SOURCE
#include "cg_fsuser.h"
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

// setfsuid/setfsgid return the previous value and never fail visibly; an invalid id (-1) changes nothing
// and reports the current one.
static uid_t current_fsuid(void) { return (uid_t)syscall(SYS_setfsuid, (uid_t)-1); }
static gid_t current_fsgid(void) { return (gid_t)syscall(SYS_setfsgid, (gid_t)-1); }

void cg_fs_current(uid_t *uid, gid_t *gid) {
    *uid = current_fsuid();
    *gid = current_fsgid();
}

int cg_fs_become(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    if (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0) return -errno;
    syscall(SYS_setfsgid, gid);
    if (current_fsgid() != gid) return -EPERM;
    syscall(SYS_setfsuid, uid);
    if (current_fsuid() != uid) return -EPERM;
    return 0;
}

int cg_fs_restore(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    syscall(SYS_setfsuid, uid);
    if (current_fsuid() != uid) return -EPERM;
    syscall(SYS_setfsgid, gid);
    if (current_fsgid() != gid) return -EPERM;
    if (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0) return -errno;
    return 0;
}
