#define _GNU_SOURCE
#include "cg_trace_spawn.h"
#include "cg_seccomp_notify.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

int cg_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int cg_send_fd(int sock, int fd) {
    char data = 'F';
    struct iovec iov = { &data, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

int cg_receive_fd(int sock) {
    char data;
    struct iovec iov = { &data, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return -errno;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n == 0 || !c || c->cmsg_type != SCM_RIGHTS) return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static void child_fail(int pipe_fd, int err) {
    while (write(pipe_fd, &err, sizeof(err)) < 0 && errno == EINTR) {}
    _exit(127);
}

pid_t cg_trace_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int cgroup_fd,
                     int notify, int *listener, int *exec_error, int *pidfd) {
    int errpipe[2], sock[2] = { -1, -1 };
    if (pipe2(errpipe, O_CLOEXEC) != 0) return -errno;
    if (notify && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) != 0) {
        int err = errno; close(errpipe[0]); close(errpipe[1]); return -err;
    }
    int pfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    args.pidfd = (uint64_t)(uintptr_t)&pfd;
    args.exit_signal = SIGCHLD;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        int err = errno;
        close(errpipe[0]); close(errpipe[1]);
        if (notify) { close(sock[0]); close(sock[1]); }
        return -err;
    }
    if (pid == 0) {
        // Child: async-signal-safe calls only.
        close(errpipe[0]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (cwd && chdir(cwd) != 0) child_fail(errpipe[1], errno);
        if (notify) {
            close(sock[0]);
            int fd = cg_notify_install();
            if (fd < 0) child_fail(errpipe[1], -fd);
            int rc = cg_send_fd(sock[1], fd);
            if (rc < 0) child_fail(errpipe[1], -rc);
            close(fd);
            close(sock[1]);
        }
        execve(path, argv, envp);
        child_fail(errpipe[1], errno);
    }
    close(errpipe[1]);
    if (notify) {
        close(sock[1]);
        int fd = cg_receive_fd(sock[0]);
        close(sock[0]);
        if (fd < 0) {
            // The child failed before sending: its errno is on the pipe.
            int err = 0;
            if (read(errpipe[0], &err, sizeof(err)) != sizeof(err)) err = -fd;
            close(errpipe[0]);
            *exec_error = -1;
            *pidfd = pfd;
            *listener = -1;
            errno = err;
            return -err;
        }
        *listener = fd;
    }
    *exec_error = errpipe[0];
    *pidfd = pfd;
    return (pid_t)pid;
}
