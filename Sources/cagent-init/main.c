// cagent-init: pid 1 of a cagent sandbox. cagent clones it into new user, mount, pid, net, uts, ipc and
// cgroup namespaces (Sources/CShim/cg_spawn.c) and execs it at once with an empty environment.
//
// The setup sequence below reads top to bottom; each step is a named stage. When one fails, the message
// "stage X failed: <errno> (<hint>)" goes to cagent over the control socket and this process exits, which
// tears the whole sandbox down (pid namespace) before the agent ever runs: fail closed.
//
// Where decisions come from: everything is decided host-side in SandboxPlan (Swift) and arrives here as a
// list of records; this program only executes them in order.
#define _GNU_SOURCE
#include "init.h"
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include "cg_fault.h"
#include "cg_policy.h"
#include "cg_seccomp_notify.h"

// ---- stages and failure reporting ----------------------------------------------------------------------

static char stage_name[512] = "start";
static const char *fail_at = NULL;
static int report_fd = INIT_CONTROL_FD;   // the agent child reports through its exec pipe instead

void set_fail_stage(const char *name) { fail_at = name; }
const char *current_stage(void) { return stage_name; }

void stage(const char *name) {
    snprintf(stage_name, sizeof stage_name, "%s", name);
    if (cg_fail_requested(fail_at, name)) {
        errno = ECANCELED;
        fail("failure injected by the plan's test hook");
    }
}

void fail(const char *hint) {
    int code = errno;
    char message[1024];
    const char *name = strerrorname_np(code);
    int length = snprintf(message, sizeof message, "Estage %s failed: %s %s (%s)", stage_name,
                          name ? name : "errno", strerror(code), hint);
    if (length > (int)sizeof message - 1) length = (int)sizeof message - 1;
    if (report_fd == INIT_CONTROL_FD) control_send(message, (size_t)length, -1);
    else { ssize_t ignored = write(report_fd, message, (size_t)length); (void)ignored; }
    _exit(125);
}

int control_send(const char *message, size_t length, int fd_to_pass) {
    struct iovec vector = { .iov_base = (void *)message, .iov_len = length };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr header = { .msg_iov = &vector, .msg_iovlen = 1 };
    if (fd_to_pass >= 0) {
        memset(&control, 0, sizeof control);
        header.msg_control = control.buffer;
        header.msg_controllen = sizeof control.buffer;
        struct cmsghdr *c = CMSG_FIRSTHDR(&header);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
    }
    ssize_t sent;
    do { sent = sendmsg(INIT_CONTROL_FD, &header, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

// ---- the plan's settings ------------------------------------------------------------------------------

struct settings {
    const char *session, *hostname, *cwd;
    uid_t uid; gid_t gid;
    const char **argv; const char **env;
    int tty; unsigned short rows, cols;
    int notify;   // learn mode's seccomp tracer: install the listener filter, pass it to cagent
    const unsigned char *seccomp; size_t seccomp_length;
    const struct cg_policy *policy;   // decoded from the plan's `policy` record (cg_policy.h)
};

static struct cg_policy_storage policy_storage;

static int is_mount_op(const char *op) {
    static const char *ops[] = { "bind", "hide", "tmpfs", "proc", "devpts", "dir", "file", "symlink", "readonly", "overlay", "volume", NULL };
    for (int i = 0; ops[i]; i++) if (strcmp(op, ops[i]) == 0) return 1;
    return 0;
}

static unsigned char *hex_decode(const char *text, size_t *length) {
    size_t n = strlen(text);
    if (n % 2) return NULL;
    unsigned char *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned value;
        if (sscanf(text + 2 * i, "%2x", &value) != 1) { free(out); return NULL; }
        out[i] = (unsigned char)value;
    }
    *length = n / 2;
    return out;
}

static void read_settings(const struct plan *plan, struct settings *s) {
    memset(s, 0, sizeof *s);
    s->uid = (uid_t)-1; s->gid = (gid_t)-1;
    for (int i = 0; i < plan->count; i++) {
        const struct plan_record *r = &plan->records[i];
        if (is_mount_op(r->op)) continue;
        if (strcmp(r->op, "session") == 0 && r->argc == 1) s->session = r->argv[0];
        else if (strcmp(r->op, "hostname") == 0 && r->argc == 1) s->hostname = r->argv[0];
        else if (strcmp(r->op, "cwd") == 0 && r->argc == 1) s->cwd = r->argv[0];
        else if (strcmp(r->op, "user") == 0 && r->argc == 2) {
            s->uid = (uid_t)strtoul(r->argv[0], NULL, 10); s->gid = (gid_t)strtoul(r->argv[1], NULL, 10);
        }
        else if (strcmp(r->op, "argv") == 0 && r->argc >= 1) s->argv = r->argv;
        else if (strcmp(r->op, "env") == 0) s->env = r->argv;
        else if (strcmp(r->op, "tty") == 0 && r->argc == 3) {
            s->tty = strcmp(r->argv[0], "1") == 0;
            s->rows = (unsigned short)atoi(r->argv[1]); s->cols = (unsigned short)atoi(r->argv[2]);
        }
        else if (strcmp(r->op, "fail") == 0 && r->argc == 1) set_fail_stage(r->argv[0]);
        else if (strcmp(r->op, "notify") == 0) s->notify = 1;
        else if (strcmp(r->op, "seccomp") == 0 && r->argc == 1) {
            s->seccomp = hex_decode(r->argv[0], &s->seccomp_length);
            if (!s->seccomp || s->seccomp_length % sizeof(struct sock_filter)) { errno = EINVAL; fail("malformed seccomp program"); }
        }
        else if (strcmp(r->op, "policy") == 0 && r->argc == 1) {
            size_t length;
            unsigned char *message = hex_decode(r->argv[0], &length);
            if (!message || cg_policy_decode(message, length, &policy_storage) != 0) {
                errno = EINVAL;
                fail("malformed process policy");
            }
            s->policy = &policy_storage.policy;   // points into `message`, kept for the process's life
        }
        else { errno = EINVAL; fail("unknown or malformed record in the plan"); }
    }
    if (!s->argv || !s->cwd || s->uid == (uid_t)-1 || s->uid == 0 || s->gid == 0) {
        errno = EINVAL;
        fail("the plan lacks argv, cwd or a non-root user");
    }
}

// ---- privileges ---------------------------------------------------------------------------------------

/// Every capability out of every set: bounding (needs CAP_SETPCAP, so first), ambient, then
/// permitted/effective/inheritable.
static void drop_all_capabilities(void) {
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break;   // past the kernel's last capability
            fail("cannot drop a capability from the bounding set");
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) fail("cannot clear ambient capabilities");
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) fail("capset to the empty set failed");
}

static void install_seccomp(const struct settings *s) {
    // The syscall-policy work supplies the program (struct sock_filter[]); installed last, after
    // no_new_privs, so that it also covers execve of the agent and nothing after it can loosen it.
    if (!s->seccomp) return;
    struct sock_fprog program = {
        .len = (unsigned short)(s->seccomp_length / sizeof(struct sock_filter)),
        .filter = (struct sock_filter *)s->seccomp,
    };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) < 0) fail("seccomp filter refused");
}

// ---- the agent -----------------------------------------------------------------------------------------

static void exec_agent(const struct settings *s) {
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (int i = 0; s->env && s->env[i]; i++)
        if (strncmp(s->env[i], "PATH=", 5) == 0) path = s->env[i] + 5;
    char *const *argv = (char *const *)s->argv;
    char *const *envp = (char *const *)(s->env ? s->env : (const char *[]){ NULL });
    if (strchr(argv[0], '/')) {
        execve(argv[0], argv, envp);
        fail("cannot execute the agent command");
    }
    int saved = ENOENT;
    char candidate[4096];
    const char *cursor = path;
    while (*cursor) {
        const char *end = strchrnul(cursor, ':');
        snprintf(candidate, sizeof candidate, "%.*s/%s", (int)(end - cursor), cursor, argv[0]);
        execve(candidate, argv, envp);
        if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        cursor = *end ? end + 1 : end;
    }
    errno = saved;
    fail("the agent command was not found on the sandbox's PATH");
}

/// True when this user namespace denies setgroups (/proc/self/setgroups says "deny": rootless mode).
static int setgroups_denied(void) {
    char text[16] = { 0 };
    int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    return n >= 4 && strncmp(text, "deny", 4) == 0;
}

/// In the forked agent process: terminal, identity, privileges, filter, exec. Never returns.
static void become_agent(const struct settings *s, int slave, int exec_report, int release) {
    report_fd = exec_report;
    // The agent must not talk to cagent: it could fake "stopped" or errors. (With the seccomp tracer the
    // socket stays until the listener has been passed, a few steps below, and is closed before exec.)
    if (!s->notify) close(INIT_CONTROL_FD);
    stage("agent-session");
    if (s->tty) {
        // A process group of its own inside cagent-init's session, in the foreground of the sandbox's pty:
        // Ctrl-C/Ctrl-Z from the pty reach it, and its group is not orphaned, so Ctrl-Z really stops it.
        if (setpgid(0, 0) < 0) fail("setpgid");
        if (tcsetpgrp(slave, getpid()) < 0) fail("cannot take the pty's foreground");
        for (int fd = 0; fd < 3; fd++) if (dup2(slave, fd) < 0) fail("dup2 of the pty");
        close(slave);
    } else if (setsid() < 0) {
        fail("setsid");   // its own session, no controlling terminal at all
    }

    stage("agent-identity");
    // Rootless mode: an unprivileged cagent had to deny setgroups in this user namespace to write the gid
    // map, so the user's supplementary groups stay (unmapped: nogroup inside). Only that case passes.
    if (setgroups(0, NULL) < 0 && !(errno == EPERM && setgroups_denied())) fail("setgroups([])");
    if (setresgid(s->gid, s->gid, s->gid) < 0) fail("setgid to the agent user");
    if (setresuid(s->uid, s->uid, s->uid) < 0) fail("setuid to the agent user");

    stage("agent-capabilities");
    drop_all_capabilities();

    stage("no-new-privs");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("PR_SET_NO_NEW_PRIVS");

    // Learn mode's seccomp tracer: the listener filter first (before any allowlist filter, whose ERRNO
    // would outrank USER_NOTIF), its fd to cagent, which services it before the exec below (traced too).
    if (s->notify) {
        stage("trace-notify");
        int listener = cg_notify_install();
        if (listener < 0) { errno = -listener; fail("cannot install the seccomp tracer's filter"); }
        if (control_send("N", 1, listener) < 0) fail("cannot pass the tracer's listener to cagent");
        close(listener);
        close(INIT_CONTROL_FD);
    }

    stage("seccomp");
    install_seccomp(s);

    // The process policy last: rlimits, Landlock over the view (paths resolve inside the new root), seccomp.
    stage("policy");
    if (s->policy) {
        int failed_stage = 0;
        int rc = cg_policy_apply(s->policy, &failed_stage);
        if (rc < 0) {
            errno = -rc;
            char name[128];
            snprintf(name, sizeof name, "policy %s", cg_policy_stage_name(failed_stage));
            stage(name);
            fail("the process policy could not be applied");
        }
    }

    // Default signal state for the agent; the mask was fully blocked for cagent-init's signalfd.
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    // Wait until pid 1 has finished its own setup (and dropped its privileges): if that fails, the
    // agent must not have run a single instruction of its own.
    char go;
    ssize_t got;
    do { got = read(release, &go, 1); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(125);
    close(release);
    stage("exec-agent");
    sigprocmask(SIG_SETMASK, &none, NULL);
    exec_agent(s);
}

// ---- pid 1 duties --------------------------------------------------------------------------------------

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGTSTP, SIGALRM, 0 };

static __attribute__((noreturn)) void supervise(pid_t agent, int signals, int exec_report, int tty) {
    int exec_confirmed = 0;
    for (;;) {
        struct pollfd fds[3] = {
            { .fd = signals, .events = POLLIN },
            { .fd = INIT_CONTROL_FD, .events = POLLIN },
            { .fd = exec_confirmed ? -1 : exec_report, .events = POLLIN },
        };
        if (poll(fds, 3, -1) < 0) { if (errno == EINTR) continue; _exit(125); }
        if (fds[2].revents) {
            char message[1024];
            ssize_t n = read(exec_report, message, sizeof message);
            if (n > 0) {   // the agent failed before exec: report it and take the sandbox down
                control_send(message, (size_t)n, -1);
                kill(agent, SIGKILL);
                _exit(125);
            }
            exec_confirmed = 1;
            close(exec_report);
            control_send("R", 1, -1);
        }
        if (fds[1].revents & (POLLHUP | POLLERR | POLLIN)) {
            char byte;
            ssize_t n = recv(INIT_CONTROL_FD, &byte, 1, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                // cagent is gone: the sandbox must not outlive it. Exiting pid 1 kills every process in it.
                _exit(137);
            }
        }
        if (fds[0].revents) {
            struct signalfd_siginfo info;
            if (read(signals, &info, sizeof info) != sizeof info) continue;
            int sig = (int)info.ssi_signo;
            if (sig == SIGCHLD) {
                int status;
                pid_t pid;
                while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED)) > 0) {
                    if (pid != agent) continue;   // an orphan adopted by pid 1: reaped, nothing else
                    if (WIFSTOPPED(status)) { control_send("Z", 1, -1); continue; }
                    if (!exec_confirmed) {
                        char message[1024];
                        ssize_t n = read(exec_report, message, sizeof message);
                        if (n > 0) { control_send(message, (size_t)n, -1); _exit(125); }
                    }
                    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                }
            } else {
                // Without a terminal the agent's group is orphaned and would ignore SIGTSTP: stop it for real.
                if (sig == SIGTSTP && !tty) sig = SIGSTOP;
                kill(-agent, sig);
                if (sig == SIGCONT && tty) tcsetpgrp(5, agent);
            }
        }
    }
}

// ---- the setup sequence --------------------------------------------------------------------------------

int main(int argc, char **argv) {
    (void)argc; (void)argv;

    // Not dumpable: the agent (same uid) can neither ptrace pid 1 nor read /proc/1/{mem,environ,fd}.
    stage("start");
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // The launcher set the parent-death signal after its last uid change; exec may clear it, so set it
    // again, then re-check that cagent is still alive (getppid() is 0 for a pid namespace's init: the
    // control socket's hang-up is the check).
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    struct pollfd alive = { .fd = INIT_CONTROL_FD, .events = 0 };
    if (poll(&alive, 1, 0) < 0 || (alive.revents & (POLLHUP | POLLERR | POLLNVAL))) _exit(137);

    // The plan. Reading it to EOF is also the "network ready" barrier: cagent sends it only after it has
    // configured the sandbox's network namespace from outside (veth, addresses), so nothing below runs early.
    stage("read-plan");
    size_t capacity = 1 << 16, length = 0;
    char *buffer = malloc(capacity);
    for (;;) {
        if (length == capacity) { capacity *= 2; buffer = realloc(buffer, capacity); if (!buffer) fail("out of memory"); }
        ssize_t n = read(INIT_PLAN_FD, buffer + length, capacity - length);
        if (n < 0) { if (errno == EINTR) continue; fail("cannot read the plan"); }
        if (n == 0) break;
        length += (size_t)n;
    }
    close(INIT_PLAN_FD);
    struct plan plan;
    if (plan_parse(buffer, length, &plan) < 0) fail("malformed plan");
    struct settings s;
    read_settings(&plan, &s);

    // A session of its own: cagent-init (and so the agent) never shares the user's session or terminal.
    stage("session");
    if (setsid() < 0) fail("setsid");

    stage("hostname");
    if (s.hostname && sethostname(s.hostname, strlen(s.hostname)) < 0) fail("sethostname");

    // Loopback up while we still hold CAP_NET_ADMIN in the sandbox's network namespace. With the network,
    // cagent made that namespace before the clone and brought lo up itself (the namespace is cagent's, not
    // this user namespace's: nothing in here may reconfigure it); then it is up already.
    stage("loopback");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strcpy(request.ifr_name, "lo");
    if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &request) < 0) fail("cannot read lo's flags");
    if (!(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP;
        if (ioctl(sock, SIOCSIFFLAGS, &request) < 0) fail("cannot bring lo up");
    }
    close(sock);

    // The filesystem view: base tmpfs + pivot, then the plan's operations in the plan's order (the
    // ordering and its reasons live in SandboxPlan.swift), then the final pivot that drops the host's tree.
    mounts_begin();
    for (int i = 0; i < plan.count; i++)
        if (is_mount_op(plan.records[i].op)) mounts_apply(&plan.records[i]);
    mounts_finish();

    stage("cwd");
    if (chdir(s.cwd) < 0) fail("cannot enter the workspace");

    // The agent's terminal comes from the sandbox's own devpts; cagent gets the master and relays it.
    int slave = -1;
    if (s.tty) {
        stage("pty");
        int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        int unlock = 0;
        if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0) fail("cannot allocate a pty in the sandbox");
        slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0) fail("cannot open the pty's slave");
        struct winsize size = { .ws_row = s.rows, .ws_col = s.cols };
        if (s.rows && s.cols) ioctl(slave, TIOCSWINSZ, &size);
        if (ioctl(slave, TIOCSCTTY, 0) < 0) fail("cannot make the pty cagent-init's controlling terminal");
        if (control_send("T", 1, master) < 0) fail("cannot pass the pty to cagent");
        close(master);
        if (slave != 5) {
            if (dup3(slave, 5, O_CLOEXEC) < 0) fail("dup3");
            close(slave);
            slave = 5;
        }
    }

    // Nothing inherited by accident: only 0-2, the control socket and the pty survive.
    stage("close-fds");
    if (syscall(SYS_close_range, s.tty ? 6 : 5, ~0U, 0) < 0) fail("close_range");
    if (!s.tty) close(5);

    stage("signals");
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    for (int i = 0; forwarded[i]; i++) sigaddset(&wanted, forwarded[i]);
    int signals = signalfd(-1, &wanted, SFD_CLOEXEC);
    if (signals < 0) fail("signalfd");

    // The go: while the view above was being built, cagent attached this process to the session's cgroups
    // (and did whatever else must hold before the agent exists); it says "G" once that is done. The agent
    // is forked only after it, so it is born inside its limits. Anything else (cagent gave up and closed
    // the socket, or died) ends the sandbox before the agent exists.
    stage("wait-go");
    char go = 0;
    ssize_t got;
    do { got = recv(INIT_CONTROL_FD, &go, 1, 0); } while (got < 0 && errno == EINTR);
    if (got != 1 || go != 'G') _exit(125);

    stage("fork-agent");
    int report[2], release[2];
    if (pipe2(report, O_CLOEXEC) < 0 || pipe2(release, O_CLOEXEC) < 0) fail("pipe2");
    pid_t agent = fork();
    if (agent < 0) fail("fork");
    if (agent == 0) {
        close(report[0]);
        close(release[1]);
        close(signals);
        become_agent(&s, slave, report[1], release[0]);
    }
    close(report[1]);
    close(release[0]);
    if (s.tty) setpgid(agent, agent);

    // Setup is done: pid 1 keeps no privilege it could lend to the agent.
    stage("init-privileges");
    drop_all_capabilities();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("PR_SET_NO_NEW_PRIVS");
    // EPIPE: the agent child already failed one of its own stages and exited; its report (read by
    // supervise) names that stage, which is the failure the user must see, not this write.
    if (write(release[1], "g", 1) != 1 && errno != EPIPE) fail("cannot release the agent");
    close(release[1]);
    supervise(agent, signals, report[0], s.tty);
}
