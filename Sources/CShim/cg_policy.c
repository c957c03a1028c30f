#define _GNU_SOURCE
#include "cg_policy.h"
#include "cg_seccomp.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static int join_cgroup(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, "0", 1);
    int err = n == 1 ? 0 : -errno;
    close(fd);
    return err;
}

static int lower_rlimit(const struct cg_rlimit_setting *s) {
    struct rlimit now;
    if (getrlimit(s->resource, &now) != 0) return -errno;
    struct rlimit want;
    want.rlim_max = (rlim_t)s->hard < now.rlim_max ? (rlim_t)s->hard : now.rlim_max;
    want.rlim_cur = (rlim_t)s->soft < want.rlim_max ? (rlim_t)s->soft : want.rlim_max;
    if (setrlimit(s->resource, &want) != 0) return -errno;
    return 0;
}

int cg_policy_apply(const struct cg_policy *p, int *stage) {
    int rc;
    *stage = CG_POLICY_STAGE_CGROUP;
    for (unsigned i = 0; i < p->cgroup_count; i++)
        if ((rc = join_cgroup(p->cgroup_procs[i])) != 0) return rc;
    *stage = CG_POLICY_STAGE_RLIMIT;
    for (unsigned i = 0; i < p->rlimit_count; i++)
        if ((rc = lower_rlimit(&p->rlimits[i])) != 0) return rc;
    *stage = CG_POLICY_STAGE_LANDLOCK;
    if (p->landlock != NULL) {
        int failed;
        if ((rc = cg_landlock_apply(p->landlock, &failed)) != 0) return rc;
    }
    *stage = CG_POLICY_STAGE_SECCOMP;
    if (p->seccomp_filter != NULL && (rc = cg_seccomp_install(p->seccomp_filter, p->seccomp_count)) != 0)
        return rc;
    *stage = CG_POLICY_STAGE_NONE;
    return 0;
}

const char *cg_policy_stage_name(int stage) {
    switch (stage) {
    case CG_POLICY_STAGE_CGROUP: return "cgroup placement";
    case CG_POLICY_STAGE_RLIMIT: return "rlimits";
    case CG_POLICY_STAGE_LANDLOCK: return "landlock";
    case CG_POLICY_STAGE_SECCOMP: return "seccomp";
    case CG_POLICY_STAGE_SPAWN: return "spawn";
    case CG_POLICY_STAGE_EXEC: return "exec";
    default: return "none";
    }
}

struct reader { const unsigned char *p, *end; int bad; };

static void take(struct reader *r, void *out, unsigned long n) {
    if (r->bad || (unsigned long)(r->end - r->p) < n) { r->bad = 1; memset(out, 0, n); return; }
    memcpy(out, r->p, n);
    r->p += n;
}

static uint32_t take_u32(struct reader *r) { uint32_t v; take(r, &v, 4); return v; }
static uint64_t take_u64(struct reader *r) { uint64_t v; take(r, &v, 8); return v; }

static const char *take_string(struct reader *r) {
    if (r->bad) return NULL;
    const unsigned char *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (nul == NULL) { r->bad = 1; return NULL; }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

int cg_policy_decode(const void *message, unsigned long length, struct cg_policy_storage *st) {
    struct reader r = { message, (const unsigned char *)message + length, 0 };
    memset(st, 0, sizeof *st);
    char magic[4];
    take(&r, magic, 4);
    if (r.bad || memcmp(magic, "CGP1", 4) != 0) return -EINVAL;
    uint32_t n = take_u32(&r);
    if (n > CG_POLICY_MAX_CGROUPS) return -EINVAL;
    for (uint32_t i = 0; i < n; i++) st->cgroup_procs[i] = take_string(&r);
    st->policy.cgroup_procs = st->cgroup_procs;
    st->policy.cgroup_count = n;
    n = take_u32(&r);
    if (n > CG_POLICY_MAX_RLIMITS) return -EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        st->rlimits[i].resource = (int)take_u32(&r);
        st->rlimits[i].soft = take_u64(&r);
        st->rlimits[i].hard = take_u64(&r);
    }
    st->policy.rlimits = st->rlimits;
    st->policy.rlimit_count = n;
    uint32_t has_landlock = take_u32(&r);
    if (has_landlock > 1) return -EINVAL;
    if (has_landlock == 1) {
        st->landlock.abi = take_u32(&r);
        st->landlock.handled_fs = take_u64(&r);
        st->landlock.scoped = take_u64(&r);
        n = take_u32(&r);
        if (n > CG_POLICY_MAX_RULES) return -EINVAL;
        for (uint32_t i = 0; i < n; i++) {
            st->access[i] = take_u64(&r);
            st->paths[i] = take_string(&r);
        }
        st->landlock.count = n;
        st->landlock.paths = st->paths;
        st->landlock.access = st->access;
        st->policy.landlock = &st->landlock;
    }
    n = take_u32(&r);
    if (n > 4096 || (unsigned long)(r.end - r.p) != (unsigned long)n * 8 || r.bad) return -EINVAL;
    st->policy.seccomp_filter = n ? r.p : NULL;
    st->policy.seccomp_count = n;
    return 0;
}

struct child_report { int stage; int err; };

static void child_fail(int fd, int stage, int err) {
    struct child_report r = { stage, err };
    (void)!write(fd, &r, sizeof r);
    _exit(127);
}

pid_t cg_policy_spawn(const struct cg_policy *p, const char *path, char *const argv[], char *const envp[],
                      int in, int out, int err, int flags, int *stage) {
    int report[2];
    *stage = CG_POLICY_STAGE_SPAWN;
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    unsigned long clone_flags = ((flags & CG_SPAWN_NEWPID) ? CLONE_NEWPID : 0) | ((flags & CG_SPAWN_NEWNS) ? CLONE_NEWNS : 0);
    pid_t pid = clone_flags ? (pid_t)syscall(SYS_clone, clone_flags | SIGCHLD, 0, 0, 0, 0) : fork();
    if (pid < 0) { int e = errno; close(report[0]); close(report[1]); return -e; }
    if (pid == 0) {
        // Child: async-signal-safe calls only.
        close(report[0]);
        sigset_t none; sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl; memset(&dfl, 0, sizeof dfl); dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < 32; sig++) if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
        if ((in >= 0 && dup2(in, 0) < 0) || (out >= 0 && dup2(out, 1) < 0) || (err >= 0 && dup2(err, 2) < 0))
            child_fail(report[1], CG_POLICY_STAGE_SPAWN, errno);
        if (flags & CG_SPAWN_SETSID) {
            if (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) != 0) child_fail(report[1], CG_POLICY_STAGE_SPAWN, errno);
        }
        if ((flags & CG_SPAWN_NEWNS) && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            child_fail(report[1], CG_POLICY_STAGE_SPAWN, errno);
        syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        int st, rc = cg_policy_apply(p, &st);
        if (rc != 0) child_fail(report[1], st, -rc);
        execve(path, argv, envp);
        child_fail(report[1], CG_POLICY_STAGE_EXEC, errno);
    }
    close(report[1]);
    struct child_report r;
    ssize_t n;
    do { n = read(report[0], &r, sizeof r); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof r) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *stage = r.stage;
        return -r.err;
    }
    *stage = CG_POLICY_STAGE_NONE;
    return pid;
}
