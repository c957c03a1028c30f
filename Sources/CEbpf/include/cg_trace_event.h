// cg_trace_event.h — the records the cagent BPF tracer (bpf/cagent_trace.bpf.c) sends to user space.
// Why: one definition shared by the BPF program and the Swift consumer, so both agree on the layout.
// Plain fixed-width types only: it is compiled for -target bpf and for the host.
#ifndef CG_TRACE_EVENT_H
#define CG_TRACE_EVENT_H

#define CG_TRACE_PATH_MAX 512   /* bytes kept of each path (longer paths are cut, flagged truncated) */
#define CG_TRACE_ARGV_MAX 1024  /* bytes kept of an exec's argv block (NUL-separated strings) */

/* Record kinds. */
enum {
    CG_TRACE_FILE = 1,  /* a path syscall finished: op, ret, path (and path2 for rename) */
    CG_TRACE_EXEC = 2,  /* a program started: path = the file exec'd, data2 = argv block */
    CG_TRACE_EXIT = 3,  /* a process (thread-group leader) ended: ret = exit status word */
    CG_TRACE_NET = 4,   /* connect or bind finished: op, ret, addr = the sockaddr */
    CG_TRACE_FORK = 5,  /* a new process: pid = the child, ppid = the parent (cwd bookkeeping) */
};

/* File and socket operations (the dedup key's `op`). */
enum {
    CG_OP_OPEN = 1,    /* open/openat/openat2/creat: flags say read, write or create */
    CG_OP_STAT = 2,    /* stat family, access, readlink, chdir: a lookup */
    CG_OP_EXEC = 3,    /* a failed execve/execveat (a successful one is a CG_TRACE_EXEC record) */
    CG_OP_UNLINK = 4,  /* unlink, unlinkat, rmdir */
    CG_OP_RENAME = 5,  /* rename, renameat, renameat2 */
    CG_OP_MKDIR = 6,   /* mkdir, mkdirat */
    CG_OP_CONNECT = 7,
    CG_OP_BIND = 8,
    CG_OP_CHDIR = 9,   /* chdir: never deduplicated, user space follows each process's cwd with it */
};

/* Counters (a per-CPU array indexed by these). */
enum {
    CG_STAT_SEEN = 0,       /* traced syscalls of the session's tree */
    CG_STAT_EMITTED = 1,    /* records sent to user space */
    CG_STAT_DUPLICATE = 2,  /* (op, path, result) already seen: only counted */
    CG_STAT_LOST = 3,       /* the ring buffer was full: record lost */
    CG_STAT_UNREADABLE = 4, /* the path could not be read from the process */
    CG_STAT_COUNT = 5,
};

/* The deduplication key: an operation on a path with one outcome. Relative paths also carry the process
   and the directory fd, because their meaning depends on the cwd or the fd. */
struct cg_trace_key {
    unsigned long long path_hash;  /* FNV-1a 64 of the path (both paths for rename) */
    int ret;                       /* 0 or -errno (success keys all share ret 0) */
    unsigned int op;
    unsigned int tgid;             /* 0 for an absolute path */
    int dirfd;                     /* 0 for an absolute path */
};

struct cg_trace_record {
    unsigned int kind;
    unsigned int op;
    unsigned int pid;    /* thread-group id (the process) */
    unsigned int tid;
    unsigned int ppid;
    int ret;             /* syscall result: >= 0 success, else -errno; exit: the wait status */
    int dirfd;           /* for relative paths: AT_FDCWD (-100) or the directory fd */
    int dirfd2;          /* rename's second path */
    unsigned int flags;  /* open flags, or unlinkat flags */
    unsigned int len1;   /* bytes of path (without NUL) */
    unsigned int len2;   /* bytes of path2 or argv block */
    unsigned int truncated;
    unsigned long long time_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
    struct cg_trace_key key;
    unsigned char addr[28];      /* sockaddr_in / sockaddr_in6 (family in the first two bytes) */
    unsigned int sock_type;      /* SOCK_STREAM 1, SOCK_DGRAM 2, 0 unknown */
    char comm[16];
    char path[CG_TRACE_PATH_MAX];
    char data2[CG_TRACE_ARGV_MAX];  /* rename: the new path; exec: argv */
};

#endif
