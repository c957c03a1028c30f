// cg_pcap.h — libpcap, loaded when first used.
// Why: libpcap (and the seven libraries it pulls in: dbus, systemd, gcrypt, ...) would otherwise be loaded
// and relocated at every cagent start, although only learn mode's DNS capture and enforce's nflog reader
// use it. These functions have libpcap's signatures; the library is dlopen'ed on the first call.
#ifndef CG_PCAP_H
#define CG_PCAP_H

#include <pcap/pcap.h>

/// NULL once libpcap is loaded (or loadable); else why it is not ("libpcap.so.0.8: cannot open ...").
const char *cg_pcap_load_error(void);

/// pcap_create; NULL with errbuf set to the load error when libpcap cannot be loaded.
pcap_t *cg_pcap_create(const char *source, char *errbuf);
int cg_pcap_activate(pcap_t *handle);
void cg_pcap_close(pcap_t *handle);
int cg_pcap_compile(pcap_t *handle, struct bpf_program *program, const char *expression, int optimize, bpf_u_int32 netmask);
void cg_pcap_freecode(struct bpf_program *program);
int cg_pcap_setfilter(pcap_t *handle, struct bpf_program *program);
int cg_pcap_datalink(pcap_t *handle);
int cg_pcap_dispatch(pcap_t *handle, int count, pcap_handler callback, u_char *user);
int cg_pcap_get_selectable_fd(pcap_t *handle);
char *cg_pcap_geterr(pcap_t *handle);
int cg_pcap_set_buffer_size(pcap_t *handle, int bytes);
int cg_pcap_set_immediate_mode(pcap_t *handle, int on);
int cg_pcap_set_promisc(pcap_t *handle, int on);
int cg_pcap_set_snaplen(pcap_t *handle, int snaplen);
int cg_pcap_set_timeout(pcap_t *handle, int milliseconds);
int cg_pcap_setnonblock(pcap_t *handle, int on, char *errbuf);
int cg_pcap_stats(pcap_t *handle, struct pcap_stat *stats);
/// pcap_lib_version, or a sentence saying libpcap cannot be loaded.
const char *cg_pcap_lib_version(void);

#endif
