// cg_vmlinux_min.h — the few kernel types cagent_trace.bpf.c reads, instead of a 135k-line vmlinux.h.
// Why: the build must not depend on the build machine's kernel, and the skeleton must regenerate byte for
// byte anywhere. Every struct is marked preserve_access_index, so libbpf relocates each field access
// (CO-RE) against the running kernel's BTF (/sys/kernel/btf/vmlinux) at load time: only the names of the
// fields matter here, not their offsets. pt_regs is the x86_64 syscall ABI.
#ifndef CG_VMLINUX_MIN_H
#define CG_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_CGROUP_ARRAY = 8,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct pt_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip;
};

struct mm_struct {
    unsigned long arg_start;
    unsigned long arg_end;
};

struct file {
    void *private_data;
};

struct fdtable {
    unsigned int max_fds;
    struct file **fd;
};

struct files_struct {
    struct fdtable *fdt;
};

struct socket {
    short type;
};

struct task_struct {
    pid_t pid;
    pid_t tgid;
    int exit_code;
    struct task_struct *real_parent;
    struct mm_struct *mm;
    struct files_struct *files;
};

struct linux_binprm {
    const char *filename;
};

struct open_how {
    __u64 flags;
};

#pragma clang attribute pop

struct bpf_raw_tracepoint_args {
    __u64 args[0];
};

#endif
