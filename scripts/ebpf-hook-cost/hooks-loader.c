// hooks-loader.c OBJ PROG CMD... — loads one program of hooks.bpf.o, attaches it, runs CMD, detaches
// (printing the detach time to stderr). A per-syscall event needs tracefs for its id: run.sh runs this in a
// private mount namespace with tracefs mounted there.
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static double ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: hooks-loader OBJ PROG CMD...\n"); return 2; }
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    struct bpf_program *p, *want = NULL;
    if (!obj) { fprintf(stderr, "open failed\n"); return 1; }
    bpf_object__for_each_program(p, obj) {
        int me = strcmp(bpf_program__name(p), argv[2]) == 0;
        bpf_program__set_autoload(p, me);
        if (me) want = p;
    }
    if (!want || bpf_object__load(obj)) { fprintf(stderr, "load failed\n"); return 1; }
    struct bpf_link *link = bpf_program__attach(want);
    if (!link) { fprintf(stderr, "attach failed\n"); return 1; }
    pid_t pid = fork();
    if (pid == 0) { execv(argv[3], argv + 3); _exit(127); }
    int status;
    waitpid(pid, &status, 0);
    double t0 = ms();
    bpf_link__destroy(link);
    fprintf(stderr, "detach %.1f ms\n", ms() - t0);
    bpf_object__close(obj);
    return 0;
}
