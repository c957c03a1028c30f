#define _GNU_SOURCE
#include "cg_spawn.h"
#include "cg_fault.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/sched.h>

const int CG_SPAWN_NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;

// --- child side: async-signal-safe only -------------------------------------------------------------------

static void child_fail(int control, const char *stage, const char *hint) {
    // Formatted by hand: snprintf is not async-signal-safe.
    char message[512];
    size_t at = 0;
    const char *parts[] = { "Estage ", stage, " failed: errno ", NULL };
    for (int i = 0; parts[i]; i++) for (const char *p = parts[i]; *p && at < 400; p++) message[at++] = *p;
    int code = errno;
    char digits[12]; int n = 0;
    do { digits[n++] = (char)('0' + code % 10); code /= 10; } while (code && n < 11);
    while (n) message[at++] = digits[--n];
    message[at++] = ' '; message[at++] = '(';
    for (const char *p = hint; *p && at < 500; p++) message[at++] = *p;
    message[at++] = ')';
    send(control, message, at, MSG_NOSIGNAL);
    _exit(125);
}

static int move_fd(int fd, int target, int control) {
    if (fd == target) { int flags = fcntl(fd, F_GETFD); return fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC); }
    if (dup2(fd, target) < 0) child_fail(control, "child-fds", "dup2");
    return 0;
}

static __attribute__((noreturn)) void child(const struct cg_spawn_request *r, int go_read, int init_fd) {
    // Wait until the parent has written the id maps; EOF means the parent died first.
    char byte;
    ssize_t got;
    do { got = read(go_read, &byte, 1); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(125);

    // Move every descriptor to a high slot first, so that the final dup2s cannot clobber each other.
    int fds[6] = { r->stdio[0], r->stdio[1], r->stdio[2], r->plan_fd, r->control_fd, go_read };
    for (int i = 0; i < 6; i++) {
        int high = fcntl(fds[i], F_DUPFD_CLOEXEC, 100 + i * 2);
        if (high < 0) _exit(125);
        fds[i] = high;
    }
    int control = fds[4];
    int high_init = fcntl(init_fd, F_DUPFD_CLOEXEC, 120);
    if (high_init < 0) child_fail(control, "child-fds", "dup of cagent-init's fd");
    int high_volume = r->volume_fd >= 0 ? fcntl(r->volume_fd, F_DUPFD_CLOEXEC, 122) : -1;
    if (r->volume_fd >= 0 && high_volume < 0) child_fail(control, "child-fds", "dup of the volume's fd");
    for (int i = 0; i < 5; i++) move_fd(fds[i], i, control);
    if (high_volume >= 0) move_fd(high_volume, 5, control);
    control = 4;
    int lifeline = fds[5];

    // Identity: the agent's uid/gid (the only ids mapped), no supplementary groups (host root's would
    // otherwise linger), and the full capability set of the new user namespace carried across exec as
    // ambient capabilities: cagent-init needs them for its setup and drops them all once it is done.
    if (cg_fail_requested(r->fail_at, "child-credentials")) { errno = ECANCELED; child_fail(control, "child-credentials", "failure injected by the test hook"); }
    // Raw system calls: glibc's setgroups/setres[ug]id broadcast the change to every thread the parent
    // had (its setxid protocol), threads that do not exist in this child; that can hang.
    if (!r->rootless && syscall(SYS_setgroups, 0, NULL) < 0) child_fail(control, "child-credentials", "setgroups([])");
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail(control, "child-credentials", "PR_SET_KEEPCAPS");
    if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0) child_fail(control, "child-credentials", "setresgid");
    if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0) child_fail(control, "child-credentials", "setresuid");
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) child_fail(control, "child-credentials", "capget");
    for (int i = 0; i < 2; i++) { data[i].effective = data[i].permitted; data[i].inheritable = data[i].permitted; }
    if (syscall(SYS_capset, &header, data) < 0) child_fail(control, "child-credentials", "capset");
    for (int cap = 0; cap < 64; cap++) {
        if (!(data[cap / 32].permitted & (1u << (cap % 32)))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            child_fail(control, "child-credentials", "raising an ambient capability");
    }

    // Parent-death signal after the last uid change (a uid change clears it), then the re-check: the
    // parent's lifeline pipe has hung up if cagent died in between.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(control, "child-credentials", "PR_SET_PDEATHSIG");
    struct pollfd alive = { .fd = lifeline, .events = 0 };
    if (poll(&alive, 1, 0) < 0 || (alive.revents & (POLLHUP | POLLERR))) _exit(125);

    // Nothing else of cagent's survives into the sandbox.
    if (cg_fail_requested(r->fail_at, "exec-init")) { errno = ECANCELED; child_fail(control, "exec-init", "failure injected by the test hook"); }
    syscall(SYS_close_range, high_volume >= 0 ? 6 : 5, ~0U, CLOSE_RANGE_CLOEXEC);
    char *const empty[] = { NULL };
    syscall(SYS_execveat, high_init, "", r->argv, empty, AT_EMPTY_PATH);
    child_fail(control, "exec-init", "cannot execute cagent-init");
    _exit(125);
}

// --- parent side -----------------------------------------------------------------------------------------

static int write_path(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int write_file(pid_t pid, const char *name, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    return write_path(path, text);
}

static int parent_fail(struct cg_spawn_result *result, const char *stage, pid_t pid) {
    result->error = errno;
    result->error_stage = stage;
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {}
    }
    return -1;
}

int cg_spawn_init(const struct cg_spawn_request *r, struct cg_spawn_result *result) {
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->lifeline_fd = -1;
    int init_fd = open(r->init_path, O_PATH | O_CLOEXEC);
    if (init_fd < 0) return parent_fail(result, "find-init", 0);
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) { close(init_fd); return parent_fail(result, "clone", 0); }

    // The session's cgroups (cg_spawn.h): this thread joins the v1 ones, the clone inherits them (and goes
    // into the cgroup2 one by CLONE_INTO_CGROUP), then this thread leaves. Any refusal: none of it.
    int joined = 0;
    while (joined < r->tasks_count && write_path(r->join_tasks[joined], "0") == 0) joined++;
    int placing = joined == r->tasks_count && (r->tasks_count > 0 || r->into_cgroup);

    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = (uint64_t)(CLONE_NEWUSER | r->namespaces);
    args.exit_signal = SIGCHLD;
    if (placing && r->into_cgroup) { args.flags |= CLONE_INTO_CGROUP; args.cgroup = (uint64_t)r->cgroup_fd; }
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && placing && r->into_cgroup) {
        // Refused into the cgroup2 one (an older kernel, a domain it cannot join): plain clone, caller adds.
        placing = 0;
        args.flags &= ~(uint64_t)CLONE_INTO_CGROUP; args.cgroup = 0;
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    }
    if (pid == 0) child(r, go[0], init_fd);
    int saved = errno;
    // Back where this thread was: cagent itself never stays in the session's cgroups (their removal at the
    // end needs them empty). Without the way back the start fails (and the child dies).
    int left = 0;
    while (left < joined && write_path(r->leave_tasks[left], "0") == 0) left++;
    errno = saved;
    close(init_fd);
    close(go[0]);
    if (pid < 0) { close(go[1]); return parent_fail(result, "clone", 0); }
    if (left < joined) { close(go[1]); return parent_fail(result, "cgroup-leave", pid); }
    result->cgroups_placed = placing;

    // Only the agent's ids exist in the sandbox: its files in the workspace keep their owner, and host
    // root is not mapped at all (files it owns appear as nobody, and no id inside is host root).
    char map[64];
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)r->uid, (unsigned)r->uid);
    if (write_file(pid, "uid_map", map) < 0) { close(go[1]); return parent_fail(result, "uid-map", pid); }
    // Without CAP_SETGID over the parent namespace the kernel takes a gid_map only after setgroups is denied.
    if (r->rootless && write_file(pid, "setgroups", "deny\n") < 0) { close(go[1]); return parent_fail(result, "setgroups-deny", pid); }
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)r->gid, (unsigned)r->gid);
    if (write_file(pid, "gid_map", map) < 0) { close(go[1]); return parent_fail(result, "gid-map", pid); }
    if (write(go[1], "g", 1) != 1) { close(go[1]); return parent_fail(result, "release-child", pid); }
    result->pid = pid;
    result->lifeline_fd = go[1];
    return 0;
}
