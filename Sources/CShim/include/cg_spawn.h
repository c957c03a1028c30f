// cg_spawn.h — clone a sandbox's pid 1 and exec cagent-init.
// Why: the Swift supervisor is multithreaded, so the code between clone and exec must be C and
// async-signal-safe (design.md §2 "Process model"). This does only that: namespaces, the id maps, the
// identity cagent-init runs under, the file descriptors it gets, and exec with an empty environment.
#ifndef CG_SPAWN_H
#define CG_SPAWN_H
#include <sys/types.h>

struct cg_spawn_request {
    /// Absolute path of cagent-init, opened by the parent (exec goes through this fd: no path race).
    const char *init_path;
    /// argv for cagent-init (NULL-terminated); argv[1] is the session id so `ps` says which sandbox it is.
    char *const *argv;
    /// The child's stdin/stdout/stderr, the plan pipe's read end and the control socket's child end.
    int stdio[3];
    int plan_fd;
    int control_fd;
    /// A detached mount of the bounded volume (cg_volume.h) handed over as fd 5, or -1 for none.
    int volume_fd;
    /// The agent user: mapped 1:1 (so workspace files keep their owner) and the only id in the maps.
    uid_t uid;
    gid_t gid;
    /// CLONE_NEW* flags; CLONE_NEWUSER is always added.
    int namespaces;
    /// Test hook: the step to fail on purpose ("child-credentials", "exec-init"; cg_fault.h), NULL in normal runs.
    const char *fail_at;
    /// Rootless mode (cagent is not root): an unprivileged writer of gid_map must first deny setgroups in the
    /// new user namespace, so the child cannot drop its supplementary groups (they stay, unmapped, shown as
    /// nogroup inside; docs/security.md "Rootless mode").
    int rootless;
    /// The session's cgroups, joined at the clone rather than by a cgroup.procs write after it (the first such
    /// write of a process takes cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period,
    /// 6-14 ms here). `tasks_count` cgroup v1 `tasks` files: the calling thread moves itself into each
    /// (`join_tasks`, writing "0": a thread moving itself takes no threadgroup lock), clones — the child
    /// inherits them — and moves back (`leave_tasks`, same order). `into_cgroup` set: `cgroup_fd` is a cgroup2
    /// directory for clone3's CLONE_INTO_CGROUP. Zero/NULL: none of it (the caller adds the child itself).
    const char *const *join_tasks;
    const char *const *leave_tasks;
    int tasks_count;
    int into_cgroup;
    int cgroup_fd;
};

struct cg_spawn_result {
    pid_t pid;
    /// Held open by the parent for the sandbox's lifetime: its hang-up tells the child cagent died.
    int lifeline_fd;
    /// errno of the parent-side step that failed (0 when none), and that step's name.
    int error;
    const char *error_stage;
    /// 1: the child was cloned into every cgroup of the request (join_tasks, cgroup_fd); 0: into none (a join
    /// or the clone into the cgroup was refused: the caller adds the child as before).
    int cgroups_placed;
};

/// Clones and starts cagent-init. Returns 0, or -1 with result->error/error_stage set (the child, if it
/// was created, is killed and reaped: nothing is left behind).
int cg_spawn_init(const struct cg_spawn_request *request, struct cg_spawn_result *result);

extern const int CG_SPAWN_NAMESPACES;   // mount, pid, net, uts, ipc, cgroup

#endif
