// cg_ebpf.h — load, attach, read and unload learn mode's eBPF tracer (bpf/cagent_trace.bpf.c).
// Why: libbpf and the generated skeleton are C; Swift gets a handle, records through a callback, counters.
// One tracer per session: it follows every task under one cgroup2 directory (give its open fd).
#ifndef CG_EBPF_H
#define CG_EBPF_H

#include <stddef.h>
#include <stdint.h>
#include "cg_trace_event.h"

typedef struct cg_ebpf_tracer cg_ebpf_tracer;

/// Called for every record the kernel sends; `record` is valid only during the call.
typedef void (*cg_ebpf_callback)(void *context, const struct cg_trace_record *record);

/// Loads the programs, scopes them to the cgroup2 directory `cgroup_fd` (and its descendants) and attaches
/// them. On failure returns NULL, sets errno and writes libbpf's last message (if any) into `error`.
cg_ebpf_tracer *cg_ebpf_open(int cgroup_fd, cg_ebpf_callback callback, void *context, char *error, size_t error_len);

/// Loads the programs into the kernel and unloads them, attaching nothing: 0 when this kernel and these
/// privileges allow the tracer, else -errno with libbpf's last message in `error`.
int cg_ebpf_probe(char *error, size_t error_len);

/// Waits up to timeout_ms (less when 1 MiB is pending), then delivers every pending record. Returns records delivered or -errno.
int cg_ebpf_poll(cg_ebpf_tracer *tracer, int timeout_ms);

/// Ends a cg_ebpf_poll wait at once (from another thread): for a prompt stop.
void cg_ebpf_wake(cg_ebpf_tracer *tracer);

/// An epoll fd that is readable when records are pending (or after cg_ebpf_wake).
int cg_ebpf_fd(cg_ebpf_tracer *tracer);

/// The counters (CG_STAT_*) summed over CPUs. `out` has room for CG_STAT_COUNT values.
void cg_ebpf_stats(cg_ebpf_tracer *tracer, uint64_t *out);

/// How often the kernel saw `key` (first sight included); 0 when unknown (or evicted).
uint64_t cg_ebpf_seen_count(cg_ebpf_tracer *tracer, const struct cg_trace_key *key);

/// Copies up to `max` (key, count) pairs of the dedup map into keys/counts (batched: a few syscalls for
/// the whole map). Returns how many were copied, or -errno.
long cg_ebpf_dump_seen(cg_ebpf_tracer *tracer, struct cg_trace_key *keys, uint64_t *counts, size_t max);

/// Detaches and frees everything (no BPF object outlives this call).
void cg_ebpf_close(cg_ebpf_tracer *tracer);

#endif
