#define _GNU_SOURCE
#include "cg_ebpf.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cagent_trace.skel.h"

struct cg_ebpf_tracer {
    struct cagent_trace *skel;
    struct ring_buffer *ring;
    cg_ebpf_callback callback;
    void *context;
    int cpus;
    int epoll;   /* our own: libbpf's ring epoll fd + `wake` */
    int wake;    /* eventfd: cg_ebpf_wake() ends a wait at once */
    struct cg_trace_record full;
};

// libbpf's messages: kept (the last warning) for the error a failed open reports, never printed.
static _Thread_local char last_message[512];

static int keep_message(enum libbpf_print_level level, const char *format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    vsnprintf(last_message, sizeof(last_message), format, args);
    size_t n = strlen(last_message);
    while (n > 0 && last_message[n - 1] == '\n') last_message[--n] = 0;
    return 0;
}

// The kernel's BTF for CO-RE, copied into a memfd with one mmap: libbpf 1.1 reads /sys/kernel/btf/vmlinux
// 4 KiB per read(2) (about 1,350 syscalls, ~25 ms here), a memfd in one. -1 when the kernel cannot mmap
// it (before 6.16): libbpf then reads the sysfs file itself.
static int vmlinux_btf_copy(void) {
    int fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    void *data = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0) data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) return -1;
    int copy = memfd_create("cagent-vmlinux-btf", MFD_CLOEXEC);
    size_t done = 0;
    while (copy >= 0 && done < (size_t)st.st_size) {
        ssize_t n = write(copy, (char *)data + done, (size_t)st.st_size - done);
        if (n <= 0) { close(copy); copy = -1; break; }
        done += (size_t)n;
    }
    munmap(data, (size_t)st.st_size);
    return copy;
}

// Opens and loads the skeleton (CO-RE against the kernel's BTF).
static struct cagent_trace *open_and_load(void) {
    int btf = vmlinux_btf_copy();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", btf);
    LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf >= 0 ? path : NULL);
    struct cagent_trace *skel = cagent_trace__open_opts(&opts);
    int err = 0;
    if (skel && cagent_trace__load(skel) != 0) {
        err = errno;
        cagent_trace__destroy(skel);
        skel = NULL;
    }
    if (btf >= 0) close(btf);
    if (err) errno = err;
    return skel;
}

static int deliver(void *context, void *data, size_t size) {
    cg_ebpf_tracer *tracer = context;
    if (size >= sizeof(struct cg_trace_record)) {
        tracer->callback(tracer->context, data);
    } else if (size >= offsetof(struct cg_trace_record, path)) {
        // A short record (only the bytes in use were sent): complete it with zeros.
        memset(&tracer->full, 0, sizeof(tracer->full));
        memcpy(&tracer->full, data, size);
        tracer->callback(tracer->context, &tracer->full);
    }
    return 0;
}

static cg_ebpf_tracer *fail(cg_ebpf_tracer *tracer, int err, const char *what, char *error, size_t error_len) {
    if (error && error_len)
        snprintf(error, error_len, "%s: %s%s%s", what, strerror(err), last_message[0] ? "; libbpf: " : "", last_message);
    cg_ebpf_close(tracer);
    errno = err;
    return NULL;
}

cg_ebpf_tracer *cg_ebpf_open(int cgroup_fd, cg_ebpf_callback callback, void *context, char *error, size_t error_len) {
    last_message[0] = 0;
    libbpf_set_print(keep_message);
    cg_ebpf_tracer *tracer = calloc(1, sizeof(*tracer));
    if (!tracer) return fail(NULL, ENOMEM, "allocate", error, error_len);
    tracer->callback = callback;
    tracer->context = context;
    tracer->epoll = -1;
    tracer->wake = -1;
    tracer->cpus = libbpf_num_possible_cpus();
    if (tracer->cpus <= 0) return fail(tracer, EINVAL, "count CPUs", error, error_len);
    tracer->skel = open_and_load();
    if (!tracer->skel) return fail(tracer, errno ? errno : EINVAL, "load the BPF programs", error, error_len);
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(tracer->skel->maps.scope), &zero, &cgroup_fd, BPF_ANY) != 0)
        return fail(tracer, errno, "scope the tracer to the cgroup", error, error_len);
    if (cagent_trace__attach(tracer->skel) != 0)
        return fail(tracer, errno ? errno : EINVAL, "attach the raw tracepoints", error, error_len);
    tracer->ring = ring_buffer__new(bpf_map__fd(tracer->skel->maps.events), deliver, tracer, NULL);
    if (!tracer->ring) return fail(tracer, errno ? errno : EINVAL, "open the ring buffer", error, error_len);
    tracer->epoll = epoll_create1(EPOLL_CLOEXEC);
    tracer->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (tracer->epoll < 0 || tracer->wake < 0) return fail(tracer, errno, "create the wake-up fds", error, error_len);
    struct epoll_event ring = { .events = EPOLLIN, .data.u32 = 0 }, wake = { .events = EPOLLIN, .data.u32 = 1 };
    if (epoll_ctl(tracer->epoll, EPOLL_CTL_ADD, ring_buffer__epoll_fd(tracer->ring), &ring) != 0 ||
        epoll_ctl(tracer->epoll, EPOLL_CTL_ADD, tracer->wake, &wake) != 0)
        return fail(tracer, errno, "watch the ring buffer", error, error_len);
    return tracer;
}

int cg_ebpf_probe(char *error, size_t error_len) {
    last_message[0] = 0;
    libbpf_set_print(keep_message);
    struct cagent_trace *skel = open_and_load();
    if (!skel) {
        int err = errno ? errno : EINVAL;
        if (error && error_len)
            snprintf(error, error_len, "%s%s%s", strerror(err), last_message[0] ? "; libbpf: " : "", last_message);
        return -err;
    }
    cagent_trace__destroy(skel);
    return 0;
}

int cg_ebpf_poll(cg_ebpf_tracer *tracer, int timeout_ms) {
    // Records are sent without a wake-up (see send() in the BPF program): wait, then drain regardless.
    struct epoll_event events[2];
    int n = epoll_wait(tracer->epoll, events, 2, timeout_ms);
    if (n < 0 && errno != EINTR) return -errno;
    for (int i = 0; i < n; i++) {
        if (events[i].data.u32 == 1) {
            uint64_t value;
            while (read(tracer->wake, &value, sizeof(value)) > 0) {}
        }
    }
    int delivered = ring_buffer__consume(tracer->ring);
    return delivered;
}

void cg_ebpf_wake(cg_ebpf_tracer *tracer) {
    uint64_t one = 1;
    if (write(tracer->wake, &one, sizeof(one)) < 0) { /* already pending */ }
}

int cg_ebpf_fd(cg_ebpf_tracer *tracer) { return tracer->epoll; }

void cg_ebpf_stats(cg_ebpf_tracer *tracer, uint64_t *out) {
    uint64_t values[tracer->cpus];
    int fd = bpf_map__fd(tracer->skel->maps.stats);
    for (uint32_t i = 0; i < CG_STAT_COUNT; i++) {
        out[i] = 0;
        if (bpf_map_lookup_elem(fd, &i, values) != 0) continue;
        for (int cpu = 0; cpu < tracer->cpus; cpu++) out[i] += values[cpu];
    }
}

uint64_t cg_ebpf_seen_count(cg_ebpf_tracer *tracer, const struct cg_trace_key *key) {
    uint64_t value = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(tracer->skel->maps.seen), key, &value) != 0) return 0;
    return value;
}

long cg_ebpf_dump_seen(cg_ebpf_tracer *tracer, struct cg_trace_key *keys, uint64_t *counts, size_t max) {
    int fd = bpf_map__fd(tracer->skel->maps.seen);
    size_t have = 0;
    uint64_t batch = 0;
    void *in = NULL;
    while (have < max) {
        __u32 n = (__u32)(max - have > 4096 ? 4096 : max - have);
        int rc = bpf_map_lookup_batch(fd, in, &batch, keys + have, counts + have, &n, NULL);
        int err = rc ? errno : 0;
        have += n;
        in = &batch;
        if (rc) {
            if (err == ENOENT) break;  // the whole map was read
            return -err;
        }
    }
    return (long)have;
}

void cg_ebpf_close(cg_ebpf_tracer *tracer) {
    if (!tracer) return;
    if (tracer->epoll >= 0) close(tracer->epoll);
    if (tracer->wake >= 0) close(tracer->wake);
    if (tracer->ring) ring_buffer__free(tracer->ring);
    if (tracer->skel) cagent_trace__destroy(tracer->skel);
    free(tracer);
}
