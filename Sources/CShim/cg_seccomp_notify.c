#define _GNU_SOURCE
#include "cg_seccomp_notify.h"
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define NOTIFY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF)

int cg_notify_install(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        NOTIFY(SYS_open), NOTIFY(SYS_openat), NOTIFY(SYS_openat2), NOTIFY(SYS_creat),
        NOTIFY(SYS_stat), NOTIFY(SYS_lstat), NOTIFY(SYS_newfstatat), NOTIFY(SYS_statx),
        NOTIFY(SYS_access), NOTIFY(SYS_faccessat), NOTIFY(SYS_faccessat2), NOTIFY(SYS_readlink),
        NOTIFY(SYS_readlinkat), NOTIFY(SYS_chdir),
        NOTIFY(SYS_execve), NOTIFY(SYS_execveat),
        NOTIFY(SYS_unlink), NOTIFY(SYS_unlinkat), NOTIFY(SYS_rmdir),
        NOTIFY(SYS_rename), NOTIFY(SYS_renameat), NOTIFY(SYS_renameat2),
        NOTIFY(SYS_mkdir), NOTIFY(SYS_mkdirat),
        NOTIFY(SYS_connect), NOTIFY(SYS_bind),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return fd < 0 ? -errno : (int)fd;
}

int cg_notify_sync_wakeup(int listener) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0 ? 0 : -errno;
}

int cg_notify_receive(int listener, int timeout_ms, struct cg_notification *out) {
    struct pollfd p = { .fd = listener, .events = POLLIN };
    int n = poll(&p, 1, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    if (n == 0) return 0;
    if (!(p.revents & POLLIN)) return (p.revents & POLLHUP) ? -EPIPE : -EIO;
    struct seccomp_notif req;
    memset(&req, 0, sizeof(req));
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
        int err = errno;
        if (err == EINTR) return 0;
        if (err == ENOENT) {
            // The notifying task died before we read it, or (kernel >= 6.6) no task uses the filter any
            // more. Tell them apart by POLLHUP, so a dead task does not end the stream and the end does
            // not busy-loop (kernel-notes §5).
            struct pollfd q = { .fd = listener, .events = POLLIN };
            if (poll(&q, 1, 0) >= 0 && (q.revents & POLLHUP) && !(q.revents & POLLIN)) return -ENOENT;
            return 0;
        }
        return -err;
    }
    out->id = req.id;
    out->pid = req.pid;
    out->nr = req.data.nr;
    for (int i = 0; i < 6; i++) out->args[i] = req.data.args[i];
    return 1;
}

int cg_notify_continue(int listener, uint64_t id) {
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 ? 0 : -errno;
}

int cg_notify_id_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

ssize_t cg_notify_read(pid_t pid, uint64_t address, void *buffer, size_t length) {
    struct iovec local = { buffer, length };
    struct iovec remote = { (void *)(uintptr_t)address, length };
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return n < 0 ? -errno : n;
}

ssize_t cg_notify_read_string(pid_t pid, uint64_t address, char *buffer, size_t max) {
    if (max == 0) return -EINVAL;
    size_t have = 0;
    while (have < max - 1) {
        uint64_t at = address + have;
        size_t page_left = 4096 - (at & 4095);
        size_t want = max - 1 - have;
        if (want > page_left) want = page_left;
        ssize_t n = cg_notify_read(pid, at, buffer + have, want);
        if (n <= 0) {
            if (have == 0) return n < 0 ? n : -EFAULT;
            break;
        }
        char *nul = memchr(buffer + have, 0, (size_t)n);
        if (nul) { have = (size_t)(nul - buffer); buffer[have] = 0; return (ssize_t)have; }
        have += (size_t)n;
    }
    buffer[have] = 0;
    return (ssize_t)have;
}

int cg_notify_socket_type(int pidfd, int fd) {
    long copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (copy < 0) return -errno;
    int type = 0;
    socklen_t len = sizeof(type);
    int rc = getsockopt((int)copy, SOL_SOCKET, SO_TYPE, &type, &len);
    int err = errno;
    close((int)copy);
    return rc == 0 ? type : -err;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
int cg_notify_pidfd(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

const uint64_t CG_NOTIFY_RESOLVE_IN_ROOT = 0x10; /* RESOLVE_IN_ROOT, linux/openat2.h */
