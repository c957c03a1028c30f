// cagent_trace.bpf.c — learn mode's eBPF tracer: what a process tree in one cgroup does to files and
// sockets, deduplicated in the kernel.
//
// Hooks: raw tracepoints only (this kernel has no kprobes, fentry or LSM programs; raw tracepoints also need
// no tracefs): sys_exit for every path and socket syscall (its arguments are still in the saved user
// registers, and the path is read *after* the syscall, when the kernel has paged it in, together with the
// result), sched_process_exec for execs (argv from the new mm) and sched_process_exit.
// Scope: tasks under the cgroup in `scope` (index 0), set by user space; the tree starts there with
// CLONE_INTO_CGROUP, and every descendant inherits it.
// Dedup: `seen` maps (op, path hash, result[, pid, dirfd]) to a count; only the first sight of a key is
// sent to the ring buffer, later ones only increment the count.
#include "cg_vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "../include/cg_trace_event.h"

char LICENSE[] SEC("license") = "GPL";

#define AT_FDCWD (-100)
#define O_DIRECTORY 0200000
#define O_PATH 010000000

struct {
    __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} scope SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 131072);
    __type(key, struct cg_trace_key);
    __type(value, __u64);
} seen SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, CG_STAT_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

// The record under construction (too large for the 512-byte BPF stack).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct cg_trace_record);
} scratch SEC(".maps");

static __always_inline void count(__u32 which) {
    __u64 *value = bpf_map_lookup_elem(&stats, &which);
    if (value) *value += 1;
}

static __always_inline int in_scope(void) {
    return bpf_current_task_under_cgroup(&scope, 0) == 1;
}

// FNV-1a over 8-byte words of buf[0..len) (bytes past len masked: the buffer holds stale data there).
// Run through bpf_loop, so the verifier checks the body once instead of unrolling it (load time).
struct hash_state {
    const char *buf;
    __u64 h;
    __u32 len;
};

static long hash_word(__u32 w, void *data) {
    struct hash_state *st = data;
    __u32 at = w * 8;
    if (at >= st->len || at > CG_TRACE_PATH_MAX - 8) return 1;
    __u64 v = *(const __u64 *)(st->buf + at);  // st->buf: the per-CPU record (a map value), bounds checked above
    __u32 rest = st->len - at;
    if (rest < 8) v &= (1ULL << (rest * 8)) - 1;
    st->h = (st->h ^ v) * 0x100000001b3ULL;
    return 0;
}

static __always_inline __u64 hash_bytes(__u64 h, const char *buf, __u32 len) {
    struct hash_state st = { .buf = buf, .h = h, .len = len };
    bpf_loop((len + 7) / 8, hash_word, &st, 0);
    return st.h;
}

// Reads a user path into dst; returns its length without the NUL, or -1.
static __always_inline int read_path(char *dst, const void *src, unsigned int *truncated) {
    long n = bpf_probe_read_user_str(dst, CG_TRACE_PATH_MAX, src);
    if (n <= 0) return -1;
    if (n == CG_TRACE_PATH_MAX) *truncated = 1;
    return (int)(n - 1);
}

static __always_inline __u32 socket_type(int fd) {
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = 0;
    bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
    if (!file) return 0;
    struct socket *sock = BPF_CORE_READ(file, private_data);
    if (!sock) return 0;
    return (__u32)BPF_CORE_READ(sock, type);
}

static __always_inline struct cg_trace_record *begin(__u32 kind) {
    __u32 zero = 0;
    struct cg_trace_record *r = bpf_map_lookup_elem(&scratch, &zero);
    if (!r) return 0;
    __u64 id = bpf_get_current_pid_tgid();
    r->kind = kind;
    r->pid = id >> 32;
    r->tid = (__u32)id;
    r->truncated = 0;
    r->len1 = 0;
    r->len2 = 0;
    r->flags = 0;
    r->dirfd = AT_FDCWD;
    r->dirfd2 = AT_FDCWD;
    r->sock_type = 0;
    r->ppid = 0;
    return r;
}

// Sends only the bytes in use. No wake-up per record (a cross-CPU wake-up costs tens of microseconds in a
// VM): user space drains every 50 ms, and is woken early once 1 MiB is waiting.
static __always_inline void send(struct cg_trace_record *r) {
    r->time_ns = bpf_ktime_get_ns();  // here, not per syscall: duplicates need neither time nor name
    bpf_get_current_comm(r->comm, sizeof(r->comm));
    __u64 size = sizeof(*r);
    if (r->kind == CG_TRACE_FILE && r->len2 == 0) size = __builtin_offsetof(struct cg_trace_record, path) + (r->len1 & (CG_TRACE_PATH_MAX - 1)) + 1;
    else if (r->kind == CG_TRACE_EXIT || r->kind == CG_TRACE_FORK || r->kind == CG_TRACE_NET) size = __builtin_offsetof(struct cg_trace_record, path);
    if (size > sizeof(*r)) size = sizeof(*r);
    __u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (1 << 20) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
    if (bpf_ringbuf_output(&events, r, size, flags) == 0) count(CG_STAT_EMITTED);
    else count(CG_STAT_LOST);
}

// Sends the record only the first time its key is seen; counts every sight.
static __always_inline void send_once(struct cg_trace_record *r) {
    __u64 *n = bpf_map_lookup_elem(&seen, &r->key);
    if (n) {
        __sync_fetch_and_add(n, 1);
        count(CG_STAT_DUPLICATE);
        return;
    }
    __u64 one = 1;
    bpf_map_update_elem(&seen, &r->key, &one, BPF_NOEXIST);
    send(r);
}

static __always_inline void file_event(struct cg_trace_record *r, __u32 op, long ret, int dirfd, const void *path,
                                       int dirfd2, const void *path2, __u32 flags) {
    r->op = op;
    r->ret = (int)ret;
    r->flags = flags;
    r->dirfd = dirfd;
    r->dirfd2 = dirfd2;
    int n = read_path(r->path, path, &r->truncated);
    if (n < 0) { count(CG_STAT_UNREADABLE); return; }
    if (n == 0) return;  // AT_EMPTY_PATH: an operation on an open fd, not a path lookup
    r->len1 = n;
    __u64 h = hash_bytes(0xcbf29ce484222325ULL, r->path, r->len1);
    int relative = r->path[0] != '/';
    if (path2) {
        int m = bpf_probe_read_user_str(r->data2, CG_TRACE_PATH_MAX, path2);
        if (m <= 0) { count(CG_STAT_UNREADABLE); return; }
        if (m == CG_TRACE_PATH_MAX) r->truncated = 1;
        r->len2 = m - 1;
        h = hash_bytes(h ^ 0xff, r->data2, r->len2);
        relative |= r->data2[0] != '/';
    }
    r->key.path_hash = h;
    r->key.ret = ret < 0 ? (int)ret : 0;
    r->key.op = op;
    r->key.tgid = relative ? r->pid : 0;
    r->key.dirfd = relative ? dirfd : 0;
    // chdir, and a directory opened for use as a dirfd, are always sent: user space follows working
    // directories and directory fds with them (the process may be gone before /proc can be asked).
    if (op == CG_OP_CHDIR || (op == CG_OP_OPEN && ret >= 0 && (flags & (O_DIRECTORY | O_PATH)))) send(r);
    else send_once(r);
}

static __always_inline void net_event(struct cg_trace_record *r, __u32 op, long ret, int fd, const void *addr,
                                      unsigned long addrlen) {
    r->op = op;
    r->ret = (int)ret;
    __builtin_memset(r->addr, 0, sizeof(r->addr));
    unsigned long n = addrlen < sizeof(r->addr) ? addrlen : sizeof(r->addr);
    if (n < 2 || bpf_probe_read_user(r->addr, n & 31, addr) != 0) { count(CG_STAT_UNREADABLE); return; }
    __u16 family = *(__u16 *)r->addr;
    if (family != 2 && family != 10) return;  // AF_INET, AF_INET6 only; unix sockets are files
    r->sock_type = socket_type(fd) & 0xf;
    __u64 h = hash_bytes(0xcbf29ce484222325ULL, (const char *)r->addr, family == 2 ? 8 : 24);
    r->key.path_hash = h ^ r->sock_type;
    r->key.ret = ret < 0 ? (int)ret : 0;
    if (ret == -115) r->key.ret = 0;  // EINPROGRESS: a non-blocking connect under way counts as success
    r->key.op = op;
    r->key.tgid = 0;
    r->key.dirfd = 0;
    send_once(r);
}

// x86_64 syscall numbers.
enum {
    NR_open = 2, NR_stat = 4, NR_lstat = 6, NR_access = 21, NR_connect = 42, NR_bind = 49, NR_execve = 59,
    NR_chdir = 80, NR_rename = 82, NR_mkdir = 83, NR_rmdir = 84, NR_creat = 85, NR_unlink = 87,
    NR_readlink = 89, NR_openat = 257, NR_mkdirat = 258, NR_newfstatat = 262, NR_unlinkat = 263,
    NR_renameat = 264, NR_readlinkat = 267, NR_faccessat = 269, NR_renameat2 = 316, NR_execveat = 322,
    NR_statx = 332, NR_openat2 = 437, NR_faccessat2 = 439,
};

// The saved user registers a syscall's arguments are in, r10 to orig_ax: one read per syscall gives the
// number and every argument (the x86_64 pt_regs layout is ABI: r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx
// dx si di orig_ax ...).
struct syscall_regs {
    unsigned long r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};
#define SYSCALL_REGS_OFFSET (7 * 8)
#define AT_EMPTY_PATH 0x1000

SEC("raw_tracepoint/sys_exit")
int cg_sys_exit(struct bpf_raw_tracepoint_args *ctx) {
    long ret = (long)ctx->args[1];
    struct syscall_regs saved;
    if (bpf_probe_read_kernel(&saved, sizeof(saved), (char *)ctx->args[0] + SYSCALL_REGS_OFFSET) != 0) return 0;
    long nr = (long)saved.orig_ax;
    switch (nr) {
    case NR_open: case NR_stat: case NR_lstat: case NR_access: case NR_connect: case NR_bind:
    case NR_execve: case NR_chdir: case NR_rename: case NR_mkdir: case NR_rmdir: case NR_creat:
    case NR_unlink: case NR_readlink: case NR_openat: case NR_mkdirat: case NR_newfstatat:
    case NR_unlinkat: case NR_renameat: case NR_readlinkat: case NR_faccessat: case NR_renameat2:
    case NR_execveat: case NR_statx: case NR_openat2: case NR_faccessat2:
        break;
    default:
        return 0;
    }
    if (!in_scope()) return 0;
    count(CG_STAT_SEEN);
    if ((nr == NR_execve || nr == NR_execveat) && ret == 0) return 0;  // success: sched_process_exec reports it
    unsigned long di = saved.di, si = saved.si, dx = saved.dx, r10 = saved.r10;
    // fstat(fd) is newfstatat(fd, "", AT_EMPTY_PATH) (and statx alike): an open fd, not a path lookup. Checked
    // before the record is set up: a program reading files makes one or two per file.
    if ((nr == NR_newfstatat && (r10 & AT_EMPTY_PATH)) || (nr == NR_statx && (dx & AT_EMPTY_PATH))) {
        char first = 1;
        if (bpf_probe_read_user(&first, 1, (void *)si) == 0 && first == 0) return 0;
    }
    struct cg_trace_record *r = begin(CG_TRACE_FILE);
    if (!r) return 0;
    if (nr == NR_connect || nr == NR_bind) {
        r->kind = CG_TRACE_NET;
        net_event(r, nr == NR_connect ? CG_OP_CONNECT : CG_OP_BIND, ret, (int)di, (void *)si, dx);
        return 0;
    }
    // One call site for file_event below (each inlined copy costs verifier time at load).
    __u32 op = CG_OP_STAT, flags = 0;
    int dirfd = AT_FDCWD, dirfd2 = AT_FDCWD;
    const void *path = (void *)di, *path2 = 0;
    switch (nr) {
    case NR_open: op = CG_OP_OPEN; flags = (__u32)si; break;
    case NR_creat: op = CG_OP_OPEN; flags = 0x241; break;  // O_CREAT|O_WRONLY|O_TRUNC
    case NR_openat: op = CG_OP_OPEN; dirfd = (int)di; path = (void *)si; flags = (__u32)dx; break;
    case NR_openat2: {
        __u64 how = 0;
        bpf_probe_read_user(&how, sizeof(how), (void *)dx);
        op = CG_OP_OPEN; dirfd = (int)di; path = (void *)si; flags = (__u32)how;
        break;
    }
    case NR_chdir: op = CG_OP_CHDIR; break;
    case NR_stat: case NR_lstat: case NR_access: case NR_readlink: break;
    case NR_newfstatat: case NR_faccessat: case NR_faccessat2: case NR_statx: case NR_readlinkat:
        dirfd = (int)di; path = (void *)si; break;
    case NR_execve: op = CG_OP_EXEC; break;
    case NR_execveat: op = CG_OP_EXEC; dirfd = (int)di; path = (void *)si; break;
    case NR_unlink: case NR_rmdir: op = CG_OP_UNLINK; break;
    case NR_unlinkat: op = CG_OP_UNLINK; dirfd = (int)di; path = (void *)si; flags = (__u32)dx; break;
    case NR_mkdir: op = CG_OP_MKDIR; break;
    case NR_mkdirat: op = CG_OP_MKDIR; dirfd = (int)di; path = (void *)si; break;
    case NR_rename: op = CG_OP_RENAME; path2 = (void *)si; break;
    case NR_renameat: case NR_renameat2:
        op = CG_OP_RENAME; dirfd = (int)di; path = (void *)si; dirfd2 = (int)dx; path2 = (void *)r10; break;
    }
    file_event(r, op, ret, dirfd, path, dirfd2, path2, flags);
    return 0;
}

// args: (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm); runs in the new program.
SEC("raw_tracepoint/sched_process_exec")
int cg_exec(struct bpf_raw_tracepoint_args *ctx) {
    if (!in_scope()) return 0;
    struct task_struct *task = (struct task_struct *)ctx->args[0];
    struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
    struct cg_trace_record *r = begin(CG_TRACE_EXEC);
    if (!r) return 0;
    r->op = CG_OP_EXEC;
    r->ret = 0;
    r->ppid = BPF_CORE_READ(task, real_parent, tgid);
    long n = bpf_probe_read_kernel_str(r->path, CG_TRACE_PATH_MAX, BPF_CORE_READ(bprm, filename));
    r->len1 = n > 0 ? n - 1 : 0;
    unsigned long start = BPF_CORE_READ(task, mm, arg_start), end = BPF_CORE_READ(task, mm, arg_end);
    unsigned long len = end > start ? end - start : 0;
    if (len > CG_TRACE_ARGV_MAX - 1) { len = CG_TRACE_ARGV_MAX - 1; r->truncated = 1; }
    if (len > 0 && bpf_probe_read_user(r->data2, len & (CG_TRACE_ARGV_MAX - 1), (void *)start) == 0)
        r->len2 = len;
    send(r);
    return 0;
}

// args: (struct task_struct *parent, struct task_struct *child); runs in the parent.
SEC("raw_tracepoint/sched_process_fork")
int cg_fork(struct bpf_raw_tracepoint_args *ctx) {
    struct task_struct *child = (struct task_struct *)ctx->args[1];
    pid_t pid = BPF_CORE_READ(child, pid);
    if (pid != BPF_CORE_READ(child, tgid)) return 0;  // a new thread, not a process
    if (!in_scope()) return 0;
    struct cg_trace_record *r = begin(CG_TRACE_FORK);
    if (!r) return 0;
    r->op = 0;
    r->ret = 0;
    r->ppid = r->pid;
    r->pid = pid;
    r->tid = pid;
    send(r);
    return 0;
}

// args: (struct task_struct *p, bool group_dead).
SEC("raw_tracepoint/sched_process_exit")
int cg_exit(struct bpf_raw_tracepoint_args *ctx) {
    struct task_struct *task = (struct task_struct *)ctx->args[0];
    if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid)) return 0;  // a thread, not the process
    if (!in_scope()) return 0;
    struct cg_trace_record *r = begin(CG_TRACE_EXIT);
    if (!r) return 0;
    r->op = 0;
    r->ret = BPF_CORE_READ(task, exit_code);
    send(r);
    return 0;
}
