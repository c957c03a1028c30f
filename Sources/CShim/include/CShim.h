// Umbrella header for the C shim. Every symbol is prefixed cg_/CG_; each header says why it exists.
#include "cg_fs.h"
#include "cg_ns.h"
#include "cg_caps.h"
#include "cg_security.h"
#include "cg_seccomp.h"
#include "cg_landlock.h"
#include "cg_policy.h"
#include "cg_gzip.h"
