#define _GNU_SOURCE
#include "cg_caps.h"
#include <stdio.h>
#include <sys/prctl.h>
#include <linux/capability.h>

int cg_capbset_read(int cap) { return prctl(PR_CAPBSET_READ, cap, 0, 0, 0); }
int cg_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }
int cg_set_dumpable(int value) { return prctl(PR_SET_DUMPABLE, value, 0, 0, 0); }
int cg_cap_last_cap(void) {
    int last = -1;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) { if (fscanf(f, "%d", &last) != 1) last = -1; fclose(f); }
    return last;
}
