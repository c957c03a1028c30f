// hooks.bpf.c — the bare cost of the two syscall-exit hooks (run.sh): an empty program and one that reads the
// syscall's saved user registers, on the raw sys_exit tracepoint (every syscall) and on the per-syscall
// event syscalls:sys_exit_newfstatat (only stat/lstat/fstatat/fstat).
#include "../../Sources/CEbpf/bpf/cg_vmlinux_min.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct syscall_regs { unsigned long r10, r9, r8, ax, cx, dx, si, di, orig_ax; };
struct exit_ctx { __u64 regs; int nr; long ret; };
volatile int sink;

SEC("raw_tracepoint/sys_exit") int raw_empty(void *ctx) { return 0; }

SEC("raw_tracepoint/sys_exit") int raw_regs(struct bpf_raw_tracepoint_args *ctx) {
    struct syscall_regs s;
    if (bpf_probe_read_kernel(&s, sizeof(s), (char *)ctx->args[0] + 56) != 0) return 0;
    if (s.orig_ax == 262) sink = 1;
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_newfstatat") int tp_empty(void *ctx) { return 0; }

SEC("tracepoint/syscalls/sys_exit_newfstatat") int tp_regs(struct exit_ctx *ctx) {
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    struct syscall_regs s;
    if (bpf_probe_read_kernel(&s, sizeof(s), (char *)regs + 56) != 0) return 0;
    if (s.orig_ax == 262 && ctx->nr == 262) sink = 1;
    return 0;
}
