// Benchmark helper (docs/benchmarks.md, "Sandbox start"): the sandbox's own start cost without cagent's
// Swift process start. Replays a plan written by `cagent enforce --dump-plan FILE ... -- CMD` through the
// same cg_spawn_init and cagent-init, with /dev/null as stdio, and exits with the agent's status. The plan's
// bounded volume (the shadow home, an ext4 image cagent loop-mounts) is stood in for by a detached tmpfs: the
// replay measures the sandbox's setup, not the image's mount (docs/benchmarks.md says which row is which).
//   cc -O2 -I Sources/CShim/include -o /tmp/sandbox-start-probe scripts/sandbox-start-probe.c Sources/CShim/cg_spawn.c
//   /tmp/sandbox-start-probe PLAN UID GID .build/release/cagent-init
#define _GNU_SOURCE
#include "cg_spawn.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
    // A detached tmpfs handed over as the volume (fd 5 in the child), as cagent hands over its image's mount.
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) { perror("fsopen tmpfs"); return 2; }
    request.volume_fd = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (request.volume_fd < 0) { perror("fsmount"); return 2; }
    close(fs);
    struct cg_spawn_result result;
    if (cg_spawn_init(&request, &result) != 0) { fprintf(stderr, "spawn failed at %s\n", result.error_stage); return 2; }
    close(pipe_fds[0]); close(control[1]); close(request.volume_fd);
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
