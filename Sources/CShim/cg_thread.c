#define _GNU_SOURCE
#include "cg_thread.h"
#include <sys/prctl.h>

void cg_thread_set_name(const char *name) {
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
