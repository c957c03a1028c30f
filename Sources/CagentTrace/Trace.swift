/// Tracers (eBPF, seccomp notify, Tracee) and the Tracee importer (store and learn issues).
public enum TraceModule {}
