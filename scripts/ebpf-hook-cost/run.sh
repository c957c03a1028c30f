#!/usr/bin/env bash
# Per-syscall cost of the eBPF tracer's possible syscall-exit hooks (docs/benchmarks.md "Tracing", "Per-syscall
# tracepoints"). Root. CPU ns per call of a C loop, median (p10-p90) of ROUNDS alternating rounds.
#   scripts/ebpf-hook-cost/run.sh hooks            bare hooks: nothing, raw sys_exit (empty / register read),
#                                                  syscalls:sys_exit_newfstatat (empty / register read)
#   scripts/ebpf-hook-cost/run.sh tracer A B       the loop under `A trace --tracer ebpf` and `B trace ...`
#                                                  (two cagent builds, e.g. main and per-syscall-tracepoints.patch)
# The per-syscall events need tracefs for their ids: `hooks` mounts it in a private mount namespace
# (unshare -m --propagation private) that ends with the run; the host's mounts are not touched.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clang="${BPF_CLANG:-/opt/swift/usr/bin/clang}"; [ -x "$clang" ] || clang="$(command -v clang)"
rounds="${ROUNDS:-5}"
work="$(mktemp -d /tmp/cagent-hook-cost.XXXXXX)"; trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/syscall-cost" "$here/syscall-cost.c"
n_of() { case $1 in stat|fstat) echo 300000;; statnew) echo 100000;; *) echo 1000000;; esac; }
cpu() { sed -n 's/.*cpu \([0-9]*\) ns.*/\1/p'; }
summary() {
  python3 -c '
import collections, statistics, sys
d = collections.defaultdict(list)
for line in sys.stdin:
    hook, kind, ns = line.split(); d[(kind, hook)].append(int(ns))
for (kind, hook), v in d.items():
    v.sort(); n = len(v)
    print(f"{kind:8} {hook:12} median {statistics.median(v):6.0f} ns  p10-p90 {v[int(0.1*(n-1))]}-{v[int(round(0.9*(n-1)))]}")'
}
case "${1:-}" in
hooks)
  "$clang" -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include -c "$here/hooks.bpf.c" -o "$work/hooks.bpf.o"
  cc -O2 -o "$work/hooks-loader" "$here/hooks-loader.c" -lbpf
  unshare -m --propagation private bash -c '
    set -e; cd "$1"; mount -t tracefs cagent-tracefs /sys/kernel/tracing
    for r in $(seq "$2"); do for kind in getppid stat; do
      n=1000000; [ $kind = stat ] && n=300000
      echo "none $kind $(./syscall-cost $kind $n)"
      for p in raw_empty raw_regs tp_empty tp_regs; do echo "$p $kind $(./hooks-loader hooks.bpf.o $p ./syscall-cost $kind $n 2>>detach.txt)"; done
    done; done > out.txt
    sed -n "s/^\([a-z_]*\) \([a-z]*\) .*cpu \([0-9]*\) ns.*/\1 \2 \3/p" out.txt' _ "$work" "$rounds" | summary
  echo "detach times (ms): $(sed 's/detach //; s/ ms//' "$work/detach.txt" | sort -n | uniq -c | tr -s ' \n' ' ')"
  ;;
tracer)
  a="$2"; b="$3"
  for r in $(seq "$rounds"); do for kind in getppid read stat fstat statnew; do
    n=$(n_of $kind)
    echo "plain $kind $("$work/syscall-cost" $kind $n | cpu)"
    echo "A $kind $("$a" trace --tracer ebpf -- "$work/syscall-cost" $kind $n 2>/dev/null | cpu)"
    echo "B $kind $("$b" trace --tracer ebpf -- "$work/syscall-cost" $kind $n 2>/dev/null | cpu)"
  done; done | summary
  ;;
*) echo "usage: $0 hooks | tracer CAGENT_A CAGENT_B" >&2; exit 2 ;;
esac
