// cg_seccomp_notify.h — the seccomp user-notification tracer's kernel side: the listener filter, the
// notification ioctls, and reading the stopped process's memory.
// Why: the ioctl request codes are function-like macros, SECCOMP_IOCTL_NOTIF_SET_FLAGS and the sync
// wake-up flag are missing from Debian's headers, and the filter must be installed between fork and exec
// (async-signal-safe C only). The tracer only observes: every notification is answered CONTINUE
// (a decision taken on memory the process can still change would be a TOCTOU hole).
#ifndef CG_SECCOMP_NOTIFY_H
#define CG_SECCOMP_NOTIFY_H

#include <stdint.h>
#include <sys/types.h>

/// A notification: which process stopped in which syscall with which arguments.
struct cg_notification {
    uint64_t id;
    uint32_t pid;   /* in the listener's pid namespace */
    int32_t nr;
    uint64_t args[6];
};

/// Sets no_new_privs and installs the tracing filter (x86_64: the path, exec, connect and bind syscalls
/// notify, everything else is allowed; x32 syscalls ENOSYS, other architectures are killed) with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER. Returns the listener fd, or -errno. Async-signal-safe.
int cg_notify_install(void);

/// Turns on SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+): the kernel wakes the supervisor on the
/// notifying CPU, about 5x cheaper per notification in a VM. Returns 0 or -errno (EINVAL: not supported).
int cg_notify_sync_wakeup(int listener);

/// Waits up to timeout_ms for a notification. Returns 1 (one received into *out), 0 (timeout), -ENOENT or
/// -EPIPE when no task uses the filter any more (end of stream: POLLHUP), or another -errno.
int cg_notify_receive(int listener, int timeout_ms, struct cg_notification *out);

/// Lets the syscall run as if never stopped. Returns 0, or -ENOENT when the task died meanwhile.
int cg_notify_continue(int listener, uint64_t id);

/// Whether the notification is still pending (its task has not died or been interrupted): 1 or 0.
int cg_notify_id_valid(int listener, uint64_t id);

/// Reads a NUL-terminated string of at most max-1 bytes at `address` in process `pid` (page by page, so
/// a string near the end of a mapping reads). Returns its length (without NUL; truncated at max-1), or -errno.
ssize_t cg_notify_read_string(pid_t pid, uint64_t address, char *buffer, size_t max);

/// Reads `length` bytes at `address` in `pid`. Returns bytes read, or -errno.
ssize_t cg_notify_read(pid_t pid, uint64_t address, void *buffer, size_t length);

/// The SO_TYPE of socket `fd` in process `pidfd` (via pidfd_getfd): SOCK_STREAM 1, SOCK_DGRAM 2, or -errno.
int cg_notify_socket_type(int pidfd, int fd);

/// pidfd_open(pid, 0) (no libc wrapper on Debian 12): returns the fd or -errno.
int cg_notify_pidfd(pid_t pid);

/// RESOLVE_IN_ROOT for openat2: the supervisor looks a path up in the process's own root (symlinks
/// resolved inside it, never escaping it).
extern const uint64_t CG_NOTIFY_RESOLVE_IN_ROOT;

#endif
