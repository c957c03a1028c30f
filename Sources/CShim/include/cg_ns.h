// cg_ns.h — namespace probes and setns.
// Why: setns/unshare need raw syscalls from a single thread, and probing "can this machine create namespace X"
// means forking, which must be done in C (no Swift between fork and _exit).
#ifndef CG_NS_H
#define CG_NS_H

extern const int CG_CLONE_NEWNS;
extern const int CG_CLONE_NEWUSER;
extern const int CG_CLONE_NEWPID;
extern const int CG_CLONE_NEWNET;
extern const int CG_CLONE_NEWUTS;
extern const int CG_CLONE_NEWIPC;
extern const int CG_CLONE_NEWCGROUP;

/// Forks a child that calls unshare(flags) and exits; returns 0 when it worked, else the child's errno.
int cg_probe_unshare(int flags);

/// unshare(CLONE_NEWNET) on the calling thread only: it enters a new, empty network namespace.
int cg_unshare_net(void);

/// setns(2) on the calling thread only.
int cg_setns(int fd, int nstype);

#endif
