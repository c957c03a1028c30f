// cagent-init internals. cagent-init is pid 1 of a sandbox: written in C so that nothing heavier than libc
// loads on the launch path (a Swift process costs ~4 ms just to start; see docs/benchmarks.md) and so that
// every step is a plain system call whose failure is reported with its errno.
#ifndef CAGENT_INIT_H
#define CAGENT_INIT_H
#include <stddef.h>
#include <sys/types.h>

// File descriptors cagent's launcher (cg_spawn.c) hands to cagent-init.
#define INIT_PLAN_FD 3      // the plan, read to EOF; EOF is also the "network ready" release
#define INIT_CONTROL_FD 4   // SOCK_SEQPACKET to the supervisor: errors, the pty master, state changes
#define INIT_VOLUME_FD 5    // a detached mount of the bounded volume (plan op `volume`), when there is one

// One plan record: an operation name and its arguments (NUL-terminated strings in the plan buffer).
struct plan_record {
    const char *op;
    int argc;
    const char **argv;
};

struct plan {
    struct plan_record *records;
    int count;
};

/// Parses the plan: tokens end with NUL, a record ends with an empty token. Returns 0 or -1 (errno EINVAL).
int plan_parse(char *buffer, size_t length, struct plan *out);

/// Names the current setup stage; fails it on purpose when the plan's `fail` record names it (tests).
void stage(const char *name);
/// The current stage's name (for error messages).
const char *current_stage(void);
/// Reports "stage X failed: <errno> (<hint>)" to the supervisor and exits: the agent never starts.
__attribute__((noreturn)) void fail(const char *hint);
/// Sets the stage name that `stage` fails on (from the plan's `fail` record).
void set_fail_stage(const char *name);

/// Sends a message (and optionally one file descriptor) on the control socket.
int control_send(const char *message, size_t length, int fd_to_pass);

// Mount operations (mounts.c). Paths in the new root are resolved from its root fd without following
// any symlink, so a symlink planted by the agent in the workspace or shadow home aborts the start.
void mounts_begin(void);           // private propagation, base tmpfs, pivot into it, new root tmpfs
void mounts_apply(const struct plan_record *record);
void mounts_finish(void);          // pivot into the new root, detach the old one, root read-only

#endif
