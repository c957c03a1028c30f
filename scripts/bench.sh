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

if run network; then
  # TCP throughput through a sandbox's uplink (veth + cagent's host-side nftables + masquerade) beside a plain
  # routed veth pair (iperf3), and the network part's setup time. Namespaces only (cgt-bn*).
  CAGENT=$cagent scripts/bench-network.sh
fi

if run dns; then
  # The DNS gate beside dnsmasq (allowlist, cache off, --nftset) on the same query mix: q/s and latency.
  swift build -c release --product cagent-dns-bench >/dev/null
  scripts/bench-dns.sh 10
fi
