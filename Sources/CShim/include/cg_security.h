// cg_security.h — Landlock and seccomp feature probes.
// Why: these syscalls have no libc wrappers and Debian's 6.1 headers lack the newer constants.
#ifndef CG_SECURITY_H
#define CG_SECURITY_H

/// Landlock ABI version (>= 1), or -1 with errno (EOPNOTSUPP: disabled, ENOSYS: not built).
int cg_landlock_abi_version(void);

/// 1 when seccomp(SECCOMP_GET_ACTION_AVAIL) reports SECCOMP_RET_USER_NOTIF, 0 when not, -1 on error.
int cg_seccomp_user_notif_available(void);

#endif
