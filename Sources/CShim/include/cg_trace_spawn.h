// cg_trace_spawn.h — start a process tree to be traced: in a given cgroup2 directory (clone3 with
// CLONE_INTO_CGROUP, so not one instruction runs outside the eBPF tracer's scope) and/or under the
// seccomp tracing filter (the listener fd comes back over a socketpair before execve).
// Why: everything between clone and exec must be async-signal-safe C. The sandbox launcher does the same
// in its own child: clone3 with .cgroup = the session cgroup fd and CLONE_INTO_CGROUP, and
// cg_notify_install() + cg_send_fd() as its last steps before execve (docs/tracing.md).
#ifndef CG_TRACE_SPAWN_H
#define CG_TRACE_SPAWN_H

#include <sys/types.h>

/// Starts `path` with `argv`/`envp` (NULL-terminated) in working directory `cwd` (NULL: inherit).
/// cgroup_fd >= 0: the child starts in that cgroup2 directory. notify != 0: the child installs the seccomp
/// tracing filter and *listener receives its fd. *exec_error receives the read end of a CLOEXEC pipe: EOF
/// means execve succeeded, else it carries an int errno. Read it only after servicing the listener has
/// begun (execve itself is traced: waiting first would deadlock). Returns the pid (and *pidfd), or -errno.
pid_t cg_trace_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int cgroup_fd,
                     int notify, int *listener, int *exec_error, int *pidfd);

/// pipe2(fds, O_CLOEXEC) (Swift cannot see pipe2 without _GNU_SOURCE). Returns 0 or -errno.
int cg_pipe_cloexec(int fds[2]);

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS). Returns 0 or -errno. Async-signal-safe.
int cg_send_fd(int sock, int fd);

/// Receives one fd from `sock`. Returns it, or -errno.
int cg_receive_fd(int sock);

#endif
