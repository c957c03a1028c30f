// cg_netns_sockets.h — sockets in a sandbox's network namespace, for rootless mode.
// Why: a plain user cannot setns(2) into a network namespace (setns needs CAP_SYS_ADMIN over the caller's own
// user namespace too), not even one whose user namespace it owns. A forked child can: it joins the sandbox's
// user namespace (the owner may), where it holds every capability, then the network namespace, creates the
// sockets there and hands them back over SCM_RIGHTS. A socket stays in the namespace it was created in, and
// its owner (cagent) holds the capabilities its use needs (nftables, binding port 53) in that namespace.
#ifndef CG_NETNS_SOCKETS_H
#define CG_NETNS_SOCKETS_H

#include <sys/types.h>

/// Creates `count` sockets (domain, type, protocol each) in the network namespace of `pid`, after joining
/// its user namespace; with `loopback_up`, brings `lo` up there first (its 127.0.0.1 exists only then).
/// Fills `fds` (close-on-exec) and returns 0, or returns -1 with errno (the failing step in *stage).
int cg_netns_sockets(pid_t pid, const int *domains, const int *types, const int *protocols, int count,
                     int loopback_up, int *fds, const char **stage);

/// The same for the namespaces open as `user_fd` and `net_fd` (kept open by the caller): a long-lived user
/// (the --publish relay) holds the namespaces themselves, not a pid that could be reused after the sandbox.
int cg_netns_sockets_at(int user_fd, int net_fd, const int *domains, const int *types, const int *protocols, int count,
                        int loopback_up, int *fds, const char **stage);

#endif
