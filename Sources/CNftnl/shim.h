// libnftnl + libmnl: nftables programmed over netlink, one atomic batch per change.
#include <stdint.h>
// glibc headers first: linux/libc-compat.h then leaves out its duplicate definitions (in_addr, in6_addr, ...),
// which would otherwise clash with SwiftGlibc's.
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/object.h>
#include <libnftnl/common.h>

// MNL_SOCKET_BUFFER_SIZE is a function-like expression Swift cannot import.
static inline size_t cg_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }

// rtnetlink, for interface clean-up without spawning ip(8).
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
