// syscall-cost.c — N syscalls of one kind in a loop; prints CPU ns per call (CLOCK_THREAD_CPUTIME_ID) and wall ns.
// Kinds: getppid, read (1 byte of /dev/zero), stat (one path, repeated), fstat, statnew (a new missing path each
// call), snprintf (the loop overhead of statnew).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "getppid";
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    int fd = open("/dev/zero", O_RDONLY);
    char buf[1]; struct stat st; char path[64];
    double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    if (!strcmp(kind, "getppid")) for (long i = 0; i < n; i++) syscall(SYS_getppid);
    else if (!strcmp(kind, "read")) for (long i = 0; i < n; i++) read(fd, buf, 1);
    else if (!strcmp(kind, "stat")) for (long i = 0; i < n; i++) stat("/usr/include/stdio.h", &st);
    else if (!strcmp(kind, "fstat")) for (long i = 0; i < n; i++) fstat(fd, &st);
    else if (!strcmp(kind, "statnew")) for (long i = 0; i < n; i++) { snprintf(path, sizeof path, "/tmp/cg-nx-%ld", i); stat(path, &st); }
    else if (!strcmp(kind, "snprintf")) for (long i = 0; i < n; i++) { snprintf(path, sizeof path, "/tmp/cg-nx-%ld", i); }
    else { fprintf(stderr, "unknown kind\n"); return 2; }
    double c1 = now(CLOCK_THREAD_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC);
    printf("%s n=%ld cpu %.0f ns/call wall %.0f ns/call\n", kind, n, (c1 - c0) / n, (w1 - w0) / n);
    return 0;
}
