#define _GNU_SOURCE
#include "cg_landlock.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define CG_LL_RULE_PATH_BENEATH 1

// The uapi structs as of ABI 6/7; the size passed to the kernel selects how much of it is read.
struct cg_ll_ruleset_attr {
    uint64_t handled_access_fs;   // ABI 1
    uint64_t handled_access_net;  // ABI 4
    uint64_t scoped;              // ABI 6
};
struct cg_ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int cg_landlock_apply(const struct cg_landlock_ruleset *rs, int *failed_rule) {
    if (failed_rule) *failed_rule = -1;
    if (rs == NULL || rs->abi < 1) return -EINVAL;
    struct cg_ll_ruleset_attr attr = { .handled_access_fs = rs->handled_fs, .handled_access_net = 0,
                                       .scoped = rs->abi >= 6 ? rs->scoped : 0 };
    size_t size = rs->abi >= 6 ? 24 : rs->abi >= 4 ? 16 : 8;
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (ruleset < 0) return -errno;
    for (unsigned i = 0; i < rs->count; i++) {
        int fd = open(rs->paths[i], O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            int err = errno; close(ruleset);
            if (failed_rule) *failed_rule = (int)i;
            return -err;
        }
        struct stat st;
        uint64_t access = rs->access[i] & rs->handled_fs;
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= CG_LL_FS_FILE_RIGHTS;
        if (access != 0) {
            struct cg_ll_path_beneath_attr rule = { .allowed_access = access, .parent_fd = fd };
            if (syscall(SYS_landlock_add_rule, ruleset, CG_LL_RULE_PATH_BENEATH, &rule, 0) != 0) {
                int err = errno; close(fd); close(ruleset);
                if (failed_rule) *failed_rule = (int)i;
                return -err;
            }
        }
        close(fd);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { int err = errno; close(ruleset); return -err; }
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) { int err = errno; close(ruleset); return -err; }
    close(ruleset);
    return 0;
}
