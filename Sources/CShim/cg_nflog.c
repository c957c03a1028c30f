// nfnetlink_log without libpcap: bind a group, set the copy mode, and leave the reading to the caller's poll loop.
#define _GNU_SOURCE
#include "cg_nflog.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const uint16_t CG_NFLOG_PACKET_MESSAGE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;

// Appends one NFULNL_MSG_CONFIG message for `group` with one attribute; returns the new length of `buffer`.
static size_t config_message(char *buffer, size_t at, uint32_t sequence, uint16_t group, uint16_t type,
                             const void *value, uint16_t value_length) {
    struct nlmsghdr *header = (struct nlmsghdr *)(buffer + at);
    size_t length = NLMSG_LENGTH(sizeof(struct nfgenmsg) + NLA_ALIGN(NLA_HDRLEN + value_length));
    memset(header, 0, NLMSG_ALIGN(length));
    header->nlmsg_len = (uint32_t)length;
    header->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    header->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    header->nlmsg_seq = sequence;
    struct nfgenmsg *family = NLMSG_DATA(header);
    family->nfgen_family = AF_UNSPEC;
    family->version = NFNETLINK_V0;
    family->res_id = htons(group);
    struct nlattr *attribute = (struct nlattr *)((char *)family + sizeof(struct nfgenmsg));
    attribute->nla_len = (uint16_t)(NLA_HDRLEN + value_length);
    attribute->nla_type = type;
    memcpy((char *)attribute + NLA_HDRLEN, value, value_length);
    return at + NLMSG_ALIGN(length);
}

int cg_nflog_bind(int fd, uint16_t group, uint32_t copy_range, int receive_buffer) {
    struct sockaddr_nl local = { .nl_family = AF_NETLINK };
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);

    // Bind the group, then the copy mode (a mode needs a bound instance), in one datagram; two acks.
    char request[256];
    uint32_t first = (uint32_t)time(NULL) * 4;
    struct nfulnl_msg_config_cmd bind_command = { .command = NFULNL_CFG_CMD_BIND };
    struct nfulnl_msg_config_mode mode = { .copy_range = htonl(copy_range), .copy_mode = NFULNL_COPY_PACKET };
    size_t length = config_message(request, 0, first, group, NFULA_CFG_CMD, &bind_command, sizeof bind_command);
    length = config_message(request, length, first + 1, group, NFULA_CFG_MODE, &mode, sizeof mode);
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, request, length, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -errno;

    int acknowledged = 0;
    char answer[8192];
    while (acknowledged < 2) {
        ssize_t received = recv(fd, answer, sizeof answer, 0);
        if (received < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        int remaining = (int)received;
        for (struct nlmsghdr *header = (struct nlmsghdr *)answer; NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type != NLMSG_ERROR || header->nlmsg_seq < first || header->nlmsg_seq > first + 1) continue;
            const struct nlmsgerr *result = NLMSG_DATA(header);
            if (result->error != 0) return result->error;
            acknowledged++;
        }
    }
    // The caller's poll loop reads without blocking from here on.
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -errno;
    return 0;
}

int cg_nflog_open(uint16_t group, uint32_t copy_range, int receive_buffer) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) return -errno;
    int result = cg_nflog_bind(fd, group, copy_range, receive_buffer);
    if (result < 0) { close(fd); return result; }
    return fd;
}
