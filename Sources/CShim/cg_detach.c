// A detached child for work that must finish but that nobody waits for (docs/network.md "Teardown").
#define _GNU_SOURCE
#include "cg_detach.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// The "Threads:" line of /proc/self/status.
static int thread_count(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buffer[4096];
    ssize_t length = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (length <= 0) return -1;
    buffer[length] = 0;
    const char *line = strstr(buffer, "\nThreads:");
    int threads = -1;
    if (line == NULL || sscanf(line + 9, "%d", &threads) != 1) return -1;
    return threads;
}

pid_t cg_detach(int keep_fd, const char *name) {
    if (thread_count() != 1) {
        errno = EBUSY;
        return -1;
    }
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (name != NULL) prctl(PR_SET_NAME, name, 0, 0, 0);
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(127);
    if (keep_fd > 3) syscall(SYS_close_range, 3U, (unsigned)keep_fd - 1, 0U);
    syscall(SYS_close_range, keep_fd >= 3 ? (unsigned)keep_fd + 1 : 3U, ~0U, 0U);
    return 0;
}
