#define _GNU_SOURCE
#include "cg_ns.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

const int CG_CLONE_NEWNS = CLONE_NEWNS;
const int CG_CLONE_NEWUSER = CLONE_NEWUSER;
const int CG_CLONE_NEWPID = CLONE_NEWPID;
const int CG_CLONE_NEWNET = CLONE_NEWNET;
const int CG_CLONE_NEWUTS = CLONE_NEWUTS;
const int CG_CLONE_NEWIPC = CLONE_NEWIPC;
const int CG_CLONE_NEWCGROUP = CLONE_NEWCGROUP;

int cg_probe_unshare(int flags) {
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) {
        // Only async-signal-safe calls here: the parent may be multithreaded.
        if (unshare(flags) != 0) _exit(errno & 0xff);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return errno;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return EINTR;
}

int cg_setns(int fd, int nstype) { return setns(fd, nstype); }

int cg_unshare_net(void) { return unshare(CLONE_NEWNET); }
