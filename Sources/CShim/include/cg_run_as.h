// cg_run_as.h — run a host program as another user (host-side checks that must not run with root's rights).
#pragma once
#include <sys/types.h>

// Forks; the child takes uid/gid and exactly the given supplementary groups, sets no_new_privs, closes every other
// descriptor, enters cwd, and execs path with exactly argv/envp; stdin is /dev/null, stdout out_fd, stderr
// err_fd. Returns the child's pid, or -1 with errno. The child exits 127 when any step before exec fails
// (it never runs the program with root's rights).
pid_t cg_run_as(uid_t uid, gid_t gid, const gid_t *groups, int group_count, const char *cwd, const char *path, char *const argv[], char *const envp[],
                int out_fd, int err_fd);
