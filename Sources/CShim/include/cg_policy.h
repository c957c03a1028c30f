// cg_policy.h — apply the sandbox's process policy in its fixed order, then exec.
// Why: cgroup placement, rlimits, Landlock and seccomp must all happen in the final single-threaded process
// between fork and execve, where only async-signal-safe C may run. cagent-init calls cg_policy_apply as
// its last step before execve; tests call cg_policy_spawn to run a real probe under the real policy.
#ifndef CG_POLICY_H
#define CG_POLICY_H
#include <stdint.h>
#include <sys/types.h>
#include "cg_landlock.h"

/// One resource limit; applied lower-only (never above the current hard limit: raising needs
/// CAP_SYS_RESOURCE, which root may lack).
struct cg_rlimit_setting {
    int resource;      // RLIMIT_*
    uint64_t soft;
    uint64_t hard;
};

/// The policy, in the order it is applied. Any part may be empty (count 0 / NULL).
struct cg_policy {
    const char *const *cgroup_procs;   // cgroup.procs files to join (writes "0": the calling process)
    unsigned cgroup_count;
    const struct cg_rlimit_setting *rlimits;
    unsigned rlimit_count;
    const struct cg_landlock_ruleset *landlock;   // NULL: no Landlock layer (kernel without it)
    const void *seccomp_filter;                   // struct sock_filter[], NULL: no filter
    unsigned seccomp_count;
};

// Stages reported on failure.
#define CG_POLICY_STAGE_NONE     0
#define CG_POLICY_STAGE_CGROUP   1
#define CG_POLICY_STAGE_RLIMIT   2
#define CG_POLICY_STAGE_LANDLOCK 3
#define CG_POLICY_STAGE_SECCOMP  4
#define CG_POLICY_STAGE_SPAWN    5
#define CG_POLICY_STAGE_EXEC     6

// The policy as one flat message, so the supervisor can send it to cagent-init over the plan pipe and the
// init (no Foundation, no allocation) can apply it. Little-endian, no padding:
//   "CGP1"
//   u32 n, then n NUL-terminated cgroup.procs paths
//   u32 n, then n x { i32 resource, u64 soft, u64 hard }
//   u32 landlock (0 or 1); if 1: u32 abi, u64 handled_fs, u64 scoped, u32 n, then n x { u64 access, path NUL }
//   u32 n, then n x 8 bytes of struct sock_filter
// Written by ProcessPolicy.serialized() (PolicyExec.swift).
#define CG_POLICY_MAX_CGROUPS 8
#define CG_POLICY_MAX_RLIMITS 16
#define CG_POLICY_MAX_RULES   256

/// Where a decoded policy points: it refers into the message buffer, which must outlive it.
struct cg_policy_storage {
    struct cg_policy policy;
    const char *cgroup_procs[CG_POLICY_MAX_CGROUPS];
    struct cg_rlimit_setting rlimits[CG_POLICY_MAX_RLIMITS];
    struct cg_landlock_ruleset landlock;
    const char *paths[CG_POLICY_MAX_RULES];
    uint64_t access[CG_POLICY_MAX_RULES];
};

/// Decodes a message; returns 0 and fills storage->policy, or -EINVAL for a malformed or oversized one.
/// No allocation: safe between fork and exec.
int cg_policy_decode(const void *message, unsigned long length, struct cg_policy_storage *storage);

/// Applies: join cgroups, lower rlimits, Landlock, seccomp (last: after it only execve needs to pass).
/// Returns 0, or -errno with *stage set to a CG_POLICY_STAGE_*.
int cg_policy_apply(const struct cg_policy *policy, int *stage);

/// A name for a stage, for messages.
const char *cg_policy_stage_name(int stage);

// cg_policy_spawn flags.
#define CG_SPAWN_NEWPID  1   // the child is pid 1 of a new pid namespace (raw clone, fork-like)
#define CG_SPAWN_SETSID  2   // new session; stdin (a tty) becomes the controlling terminal
#define CG_SPAWN_NEWNS   4   // a new mount namespace with every mount private (tests: a mount that
                             // got through could not reach the host)

/// Forks; the child resets signals, dup2s stdin/stdout/stderr from in/out/err, applies the policy and
/// execve(path, argv, envp). Returns the child's pid once it has exec'd; or -errno with *stage set, when
/// a step in the child (or the fork) failed (the child is then reaped already).
pid_t cg_policy_spawn(const struct cg_policy *policy, const char *path, char *const argv[], char *const envp[],
                      int in, int out, int err, int flags, int *stage);

#endif
