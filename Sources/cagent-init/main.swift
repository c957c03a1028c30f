// cagent-init: pid 1 inside the sandbox. Synchronous, no Foundation (start-up time matters: see
// docs/benchmarks.md). The sandbox-core issue gives it its setup sequence.
#if canImport(Glibc)
import Glibc
#endif

let message = "cagent-init: must be started by cagent, not by hand\n"
_ = message.withCString { write(2, $0, strlen($0)) }
exit(64)
