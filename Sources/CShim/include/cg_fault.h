// The test hook `--fail-at-stage` on the C side: the launcher's child (cg_spawn.c) and cagent-init (main.c)
// decide with this one rule whether the step they enter is the one asked to fail (Swift: SetupStage).
#ifndef CG_FAULT_H
#define CG_FAULT_H
#include <string.h>

/// Whether `stage` ("bind /usr") is the step `asked` names: the whole name, or its first word ("bind").
/// NULL `asked`: no failure was asked for.
static inline int cg_fail_requested(const char *asked, const char *stage) {
    if (!asked) return 0;
    size_t length = strlen(asked);
    return strncmp(asked, stage, length) == 0 && (stage[length] == '\0' || stage[length] == ' ');
}

#endif
