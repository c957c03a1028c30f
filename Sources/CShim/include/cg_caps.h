// cg_caps.h — capability and prctl queries.
// Why: prctl(2) is variadic, so Swift cannot call it.
#ifndef CG_CAPS_H
#define CG_CAPS_H

/// prctl(PR_CAPBSET_READ, cap): 1 when cap is in the bounding set, 0 when not, -1 on error.
int cg_capbset_read(int cap);
/// prctl(PR_GET_NO_NEW_PRIVS).
int cg_get_no_new_privs(void);
/// Highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap is the other source).
int cg_cap_last_cap(void);
/// prctl(PR_SET_DUMPABLE, value): rootless mode restores it after root became the user (a uid change clears it).
int cg_set_dumpable(int value);

#endif
