// The plan's wire format: NUL-terminated tokens; an empty token ends a record. Built by SandboxPlan.swift.
// No Foundation, no allocation beyond two arrays: the parser runs before anything else in the sandbox.
#include "init.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int plan_parse(char *buffer, size_t length, struct plan *out) {
    out->records = NULL;
    out->count = 0;
    if (length == 0 || buffer[length - 1] != '\0') { errno = EINVAL; return -1; }
    size_t tokens = 0;
    for (size_t i = 0; i < length; i++) if (buffer[i] == '\0') tokens++;
    const char **argv = calloc(tokens + 1, sizeof *argv);
    struct plan_record *records = calloc(tokens + 1, sizeof *records);
    if (!argv || !records) { errno = ENOMEM; return -1; }
    size_t pos = 0, used = 0;
    int count = 0;
    while (pos < length) {
        const char *op = buffer + pos;
        pos += strlen(op) + 1;
        if (*op == '\0') { errno = EINVAL; return -1; }   // an empty record
        struct plan_record *record = &records[count++];
        record->op = op;
        record->argv = &argv[used];
        record->argc = 0;
        for (;;) {
            if (pos >= length) { errno = EINVAL; return -1; }  // record not terminated
            const char *token = buffer + pos;
            pos += strlen(token) + 1;
            if (*token == '\0') break;
            argv[used++] = token;
            record->argc++;
        }
        argv[used++] = NULL;
    }
    out->records = records;
    out->count = count;
    return 0;
}
