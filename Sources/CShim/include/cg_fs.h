// cg_fs.h — file-system calls Swift cannot reach directly.
// Why: O_PATH and friends need _GNU_SOURCE, openat2(2) has no libc wrapper, and Debian's headers lag the
// kernel. Host-side code walks agent-controlled trees with RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH.
#ifndef CG_FS_H
#define CG_FS_H
#include <stdint.h>

extern const int CG_O_PATH;
extern const int CG_O_NOFOLLOW;
extern const int CG_O_DIRECTORY;
extern const int CG_O_CLOEXEC;
extern const uint64_t CG_RESOLVE_NO_SYMLINKS;
extern const uint64_t CG_RESOLVE_BENEATH;
extern const uint64_t CG_RESOLVE_NO_MAGICLINKS;
extern const uint64_t CG_RESOLVE_NO_XDEV;

/// openat2(2): returns an fd or -1 with errno set.
int cg_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve);

#endif
