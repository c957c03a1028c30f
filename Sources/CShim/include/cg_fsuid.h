#ifndef CG_FSUID_H
#define CG_FSUID_H

// The calling thread's filesystem ids (setfsuid(2)): root-side code opens a file a user named with that
// user's permission checks, and a file it creates belongs to the user. Per thread in the kernel, and glibc's
// wrappers are plain system calls (no broadcast to other threads). Each returns the previous id.
#include <sys/fsuid.h>

static inline unsigned int cg_setfsuid(unsigned int uid) { return (unsigned int)setfsuid(uid); }
static inline unsigned int cg_setfsgid(unsigned int gid) { return (unsigned int)setfsgid(gid); }

#endif
