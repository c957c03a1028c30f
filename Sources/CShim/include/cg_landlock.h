// cg_landlock.h — apply a Landlock ruleset given as flat arrays.
// Why: the Landlock syscalls have no libc wrappers, Debian's 6.1 headers lack ABI >= 3 (truncate, net,
// ioctl_dev, scoping), and landlock_restrict_self applies to the calling thread only, so it must run in
// the single-threaded child just before execve. Async-signal-safe: open/fstat/close and raw syscalls only.
#ifndef CG_LANDLOCK_H
#define CG_LANDLOCK_H
#include <stdint.h>

// Filesystem access rights (uapi linux/landlock.h), with the ABI that introduced each.
#define CG_LL_FS_EXECUTE      (1ULL << 0)   // ABI 1
#define CG_LL_FS_WRITE_FILE   (1ULL << 1)
#define CG_LL_FS_READ_FILE    (1ULL << 2)
#define CG_LL_FS_READ_DIR     (1ULL << 3)
#define CG_LL_FS_REMOVE_DIR   (1ULL << 4)
#define CG_LL_FS_REMOVE_FILE  (1ULL << 5)
#define CG_LL_FS_MAKE_CHAR    (1ULL << 6)
#define CG_LL_FS_MAKE_DIR     (1ULL << 7)
#define CG_LL_FS_MAKE_REG     (1ULL << 8)
#define CG_LL_FS_MAKE_SOCK    (1ULL << 9)
#define CG_LL_FS_MAKE_FIFO    (1ULL << 10)
#define CG_LL_FS_MAKE_BLOCK   (1ULL << 11)
#define CG_LL_FS_MAKE_SYM     (1ULL << 12)
#define CG_LL_FS_REFER        (1ULL << 13)  // ABI 2
#define CG_LL_FS_TRUNCATE     (1ULL << 14)  // ABI 3
#define CG_LL_FS_IOCTL_DEV    (1ULL << 15)  // ABI 5
// Scoping (ABI 6).
#define CG_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define CG_LL_SCOPE_SIGNAL               (1ULL << 1)
// Rights that make sense on a file that is not a directory (the kernel rejects the others there).
#define CG_LL_FS_FILE_RIGHTS (CG_LL_FS_EXECUTE | CG_LL_FS_WRITE_FILE | CG_LL_FS_READ_FILE | \
                              CG_LL_FS_TRUNCATE | CG_LL_FS_IOCTL_DEV)

/// A ruleset: rights handled (denied unless a rule grants them), scopes, and one rule per path.
struct cg_landlock_ruleset {
    unsigned abi;                 // the ABI the masks were computed for (sets the attr size: 8, 16 or 24)
    uint64_t handled_fs;
    uint64_t scoped;
    unsigned count;
    const char *const *paths;     // count paths
    const uint64_t *access;       // count access masks (directory rights are dropped on non-directories)
};

/// Creates the ruleset, adds every rule (a path that does not exist is skipped: the view may lack it),
/// and restricts the calling thread (PR_SET_NO_NEW_PRIVS first). Returns 0 or -errno; on failure
/// *failed_rule is the index of the path that failed, or -1 when the failure was not about a path.
int cg_landlock_apply(const struct cg_landlock_ruleset *ruleset, int *failed_rule);

#endif
