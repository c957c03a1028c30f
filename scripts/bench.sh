#!/usr/bin/env bash
# `make bench`: every benchmark of docs/benchmarks.md, each beside the tool a user would pick instead.
# Each piece of work adds its workloads here. Run as root on an idle machine; results go to docs/benchmarks.md
# by hand, with the machine and this command.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=.build/release/cagent-bench
cagent=$PWD/.build/release/cagent

only=${1:-all}
run() { [ "$only" = all ] || [ "$only" = "$1" ]; }

if run doctor; then
  # The harness itself: cagent doctor against a shell doing nothing, to show the baseline cost of a cagent start.
  $bench --name "cagent --version vs /bin/true" --rounds 30 --subject "$cagent --version" --reference "/bin/true"
fi

if run profile; then
  # Profile loading: resolve claude-code (three files, extends, every value checked) against PyYAML merely
  # loading the same three files without any checks, the least a Python-based tool would do.
  $bench --name "cagent profile lint claude-code vs PyYAML load of its 3 files" --rounds 30 \
    --subject "CAGENT_PROFILES_DIR=$PWD/profiles $cagent profile lint claude-code >/dev/null" \
    --reference "python3 -c 'import yaml,sys; [yaml.safe_load(open(f)) for f in sys.argv[1:]]' profiles/base.yaml profiles/github.yaml profiles/claude-code.yaml"
fi

if run seccomp; then
  # The sandbox's seccomp filter (175 BPF instructions, binary search on the syscall number) on a
  # syscall-bound workload and on a compile, each under bwrap with and without the filter (bwrap --seccomp
  # installs exactly the bytes `cagent policy seccomp --bpf` writes).
  filter=$(mktemp /tmp/cagent-filter-XXXXXX)
  trap 'rm -f "$filter"' EXIT
  $cagent policy seccomp --bpf "$filter" >/dev/null
  src=$(mktemp -d /tmp/cagent-bench-cc-XXXXXX)
  printf '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n' > "$src/hello.c"
  dd="dd if=/dev/zero of=/dev/null bs=1 count=200000 status=none"
  $bench --name "seccomp: dd bs=1, 400k read+write syscalls" --rounds 20 \
    --subject "bwrap --dev-bind / / --seccomp 9 9<$filter -- $dd" --reference "bwrap --dev-bind / / -- $dd"
  cc="cc -O2 -o $src/hello $src/hello.c"
  $bench --name "seccomp: cc -O2 hello.c" --rounds 20 \
    --subject "bwrap --dev-bind / / --seccomp 9 9<$filter -- $cc" --reference "bwrap --dev-bind / / -- $cc"
  rm -rf "$src"
fi

if run tracing; then
  # Learn mode's tracers on a file-heavy workload: walk /usr/include, stat + lstat + open + read every file
  # (~8,000 files, ~50k traced syscalls incl. the stat family), plain, under each backend via `cagent trace`
  # (which includes loading the BPF programs / installing the filter), and under `strace -f` (all syscalls).
  walk=$(mktemp /tmp/cagent-bench-walk-XXXXXX.py)
  cat > "$walk" <<'PY'
import os, sys
for root in sys.argv[1:]:
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            try:
                os.stat(p); os.lstat(p)
                with open(p, "rb") as h: h.read()
            except OSError:
                pass
PY
  w="python3 $walk /usr/include"
  $w  # warm the page cache
  $bench --name "tracing: file-heavy walk, eBPF tracer" --rounds 10 --subject "$cagent trace --tracer ebpf -- $w" --reference "$w"
  $bench --name "tracing: file-heavy walk, seccomp notify tracer" --rounds 10 --subject "$cagent trace --tracer seccomp -- $w" --reference "$w"
  $bench --name "tracing: file-heavy walk, strace -f" --rounds 10 --subject "strace -f -o /dev/null $w" --reference "$w"
  # The same tree read three times in one run (an agent re-reading its sources): repeats stay in the kernel.
  w3="python3 $walk /usr/include /usr/include /usr/include"
  $bench --name "tracing: file-heavy walk x3, eBPF tracer" --rounds 10 --subject "$cagent trace --tracer ebpf -- $w3" --reference "$w3"
  rm -f "$walk"
fi
