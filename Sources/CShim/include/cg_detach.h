// cg_detach.h — continue in a child process that outlives the caller (the end of a session after its exit status
// was reported: NetworkSession.tearDownDetached).
#pragma once
#include <sys/types.h>

// Forks when the calling process has exactly one thread (a fork of a multithreaded process may copy a lock another
// thread holds: the child could deadlock in the allocator or the Swift runtime). In the child: a new session (no
// terminal, none of the shell's job-control signals), stdin/stdout/stderr on /dev/null (a pipe reading cagent's
// output sees its end when cagent exits), every descriptor closed but `keep_fd` (-1: none), the thread's name `name`
// (what `ps -o comm` shows; NULL: unchanged). Returns 0 in the child,
// the child's pid in the caller, -1 with errno (EBUSY: another thread runs) when nothing was forked.
pid_t cg_detach(int keep_fd, const char *name);
