// cg_container.h — `cagent enforce --in-container`: start the agent from a container's root process.
// Why: in a container cagent cannot clone new namespaces (Docker refuses CLONE_NEWUSER and CAP_SYS_ADMIN),
// so the container itself is the sandbox and its root process must turn into the agent the way cagent-init's
// agent child does: every step between fork and execve is plain async-signal-safe C (the supervisor is a
// multithreaded Swift process), each one named, and a failed step ends the child before the agent exists.
#ifndef CG_CONTAINER_H
#define CG_CONTAINER_H
#include <sys/types.h>
#include "cg_policy.h"

// The steps of the agent child, in order (reported by number on failure; cg_container_stage_name names them).
#define CG_CONTAINER_STAGE_NONE              0
#define CG_CONTAINER_STAGE_SIGNALS           1   // default dispositions, empty mask
#define CG_CONTAINER_STAGE_DROP_CAPABILITIES 2   // bounding, ambient, inheritable; keep only SETUID/SETGID
#define CG_CONTAINER_STAGE_SWITCH_USER       3   // setgroups, setresgid, setresuid (clears what was kept)
#define CG_CONTAINER_STAGE_NO_CAPABILITIES   4   // check: every set is empty and root cannot be regained
#define CG_CONTAINER_STAGE_NO_NEW_PRIVS      5
#define CG_CONTAINER_STAGE_CWD               6
#define CG_CONTAINER_STAGE_TRACE_NOTIFY      10  // learn: the seccomp tracer's listener, passed to the supervisor
#define CG_CONTAINER_STAGE_POLICY            7   // rlimits, Landlock, seccomp (cg_policy_apply; sub-stage in `detail`)
#define CG_CONTAINER_STAGE_RELEASE           8   // waits for the supervisor's go (its DNS gate is up)
#define CG_CONTAINER_STAGE_EXEC              9   // execve of the agent (PATH searched as cagent-init does)

struct cg_container_request {
    uid_t uid;                 // the agent user; never 0
    gid_t gid;
    const gid_t *groups;       // supplementary groups (may be NULL with count 0)
    int group_count;
    const char *cwd;
    char *const *argv;         // argv[0] without '/' is searched on envp's PATH
    char *const *envp;
    const struct cg_policy *policy;   // NULL: none
    int fail_at;               // tests: fail this stage on purpose (0: none)
    int notify_socket;         // learn: a unix socket the tracer's listener is sent on (SCM_RIGHTS); -1: none.
                               // The listener comes after cwd and before the policy, which then must not open
                               // paths (no Landlock): the supervisor services notifications only once the
                               // child is ready.
    pid_t supervisor;          // set by cg_container_spawn (the parent-death check)
};

struct cg_container_result {
    pid_t pid;                 // the agent child's pid
    int stage;                 // failed stage (CG_CONTAINER_STAGE_*), 0 on success
    int detail;                // CG_POLICY_STAGE_* when stage is POLICY
    int error;                 // errno of the failed step
    int release_fd;            // the supervisor's end of the go pipe (-1 once used)
    int report_fd;             // the child's reports (-1 once used)
};

/// Forks the agent child and waits until it has run every step up to RELEASE (it then holds no capability,
/// runs as the agent user under its policy, and waits). Returns 0, or -1 with stage/error set (the child is
/// then reaped). Nothing of the agent has run yet: cg_container_abort ends it, cg_container_release starts it.
int cg_container_spawn(const struct cg_container_request *request, struct cg_container_result *result);

/// Sends the go and waits for the exec (the report pipe closes on it). Returns 0, or -1 with stage/error
/// set when the exec failed (the child is then reaped).
int cg_container_release(struct cg_container_result *result);

/// Closes the go pipe without a go: the child exits 125 without running the agent; reaped here.
void cg_container_abort(struct cg_container_result *result);

/// Receives one file descriptor sent with SCM_RIGHTS on `socket` (the tracer's listener). Returns it or -errno.
int cg_container_receive_fd(int socket);

/// A name for a stage, for messages.
const char *cg_container_stage_name(int stage);

/// The supervisor after the agent started: every capability out of the bounding set and the permitted and
/// effective sets but those in `keep` (a bit mask: CAP_NET_ADMIN for the gate's pins and the denial reader,
/// CAP_KILL to forward signals to the agent's uid), not dumpable. Per thread, as capabilities are: called
/// before the supervisor starts its threads, which inherit it. Returns 0 or -errno.
int cg_container_keep_only(unsigned long long keep);

/// cg_container_keep_only in the threads `tids` (each runs it from a handler of cg_container_keep_signal()),
/// then in the caller. Threads made later inherit the result. -ETIMEDOUT when a thread did not answer within
/// 2 s. The signal is ignored afterwards. Returns 0 or -errno.
int cg_container_keep_only_threads(unsigned long long keep, const pid_t *tids, int count);
int cg_container_keep_signal(void);
/// The calling thread's id.
pid_t cg_container_gettid(void);

/// The calling thread's effective, permitted, inheritable and bounding sets are all empty (1), or not (0).
int cg_capabilities_empty(void);

#endif
