#define _GNU_SOURCE
#include "cg_seccomp.h"
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC (1UL << 0)
#endif

int cg_seccomp_install(const void *filter, unsigned count) {
    if (filter == NULL || count == 0 || count > BPF_MAXINSNS) return -EINVAL;
    struct sock_fprog prog = { .len = (unsigned short)count, .filter = (struct sock_filter *)filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (rc < 0) return -errno;
    if (rc > 0) return -ESRCH;   // TSYNC: rc is the id of a thread that could not be synchronised
    return 0;
}

int cg_seccomp_mode(void) {
    int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    return mode < 0 ? -1 : mode;
}
