#!/usr/bin/env bash
# Network benchmark (docs/benchmarks.md, section "Network"), run by `scripts/bench.sh network`:
#  1. TCP throughput (iperf3, 5 s per run) from a sandbox namespace through cagent's uplink (veth, host-side
#     nftables table, masquerade) beside the same from a namespace on a plain routed veth pair (no firewall,
#     no NAT), alternating rounds, one ratio at the end;
#  2. setup time of the network part (`cagent _network-session`: lock, lease, ruleset batch, veth, addresses,
#     sysctls, sandbox side), as measured inside the process, and wall time including process start.
# Everything lives in namespaces named cgt-bn<pid>-*; nothing touches the machine's own network.
set -euo pipefail
cagent=${CAGENT:-$PWD/.build/release/cagent}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-5}
p=cgt-bn$$
host=$p-host inet=$p-inet sbx=$p-sbx plain=$p-plain
runtime=$(mktemp -d /tmp/cgt-bench-net-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in $sbx $plain $host $inet; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$runtime"
}
trap cleanup EXIT

for ns in $host $inet $sbx $plain; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$host" link add cgtbu type veth peer name cgtbi netns "$inet"
ip -n "$host" addr add 198.18.0.2/24 dev cgtbu && ip -n "$host" link set cgtbu up
ip -n "$inet" addr add 198.18.0.1/24 dev cgtbi && ip -n "$inet" link set cgtbi up
ip -n "$inet" addr add 203.0.113.10/32 dev lo
ip -n "$host" route add default via 198.18.0.1
# The reference: a plain veth pair, routed (the internet gets a route back), no nftables at all.
ip -n "$host" link add cgtbp type veth peer name eth0 netns "$plain"
ip -n "$host" addr add 10.203.0.1/30 dev cgtbp && ip -n "$host" link set cgtbp up
ip -n "$plain" addr add 10.203.0.2/30 dev eth0 && ip -n "$plain" link set eth0 up
ip -n "$plain" route add default via 10.203.0.1
ip -n "$inet" route add 10.203.0.0/30 via 198.18.0.2
ip netns exec "$host" sysctl -qw net.ipv4.conf.cgtbp.forwarding=1 net.ipv4.conf.cgtbu.forwarding=1
ip netns exec "$inet" iperf3 -s -B 203.0.113.10 >/dev/null 2>&1 &
pids+=($!)
sleep 0.3

# The subject: a cagent session allowing exactly the iperf3 server.
out=$runtime/session.out
"$cagent" _network-session --sandbox-netns /run/netns/$sbx --host-netns /run/netns/$host --id bench \
  --runtime "$runtime" --allow 203.0.113.10:5201/tcp >"$out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.05; done
grep -q ready "$out" || { cat "$out"; exit 1; }

throughput() { ip netns exec "$1" iperf3 -c 203.0.113.10 -t "$seconds" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'; }
subject=() reference=()
for round in $(seq "$rounds"); do
  subject+=("$(throughput "$sbx")")
  reference+=("$(throughput "$plain")")
done
python3 - "${subject[*]}" "${reference[*]}" <<'EOF'
import statistics, sys
s = [float(x) for x in sys.argv[1].split()]
r = [float(x) for x in sys.argv[2].split()]
ms, mr = statistics.median(s), statistics.median(r)
print(f"iperf3 TCP through cagent's uplink: median {ms/1e9:.2f} Gbit/s  (runs: {', '.join(f'{x/1e9:.2f}' for x in s)})")
print(f"iperf3 TCP through a plain veth:    median {mr/1e9:.2f} Gbit/s  (runs: {', '.join(f'{x/1e9:.2f}' for x in r)})")
print(f"ratio cagent/plain: {ms/mr:.2f}x")
EOF
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true

# Setup time of the network part, fresh sandbox namespace each round.
setup=() wall=()
for round in $(seq ${SETUP_ROUNDS:-20}); do
  ns=$p-s$round
  ip netns add "$ns"
  start=$(date +%s%N)
  "$cagent" _network-session --sandbox-netns /run/netns/$ns --host-netns /run/netns/$host --id b$round \
    --runtime "$runtime" --allow 203.0.113.10:5201/tcp >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 400); do grep -q ready "$out" && break; sleep 0.005; done
  stop=$(date +%s%N)
  cat "$out" >&2
  setup+=("$(sed -n 's/.*setup_us \([0-9]*\).*/\1/p' "$out")")
  wall+=("$(( (stop - start) / 1000 ))")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ip netns del "$ns"
done
python3 - "${setup[*]}" "${wall[*]}" <<'EOF'
import statistics, sys
s = sorted(int(x) for x in sys.argv[1].split())
w = sorted(int(x) for x in sys.argv[2].split())
q = lambda v, f: v[min(len(v) - 1, int(f * len(v)))]
print(f"network setup (in process): median {statistics.median(s)/1000:.1f} ms, p10 {q(s,.1)/1000:.1f}, p90 {q(s,.9)/1000:.1f}")
print(f"network setup (wall, with process start and polling): median {statistics.median(w)/1000:.1f} ms")
EOF
