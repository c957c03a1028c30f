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

if run dns; then
  # The DNS gate beside dnsmasq (allowlist, cache off, --nftset) on the same query mix: q/s and latency.
  swift build -c release --product cagent-dns-bench >/dev/null
  scripts/bench-dns.sh 10
fi
