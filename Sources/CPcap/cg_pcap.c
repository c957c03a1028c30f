// cg_pcap.c — see cg_pcap.h. Every entry point resolves its libpcap symbol once (under pthread_once for the
// library itself); a handle can only exist after cg_pcap_create succeeded, so the handle-taking wrappers
// fail like libpcap would (-1, NULL) only in the impossible case of a missing symbol.
#define _GNU_SOURCE
#include "cg_pcap.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void *library;
static char load_error[PCAP_ERRBUF_SIZE];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load_library(void) {
    // Debian's runtime package ships the soname libpcap.so.0.8; other distributions use .so.1.
    const char *names[] = {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && library == NULL; i++)
        library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "libpcap cannot be loaded (%s); install libpcap0.8",
                 why ? why : "not found");
    }
}

static void *symbol(const char *name) {
    pthread_once(&load_once, load_library);
    return library ? dlsym(library, name) : NULL;
}

const char *cg_pcap_load_error(void) {
    pthread_once(&load_once, load_library);
    return library ? NULL : load_error;
}

// One resolved pointer per function, typed from libpcap's own declaration; `fn` is it (NULL if missing).
// Threads may race to resolve the same symbol: they store the same value, atomically.
#define RESOLVED(name) \
    static __typeof__(&name) resolved; \
    __typeof__(&name) fn = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE); \
    if (fn == NULL) { fn = (__typeof__(&name))symbol(#name); __atomic_store_n(&resolved, fn, __ATOMIC_RELEASE); }

pcap_t *cg_pcap_create(const char *source, char *errbuf) {
    RESOLVED(pcap_create);
    if (fn == NULL) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", library ? "libpcap has no pcap_create" : load_error);
        return NULL;
    }
    return fn(source, errbuf);
}

#define FORWARD_INT(name, params, args) \
    int cg_##name params { RESOLVED(name); return fn ? fn args : -1; }

FORWARD_INT(pcap_activate, (pcap_t *handle), (handle))
FORWARD_INT(pcap_compile, (pcap_t *handle, struct bpf_program *program, const char *expression, int optimize,
                           bpf_u_int32 netmask), (handle, program, expression, optimize, netmask))
FORWARD_INT(pcap_setfilter, (pcap_t *handle, struct bpf_program *program), (handle, program))
FORWARD_INT(pcap_datalink, (pcap_t *handle), (handle))
FORWARD_INT(pcap_dispatch, (pcap_t *handle, int count, pcap_handler callback, u_char *user), (handle, count, callback, user))
FORWARD_INT(pcap_get_selectable_fd, (pcap_t *handle), (handle))
FORWARD_INT(pcap_set_buffer_size, (pcap_t *handle, int bytes), (handle, bytes))
FORWARD_INT(pcap_set_immediate_mode, (pcap_t *handle, int on), (handle, on))
FORWARD_INT(pcap_set_promisc, (pcap_t *handle, int on), (handle, on))
FORWARD_INT(pcap_set_snaplen, (pcap_t *handle, int snaplen), (handle, snaplen))
FORWARD_INT(pcap_set_timeout, (pcap_t *handle, int milliseconds), (handle, milliseconds))
FORWARD_INT(pcap_setnonblock, (pcap_t *handle, int on, char *errbuf), (handle, on, errbuf))
FORWARD_INT(pcap_stats, (pcap_t *handle, struct pcap_stat *stats), (handle, stats))

void cg_pcap_close(pcap_t *handle) {
    RESOLVED(pcap_close);
    if (fn) fn(handle);
}

void cg_pcap_freecode(struct bpf_program *program) {
    RESOLVED(pcap_freecode);
    if (fn) fn(program);
}

char *cg_pcap_geterr(pcap_t *handle) {
    RESOLVED(pcap_geterr);
    return fn ? fn(handle) : load_error;
}

const char *cg_pcap_lib_version(void) {
    RESOLVED(pcap_lib_version);
    return fn ? fn() : load_error;
}
