// cg_thread.h — naming the calling thread.
// Why: pthread_setname_np and prctl are hidden from Swift (_GNU_SOURCE, variadic).
#ifndef CG_THREAD_H
#define CG_THREAD_H

/// Names the calling thread (the kernel keeps 15 bytes; shown by `ps -L` and in /proc/PID/task/TID/comm).
void cg_thread_set_name(const char *name);

#endif
