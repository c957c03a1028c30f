#!/usr/bin/env bash
# The DNS gate beside dnsmasq doing the same work: an allowlist (allowed names forwarded to one upstream,
# everything else answered NXDOMAIN locally), cache off, every answer's address added to an nftables set
# (dnsmasq: --nftset; the gate: a netlink pinner) before the reply. Same query mix for both, from dnsperf.
# Prints queries per second at full load and the average latency at a fixed low rate, plus the upstream
# alone for the added latency. Run as root; everything lives in one throwaway netns, removed at exit.
#   scripts/bench-dns.sh [seconds per run]        (uses .build/release/cagent-dns-bench; DNS_BENCH_BIN overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DNS_BENCH_BIN:-$PWD/.build/release/cagent-dns-bench}
secs=${1:-10}
ns=cgt-dnsbench-$$
dir=$(mktemp -d /tmp/cgt-dnsbench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
in_ns() { ip netns exec "$ns" "$@"; }

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.98.0.1/32 dev lo
ip -n "$ns" addr add 10.98.0.2/32 dev lo
in_ns nft add table inet cgt
in_ns nft add set inet cgt allow4 '{ type ipv4_addr; flags timeout; }'

# 1000 allowed names with distinct addresses upstream; the mix: 9 allowed A queries to 1 denied name.
: > "$dir/upstream.conf"; : > "$dir/queries"
for i in $(seq 0 999); do
  echo "host-record=h$i.bench.test,198.18.$((i / 250)).$((i % 250 + 1))" >> "$dir/upstream.conf"
  echo "h$i.bench.test A" >> "$dir/queries"
  if (( i % 9 == 0 )); then echo "x$i.attacker.test A" >> "$dir/queries"; fi
done

daemon() { ip netns exec "$ns" "$@" >/dev/null 2>&1 & pids+=($!); }
common=(--no-daemon --pid-file= --bind-interfaces --no-resolv --no-hosts --cache-size=0)
daemon dnsmasq "${common[@]}" -C "$dir/upstream.conf" --listen-address=10.98.0.2
daemon dnsmasq "${common[@]}" -C /dev/null --listen-address=10.98.0.1 --port=5300 --dns-forward-max=1000 \
  --server=/bench.test/10.98.0.2 --address=/#/ --nftset=/bench.test/4#inet#cgt#allow4
daemon "$bin" --listen 10.98.0.1 --port 5301 --upstream 10.98.0.2 --allow '**.bench.test' --table cgt --set allow4
sleep 1
for port in 5300 5301; do
  in_ns dig +short +time=1 +tries=3 -p $port @10.98.0.1 h1.bench.test | grep -q 198.18.0.2 || { echo "server on $port not answering" >&2; exit 1; }
  in_ns dig +time=1 +tries=3 -p $port @10.98.0.1 x1.attacker.test | grep -q NXDOMAIN || { echo "server on $port does not deny" >&2; exit 1; }
done

perf() { # port, extra dnsperf args -> "qps avg_latency_ms lost"
  in_ns dnsperf -s "$2" -p "$1" -d "$dir/queries" -l "$3" ${4:-} 2>&1 | awk '
    /Queries lost:/ { lost = $3 }
    /Queries per second:/ { qps = $4 }
    /Average Latency \(s\):/ { lat = $4 * 1000 }
    END { printf "%.0f %.3f %s\n", qps, lat, lost }'
}
echo "machine: $(nproc) cores, $(uname -r); $secs s per run; mix: 1000 allowed names (A) + 112 denied names"
for round in 1 2 3; do
  printf 'round %s throughput (q/s, avg ms, lost): dnsmasq %s | gate %s\n' $round \
    "$(perf 5300 10.98.0.1 "$secs")" "$(perf 5301 10.98.0.1 "$secs")"
done
for round in 1 2 3; do
  printf 'round %s latency at 500 q/s (q/s, avg ms, lost): upstream alone %s | dnsmasq %s | gate %s\n' $round \
    "$(perf 53 10.98.0.2 5 '-Q 500')" "$(perf 5300 10.98.0.1 5 '-Q 500')" "$(perf 5301 10.98.0.1 5 '-Q 500')"
done
echo "set elements after the runs: $(in_ns nft -j list set inet cgt allow4 | grep -o '"elem"' | wc -l) set(s), $(in_ns nft list set inet cgt allow4 | grep -o '198\.18\.[0-9]*\.[0-9]*' | sort -u | wc -l) distinct addresses"
