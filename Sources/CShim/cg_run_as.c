// Host-side checks run git as the invoking user: root's rights would let an agent-planted include read
// root's files, and git itself refuses a repository owned by someone else.
#define _GNU_SOURCE
#include "cg_run_as.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t cg_run_as(uid_t uid, gid_t gid, const gid_t *groups, int group_count, const char *cwd, const char *path, char *const argv[], char *const envp[],
                int out_fd, int err_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    // Child: only async-signal-safe calls from here to exec.
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) _exit(127);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    if (setgroups(group_count > 0 ? (size_t)group_count : 0, group_count > 0 ? groups : NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) _exit(127);
    if (uid != 0 && (setuid(0) == 0 || getuid() != uid || geteuid() != uid)) _exit(127);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) _exit(127);
    if (chdir(cwd) < 0) _exit(127);
    execve(path, argv, envp);
    _exit(127);
}
