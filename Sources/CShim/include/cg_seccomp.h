// cg_seccomp.h — install a compiled seccomp filter.
// Why: prctl(2) is variadic and seccomp(2) has no libc wrapper. The supervisor compiles the filter once
// (SeccompCompiler.swift); cagent-init installs it as the very last step before execve, so nothing it does
// during setup has to pass the agent's filter. Async-signal-safe: raw syscalls only, no allocation.
#ifndef CG_SECCOMP_H
#define CG_SECCOMP_H

/// Sets PR_SET_NO_NEW_PRIVS, then seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, prog) with
/// `count` instructions of `struct sock_filter` at `filter`. Returns 0, or -errno (-ESRCH when another
/// thread could not be synchronised). Flags: TSYNC, so a stray thread never runs unfiltered; not
/// SPEC_ALLOW (keep the kernel's speculative-store-bypass mitigation for seccomp tasks); no NEW_LISTENER
/// (this filter only decides; tracing is a separate filter).
int cg_seccomp_install(const void *filter, unsigned count);

/// The Seccomp: field of /proc/self/status for the calling thread (0 off, 1 strict, 2 filter), or -1.
int cg_seccomp_mode(void);

#endif
