// cg_pty.h — the supervisor's side of the agent's terminal and of signal handling.
// Why: ioctl(2) is variadic (window sizes), SCM_RIGHTS needs CMSG_* macros (the pty master arrives that
// way from cagent-init), and a signal handler that may run on any of Swift's threads must be C.
#ifndef CG_PTY_H
#define CG_PTY_H
#include <sys/types.h>

/// Window size of a terminal; returns 0, or -1 with errno.
int cg_get_winsize(int fd, unsigned short *rows, unsigned short *cols);
int cg_set_winsize(int fd, unsigned short rows, unsigned short cols);

/// Receives one message and, when present, one passed fd (else *fd = -1). Returns the byte count.
ssize_t cg_recv_with_fd(int socket, void *buffer, size_t length, int *fd);

/// Installs handlers for the given signals that write the signal number (one byte) to write_fd, which
/// should be non-blocking. Safe whatever thread the kernel picks. Returns 0 or -1.
int cg_signal_pipe_install(int write_fd, const int *signals, int count);
/// Restores the default disposition of the given signals.
void cg_signal_pipe_remove(const int *signals, int count);



/// pipe2(2) with O_CLOEXEC (and O_NONBLOCK on both ends when asked): needs _GNU_SOURCE, so Swift lacks it.
int cg_pipe(int fds[2], int nonblocking);
/// A new pty pair from the host's devpts (tests use it as "the user's terminal"); both fds CLOEXEC.
/// Returns 0, or -1 with errno. `name` receives the slave's path.
int cg_open_pty(int *master, int *slave, char *name, size_t length);

#endif
