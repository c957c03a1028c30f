#define _GNU_SOURCE
#include "cg_fs.h"
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/openat2.h>

const int CG_O_PATH = O_PATH;
const int CG_O_NOFOLLOW = O_NOFOLLOW;
const int CG_O_DIRECTORY = O_DIRECTORY;
const int CG_O_CLOEXEC = O_CLOEXEC;
const uint64_t CG_RESOLVE_NO_SYMLINKS = RESOLVE_NO_SYMLINKS;
const uint64_t CG_RESOLVE_BENEATH = RESOLVE_BENEATH;
const uint64_t CG_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const uint64_t CG_RESOLVE_NO_XDEV = RESOLVE_NO_XDEV;

int cg_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve) {
    struct open_how how = { .flags = (uint64_t)flags, .mode = (uint64_t)mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
