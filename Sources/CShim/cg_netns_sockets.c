#define _GNU_SOURCE
#include "cg_netns_sockets.h"
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CG_NETNS_MAX_SOCKETS 16

// The child runs only raw system calls (the parent is multithreaded Swift): setns, ioctl, socket, sendmsg.
static void child(int user_fd, int net_fd, int channel, const int *domains, const int *types, const int *protocols,
                  int count, int loopback_up) {
    int report[2] = { 0, 0 };   // stage number, errno
    int fds[CG_NETNS_MAX_SOCKETS];
    if (syscall(SYS_setns, user_fd, CLONE_NEWUSER) < 0) { report[0] = 1; goto fail; }
    if (syscall(SYS_setns, net_fd, CLONE_NEWNET) < 0) { report[0] = 2; goto fail; }
    if (loopback_up) {
        int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq request;
        memset(&request, 0, sizeof request);
        memcpy(request.ifr_name, "lo", 3);
        if (probe < 0 || ioctl(probe, SIOCGIFFLAGS, &request) < 0) { report[0] = 3; goto fail; }
        request.ifr_flags |= IFF_UP;
        if (ioctl(probe, SIOCSIFFLAGS, &request) < 0) { report[0] = 3; goto fail; }
        close(probe);
    }
    for (int i = 0; i < count; i++) {
        fds[i] = socket(domains[i], types[i] | SOCK_CLOEXEC, protocols[i]);
        if (fds[i] < 0) { report[0] = 4; goto fail; }
    }
    char control[CMSG_SPACE(sizeof(int) * CG_NETNS_MAX_SOCKETS)];
    memset(control, 0, sizeof control);
    struct iovec iov = { .iov_base = report, .iov_len = sizeof report };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                              .msg_controllen = CMSG_SPACE(sizeof(int) * count) };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    if (sendmsg(channel, &message, 0) < 0) _exit(126);
    _exit(0);
fail:
    report[1] = errno;
    (void)!write(channel, report, sizeof report);
    _exit(125);
}

static const char *cg_netns_stages[] = { "netns-sockets", "join the sandbox's user namespace", "join the sandbox's network namespace",
                                         "bring lo up in the sandbox", "create a socket in the sandbox" };

int cg_netns_sockets(pid_t pid, const int *domains, const int *types, const int *protocols, int count,
                     int loopback_up, int *fds, const char **stage) {
    *stage = cg_netns_stages[0];
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    int user_fd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    int net_fd = open(path, O_RDONLY | O_CLOEXEC);
    int result = -1;
    if (user_fd >= 0 && net_fd >= 0) {
        result = cg_netns_sockets_at(user_fd, net_fd, domains, types, protocols, count, loopback_up, fds, stage);
    }
    int saved = errno;
    if (user_fd >= 0) close(user_fd);
    if (net_fd >= 0) close(net_fd);
    errno = saved;
    return result;
}

int cg_netns_sockets_at(int user_fd, int net_fd, const int *domains, const int *types, const int *protocols, int count,
                        int loopback_up, int *fds, const char **stage) {
    *stage = cg_netns_stages[0];
    if (count < 1 || count > CG_NETNS_MAX_SOCKETS) { errno = EINVAL; return -1; }
    int channel[2] = { -1, -1 };
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) < 0) return -1;
    pid_t helper = fork();
    if (helper == 0) { close(channel[0]); child(user_fd, net_fd, channel[1], domains, types, protocols, count, loopback_up); }
    int saved = errno;
    close(channel[1]);
    if (helper < 0) { close(channel[0]); errno = saved; return -1; }
    int report[2] = { 0, 0 };
    char control[CMSG_SPACE(sizeof(int) * CG_NETNS_MAX_SOCKETS)];
    struct iovec iov = { .iov_base = report, .iov_len = sizeof report };
    struct msghdr message = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    ssize_t got;
    do { got = recvmsg(channel[0], &message, MSG_CMSG_CLOEXEC); } while (got < 0 && errno == EINTR);
    close(channel[0]);
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {}
    if (got != (ssize_t)sizeof report) { errno = EPROTO; return -1; }
    if (report[0] != 0) { *stage = cg_netns_stages[report[0]]; errno = report[1]; return -1; }
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_type != SCM_RIGHTS || header->cmsg_len != CMSG_LEN(sizeof(int) * count)) { errno = EPROTO; return -1; }
    memcpy(fds, CMSG_DATA(header), sizeof(int) * count);
    return 0;
}
