// cg_nflog.h — one nfnetlink_log group read straight from its netlink socket (the firewall's log rules: denials
// in enforce mode, new flows in learn mode). Why not libpcap's "nflog:" device: libpcap is loaded with dlopen,
// and on this Debian it pulls in libdbus, libsystemd, libgcrypt and four compression libraries — ~1 ms of every
// networked start (docs/benchmarks.md "Networked start, third round"). The records are the same TLVs.
#pragma once
#include <stdint.h>

// Opens a NETLINK_NETFILTER socket in the calling thread's network namespace, non-blocking, with a receive
// buffer of `receive_buffer` bytes, bound to nflog group `group` (NFULNL_CFG_CMD_BIND), copying `copy_range`
// bytes of each packet (NFULNL_COPY_PACKET). Both commands are acknowledged before it returns. Returns the
// descriptor, or -errno (EBUSY: another socket of this namespace reads the group).
int cg_nflog_open(uint16_t group, uint32_t copy_range, int receive_buffer);

// The same on a NETLINK_NETFILTER socket made elsewhere (rootless mode: in the sandbox's namespace, by
// cg_netns_sockets): binds it, configures it, makes it non-blocking. Returns 0 or -errno; `fd` stays the caller's.
int cg_nflog_bind(int fd, uint16_t group, uint32_t copy_range, int receive_buffer);

// The netlink message type of a logged packet (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET).
extern const uint16_t CG_NFLOG_PACKET_MESSAGE;
