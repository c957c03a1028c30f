// cg_gzip.h — reading gzip-compressed (or plain) files through zlib.
// Why: Foundation on Linux has no gzip decoder, and saved Tracee traces are often gzipped. zlib's gz*
// API reads plain files transparently too. Header-only (static inline) so that only the module that
// calls it links libz (CagentTrace: linkedLibrary "z"); cagent-init, which also uses CShim, does not.
#ifndef CG_GZIP_H
#define CG_GZIP_H
#include <zlib.h>

typedef struct cg_gz_file *cg_gz_handle;

/// Opens `path` for reading (gzip or plain); NULL with errno set on failure.
static inline cg_gz_handle cg_gz_open(const char *path) { return (cg_gz_handle)gzopen(path, "rb"); }
/// Reads from an already open descriptor (e.g. 0 for standard input); the handle owns it afterwards.
static inline cg_gz_handle cg_gz_dopen(int fd) { return (cg_gz_handle)gzdopen(fd, "rb"); }
/// Up to `size` decompressed bytes; 0 at the end, -1 on error (see cg_gz_error).
static inline int cg_gz_read(cg_gz_handle file, void *buffer, unsigned size) {
    return gzread((gzFile)file, buffer, size);
}
/// zlib's message for the last error (a truncated or corrupt stream), never NULL.
static inline const char *cg_gz_error(cg_gz_handle file) {
    int code = 0;
    const char *message = gzerror((gzFile)file, &code);
    return message ? message : "unknown zlib error";
}
static inline int cg_gz_close(cg_gz_handle file) { return gzclose((gzFile)file); }

#endif
