// The agent child of `cagent enforce --in-container` (cg_container.h): firewall is already in place (the
// supervisor programmed it before calling this); here: drop capabilities -> switch user -> no_new_privs ->
// policy (rlimits, Landlock, seccomp) -> exec. Async-signal-safe calls only between fork and execve.
#define _GNU_SOURCE
#include "cg_container.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include "cg_seccomp_notify.h"
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct report { int stage; int detail; int error; };

static void child_fail(int fd, int stage, int detail, int error) {
    struct report r = { stage, detail, error };
    (void)!write(fd, &r, sizeof r);
    _exit(125);
}

static int capset_bits(unsigned long long effective, unsigned long long permitted) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].effective = (unsigned)effective; data[1].effective = (unsigned)(effective >> 32);
    data[0].permitted = (unsigned)permitted; data[1].permitted = (unsigned)(permitted >> 32);
    return (int)syscall(SYS_capset, &header, data);
}

static int drop_bounding_except(unsigned long long keep) {
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break;   // past the kernel's last capability
            return -1;
        }
    }
    return 0;
}

int cg_capabilities_empty(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) return 0;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable) return 0;
    for (int cap = 0; cap < 64; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0) break;
        if (r == 1) return 0;
    }
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) == 1 ? 0 : 1;
}

static void exec_agent(const struct cg_container_request *q, int fd) {
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (int i = 0; q->envp && q->envp[i]; i++)
        if (strncmp(q->envp[i], "PATH=", 5) == 0) path = q->envp[i] + 5;
    const char *name = q->argv[0];
    if (strchr(name, '/')) {
        execve(name, q->argv, q->envp);
        child_fail(fd, CG_CONTAINER_STAGE_EXEC, 0, errno);
    }
    int saved = ENOENT;
    char candidate[4096];
    const char *cursor = path;
    while (*cursor) {
        const char *end = strchrnul(cursor, ':');
        int length = (int)(end - cursor);
        if (length > 0 && length + 2 + strlen(name) < sizeof candidate) {
            memcpy(candidate, cursor, (size_t)length);
            candidate[length] = '/';
            strcpy(candidate + length + 1, name);
            execve(candidate, q->argv, q->envp);
            if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        }
        cursor = *end ? end + 1 : end;
    }
    child_fail(fd, CG_CONTAINER_STAGE_EXEC, 0, saved);
}

static void become_agent(const struct cg_container_request *q, int fd, int release) {
#define STEP(s) do { if (q->fail_at == (s)) child_fail(fd, (s), 0, ECANCELED); } while (0)
    STEP(CG_CONTAINER_STAGE_SIGNALS);
    struct sigaction dfl; memset(&dfl, 0, sizeof dfl); dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++) if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    sigset_t none; sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);

    // Before the switch: the bounding set needs CAP_SETPCAP, the switch needs SETUID/SETGID; nothing else stays.
    STEP(CG_CONTAINER_STAGE_DROP_CAPABILITIES);
    if (drop_bounding_except(0) < 0) child_fail(fd, CG_CONTAINER_STAGE_DROP_CAPABILITIES, 0, errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) child_fail(fd, CG_CONTAINER_STAGE_DROP_CAPABILITIES, 0, errno);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) child_fail(fd, CG_CONTAINER_STAGE_DROP_CAPABILITIES, 0, errno);
    unsigned long long identity = (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID);
    if (capset_bits(identity, identity) < 0) child_fail(fd, CG_CONTAINER_STAGE_DROP_CAPABILITIES, 0, errno);

    // The uid change from 0 clears the permitted and effective sets (no keepcaps): nothing is left to lend.
    STEP(CG_CONTAINER_STAGE_SWITCH_USER);
    if (q->uid == 0 || q->gid == 0) child_fail(fd, CG_CONTAINER_STAGE_SWITCH_USER, 0, EINVAL);
    if (setgroups(q->group_count > 0 ? (size_t)q->group_count : 0, q->group_count > 0 ? q->groups : NULL) < 0)
        child_fail(fd, CG_CONTAINER_STAGE_SWITCH_USER, 0, errno);
    if (setresgid(q->gid, q->gid, q->gid) < 0 || setresuid(q->uid, q->uid, q->uid) < 0)
        child_fail(fd, CG_CONTAINER_STAGE_SWITCH_USER, 0, errno);
    // After the switch (a credential change clears it): if cagent dies, so does the agent (when cagent is not
    // the container's pid 1, e.g. under docker run --init), rather than run on without its gate.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != q->supervisor)
        child_fail(fd, CG_CONTAINER_STAGE_SWITCH_USER, 0, ESRCH);

    STEP(CG_CONTAINER_STAGE_NO_CAPABILITIES);
    if (capset_bits(0, 0) < 0) child_fail(fd, CG_CONTAINER_STAGE_NO_CAPABILITIES, 0, errno);
    if (!cg_capabilities_empty() || setuid(0) == 0 || getuid() != q->uid || geteuid() != q->uid)
        child_fail(fd, CG_CONTAINER_STAGE_NO_CAPABILITIES, 0, EPERM);

    STEP(CG_CONTAINER_STAGE_NO_NEW_PRIVS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(fd, CG_CONTAINER_STAGE_NO_NEW_PRIVS, 0, errno);

    STEP(CG_CONTAINER_STAGE_CWD);
    if (chdir(q->cwd) < 0) child_fail(fd, CG_CONTAINER_STAGE_CWD, 0, errno);

    // Learn: the tracing filter before the policy's allowlist (whose ERRNO would outrank USER_NOTIF).
    if (q->notify_socket >= 0) {
        STEP(CG_CONTAINER_STAGE_TRACE_NOTIFY);
        int listener = cg_notify_install();
        if (listener < 0) child_fail(fd, CG_CONTAINER_STAGE_TRACE_NOTIFY, 0, -listener);
        char byte = 'N';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        memset(&control, 0, sizeof control);
        struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer };
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET; header->cmsg_type = SCM_RIGHTS; header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &listener, sizeof(int));
        if (sendmsg(q->notify_socket, &message, MSG_NOSIGNAL) != 1) child_fail(fd, CG_CONTAINER_STAGE_TRACE_NOTIFY, 0, errno);
        close(listener);
        close(q->notify_socket);
    }

    // Last before exec: seccomp comes at the end of the policy, so only execve has to pass it.
    STEP(CG_CONTAINER_STAGE_POLICY);
    if (q->policy) {
        int policy_stage = 0;
        int rc = cg_policy_apply(q->policy, &policy_stage);
        if (rc != 0) child_fail(fd, CG_CONTAINER_STAGE_POLICY, policy_stage, -rc);
    }
    // Ready: say so, then wait for the go. EOF (the supervisor's gate failed, or it died) ends the child here.
    STEP(CG_CONTAINER_STAGE_RELEASE);
    struct report ready = { CG_CONTAINER_STAGE_RELEASE, 0, 0 };
    if (write(fd, &ready, sizeof ready) != (ssize_t)sizeof ready) _exit(125);
    char go = 0;
    ssize_t got;
    do { got = read(release, &go, 1); } while (got < 0 && errno == EINTR);
    if (got != 1 || go != 'g') _exit(125);
    close(release);
    STEP(CG_CONTAINER_STAGE_EXEC);
    exec_agent(q, fd);
#undef STEP
}

static int read_report(int fd, struct report *r) {
    ssize_t n;
    do { n = read(fd, r, sizeof *r); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof *r ? 1 : 0;
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

int cg_container_spawn(const struct cg_container_request *request, struct cg_container_result *result) {
    struct cg_container_request copy = *request;
    copy.supervisor = getpid();
    const struct cg_container_request *q = &copy;
    memset(result, 0, sizeof *result);
    result->release_fd = result->report_fd = -1;
    int report[2], release[2];
    if (pipe2(report, O_CLOEXEC) != 0) { result->error = errno; result->stage = CG_CONTAINER_STAGE_SIGNALS; return -1; }
    if (pipe2(release, O_CLOEXEC) != 0) {
        result->error = errno; result->stage = CG_CONTAINER_STAGE_SIGNALS;
        close(report[0]); close(report[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        result->error = errno; result->stage = CG_CONTAINER_STAGE_SIGNALS;
        close(report[0]); close(report[1]); close(release[0]); close(release[1]);
        return -1;
    }
    if (pid == 0) {
        close(report[0]); close(release[1]);
        become_agent(q, report[1], release[0]);
        _exit(125);
    }
    close(report[1]); close(release[0]);
    struct report r;
    memset(&r, 0, sizeof r);
    if (!read_report(report[0], &r) || r.stage != CG_CONTAINER_STAGE_RELEASE) {
        int got = r.stage != 0;
        close(report[0]); close(release[1]);
        reap(pid);
        result->stage = got ? r.stage : CG_CONTAINER_STAGE_SIGNALS;
        result->detail = got ? r.detail : 0;
        result->error = got ? r.error : EPIPE;
        return -1;
    }
    result->pid = pid;
    result->release_fd = release[1];
    result->report_fd = report[0];
    return 0;
}

int cg_container_release(struct cg_container_result *result) {
    ssize_t sent = write(result->release_fd, "g", 1);
    close(result->release_fd); result->release_fd = -1;
    struct report r;
    memset(&r, 0, sizeof r);
    int failed = read_report(result->report_fd, &r);
    close(result->report_fd); result->report_fd = -1;
    if (failed || sent != 1) {
        reap(result->pid);
        result->stage = failed ? r.stage : CG_CONTAINER_STAGE_RELEASE;
        result->detail = r.detail;
        result->error = failed ? r.error : EPIPE;
        return -1;
    }
    return 0;
}

void cg_container_abort(struct cg_container_result *result) {
    if (result->release_fd >= 0) { close(result->release_fd); result->release_fd = -1; }
    if (result->report_fd >= 0) { close(result->report_fd); result->report_fd = -1; }
    if (result->pid > 0) { reap(result->pid); result->pid = 0; }
}

int cg_container_receive_fd(int socket) {
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer };
    ssize_t n;
    do { n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n != 1) return n < 0 ? -errno : -EPIPE;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

const char *cg_container_stage_name(int stage) {
    switch (stage) {
    case CG_CONTAINER_STAGE_SIGNALS: return "fork-agent";
    case CG_CONTAINER_STAGE_DROP_CAPABILITIES: return "drop-capabilities";
    case CG_CONTAINER_STAGE_SWITCH_USER: return "switch-user";
    case CG_CONTAINER_STAGE_NO_CAPABILITIES: return "no-capabilities";
    case CG_CONTAINER_STAGE_NO_NEW_PRIVS: return "no-new-privs";
    case CG_CONTAINER_STAGE_POLICY: return "policy";
    case CG_CONTAINER_STAGE_CWD: return "cwd";
    case CG_CONTAINER_STAGE_TRACE_NOTIFY: return "trace-notify";
    case CG_CONTAINER_STAGE_RELEASE: return "release";
    case CG_CONTAINER_STAGE_EXEC: return "exec-agent";
    default: return "none";
    }
}

int cg_container_keep_only(unsigned long long keep) {
    if (drop_bounding_except(keep) < 0) return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return -errno;
    if (capset_bits(keep, keep) < 0) return -errno;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) return -errno;
    return 0;
}

// ---- every thread of the supervisor -------------------------------------------------------------------
// Capabilities are per thread, and capset(2) acts on the caller only: each thread drops its own, from a
// signal handler (what glibc does for setuid across threads).

static unsigned long long keep_mask;
static atomic_int threads_done;
static atomic_int threads_failed;

static void keep_only_handler(int sig) {
    (void)sig;
    int saved = errno;
    if (drop_bounding_except(keep_mask) < 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0
        || capset_bits(keep_mask, keep_mask) < 0)
        atomic_fetch_add(&threads_failed, 1);
    atomic_fetch_add(&threads_done, 1);
    errno = saved;
}

int cg_container_keep_signal(void) { return SIGRTMIN + 5; }
pid_t cg_container_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int cg_container_keep_only_threads(unsigned long long keep, const pid_t *tids, int count) {
    keep_mask = keep;
    atomic_store(&threads_done, 0);
    atomic_store(&threads_failed, 0);
    int sig = cg_container_keep_signal();
    struct sigaction action, ignore;
    memset(&action, 0, sizeof action);
    action.sa_handler = keep_only_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(sig, &action, NULL) < 0) return -errno;
    pid_t process = getpid();
    int sent = 0, error = 0;
    for (int i = 0; i < count; i++) {
        if (syscall(SYS_tgkill, process, tids[i], sig) == 0) sent++;
        else if (errno != ESRCH) { error = errno; break; }
    }
    if (!error) {
        // A thread that does not answer within two seconds: fail (closed).
        for (int waited = 0; atomic_load(&threads_done) < sent && waited < 2000; waited++) {
            struct timespec pause = { 0, 1000000 };
            nanosleep(&pause, NULL);
        }
        if (atomic_load(&threads_done) < sent) error = ETIMEDOUT;
        else if (atomic_load(&threads_failed) > 0) error = EPERM;
    }
    // Ignored from now on: setting SIG_IGN also discards an instance still pending in some thread, which
    // would otherwise kill the process with the default action when that thread unblocks it.
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigaction(sig, &ignore, NULL);
    if (error) return -error;
    return cg_container_keep_only(keep);
}
