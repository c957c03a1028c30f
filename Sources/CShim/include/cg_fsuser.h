// cg_fsuser.h — switch the calling thread's file-system identity (fsuid, fsgid, supplementary groups).
// Why: cagent runs as root but opens files the invoking user names (profiles, --db, imports) with that
// user's rights. On Linux these credentials are per thread in the kernel; glibc's setgroups/setfsuid
// wrappers broadcast to every thread (nptl setxid), so the raw syscalls are used here, on this thread only.
// Changing fsuid from 0 to non-zero also clears CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER... from
// the thread's effective set (capabilities(7)); switching back to 0 restores them from the permitted set.
#ifndef CG_FSUSER_H
#define CG_FSUSER_H
#include <sys/types.h>

/// Sets supplementary groups, fsgid, then fsuid of the calling thread. 0, or -errno (the thread may be
/// partly switched then: call cg_fs_restore). Verifies that fsuid/fsgid took effect.
int cg_fs_become(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);
/// Restores fsuid first (regaining the capabilities), then fsgid and the groups. 0 or -errno.
int cg_fs_restore(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);
/// The calling thread's current fsuid and fsgid.
void cg_fs_current(uid_t *uid, gid_t *gid);

#endif
