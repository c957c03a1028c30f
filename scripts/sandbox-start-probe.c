// Benchmark helper (docs/benchmarks.md, "Sandbox start"): the sandbox's own start cost without cagent's
// Swift process start. Replays a plan written by `cagent enforce --dump-plan FILE ... -- CMD` through the
// same cg_spawn_init and cagent-init, with /dev/null as stdio, and exits with the agent's status.
//   cc -O2 -I Sources/CShim/include -o /tmp/sandbox-start-probe scripts/sandbox-start-probe.c Sources/CShim/cg_spawn.c
//   /tmp/sandbox-start-probe PLAN UID GID .build/release/cagent-init
#define _GNU_SOURCE
#include "cg_spawn.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s PLAN UID GID INIT\n", argv[0]); return 2; }
    static char plan[1 << 20];
    int fd = open(argv[1], O_RDONLY);
    ssize_t length = fd < 0 ? -1 : read(fd, plan, sizeof plan);
    if (length <= 0) { perror("plan"); return 2; }
    int control[2], pipe_fds[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control);
    pipe2(pipe_fds, O_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    char *init_argv[] = { "cagent-init", "probe", NULL };
    struct cg_spawn_request request = {
        .init_path = argv[4], .argv = init_argv, .stdio = { null, null, null }, .plan_fd = pipe_fds[0],
        .control_fd = control[1], .uid = (uid_t)atoi(argv[2]), .gid = (gid_t)atoi(argv[3]),
        .namespaces = CG_SPAWN_NAMESPACES,
    };
    struct cg_spawn_result result;
    if (cg_spawn_init(&request, &result) != 0) { fprintf(stderr, "spawn failed at %s\n", result.error_stage); return 2; }
    close(pipe_fds[0]); close(control[1]);
    if (write(pipe_fds[1], plan, (size_t)length) != length) return 2;
    close(pipe_fds[1]);
    if (send(control[0], "G", 1, MSG_NOSIGNAL) != 1) return 2;   // the go (nothing to wait for here)
    char message[2048];
    ssize_t n;
    while ((n = recv(control[0], message, sizeof message, 0)) > 0) {
        if (message[0] == 'E') { fprintf(stderr, "%.*s\n", (int)n - 1, message + 1); }
    }
    int status;
    waitpid(result.pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
