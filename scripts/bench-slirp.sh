#!/usr/bin/env bash
# slirp4netns's own throughput and CPU cost per GB under the options that could matter (docs/benchmarks.md
# "Rootless throughput: what slirp4netns offers"), beside the plain veth. No cagent: a plain user's
# `unshare -Urn` namespace, slirp4netns attached to it, iperf3 from inside to a server in a second namespace.
# Root (it builds the lab and runs the user's side as uid $BENCH_UID, default 1000, through setpriv);
# everything it makes is named cgt-rnb-* and removed on exit. T seconds per run (default 5).
set -euo pipefail
U=${BENCH_UID:-1000}; T=${T:-5}
H=cgt-rnb-host; I=cgt-rnb-inet; D=$(mktemp -d /tmp/cgt-rnb-XXXXXX)
cleanup() {
  for ns in $I $H; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  sleep 0.3; ip netns del $H 2>/dev/null || true; ip netns del $I 2>/dev/null || true; rm -rf "$D"
}
trap cleanup EXIT
chmod 755 "$D"; mkdir "$D/u"; chown "$U:$U" "$D/u"
ip netns add $H; ip netns add $I
ip link add cgtrnbh netns $H type veth peer name cgtrnbi netns $I
ip -n $H addr add 198.18.1.2/24 dev cgtrnbh; ip -n $I addr add 198.18.1.1/24 dev cgtrnbi
for ns in $H $I; do ip -n $ns link set lo up; done
ip -n $H link set cgtrnbh up; ip -n $I link set cgtrnbi up; ip -n $H route add default via 198.18.1.1
ip netns exec $I iperf3 -s -D -B 198.18.1.1 >/dev/null 2>&1
sleep 0.5
ticks=$(getconf CLK_TCK)
AS_USER="setpriv --reuid $U --regid $U --clear-groups env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=$D"

busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }   # user nice system irq softirq, all CPUs
echo "== veth (root, the lab's host namespace)"
b0=$(busy)
ip netns exec $H iperf3 -c 198.18.1.1 -t "$T" -J > "$D/veth.json"
b1=$(busy)
python3 - "$D/veth.json" "$b0" "$b1" "$ticks" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["end"]; b0, b1, ticks = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
gbytes = r["sum_received"]["bytes"] / 1e9
print(f"veth: {r['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s; the whole machine busy {(b1 - b0) / ticks / gbytes:.2f} CPU-s per GB")
EOF

run() {   # label, iperf3 options, slirp4netns options...
  local label=$1 iperf=$2; shift 2
  rm -f "$D/u/pid"
  ip netns exec $H $AS_USER unshare -Urn sh -c "echo \$\$ > $D/u/pid; exec sleep 120" &
  local holder=$!
  for _ in $(seq 50); do [ -s "$D/u/pid" ] && break; sleep 0.1; done
  local pid; pid=$(cat "$D/u/pid")
  ip netns exec $H $AS_USER slirp4netns "$@" "$pid" tap0 >/dev/null 2>&1 &
  local slirp=$!
  sleep 0.5
  local spid; spid=$(pgrep -P "$slirp" -x slirp4netns || echo "$slirp")
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$spid/stat); local b0; b0=$(busy)
  $AS_USER nsenter -t "$pid" -U -n --preserve-credentials iperf3 -c 198.18.1.1 -t "$T" $iperf -J > "$D/out.json"
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$spid/stat); local b1; b1=$(busy)
  local mtu; mtu=$($AS_USER nsenter -t "$pid" -U -n --preserve-credentials ip -o link show tap0 | sed 's/.* mtu \([0-9]*\) .*/\1/')
  python3 - "$label" "$mtu" "$u0" "$s0" "$u1" "$s1" "$ticks" "$T" "$D/out.json" "$b0" "$b1" <<'EOF'
import json, sys
label, mtu, u0, s0, u1, s1, ticks, t = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8]), float(sys.argv[8])
r = json.load(open(sys.argv[9]))["end"]
machine = (int(sys.argv[11]) - int(sys.argv[10])) / ticks
gbit = r["sum_received"]["bits_per_second"] / 1e9
gbytes = r["sum_received"]["bytes"] / 1e9
cpu = ((u1 - u0) + (s1 - s0)) / ticks
print(f"| {label} | {mtu} | {gbit:.2f} Gbit/s | {r['sum_sent'].get('retransmits', 0)} | "
      f"{(u1-u0)/ticks:.2f} s user + {(s1-s0)/ticks:.2f} s sys = {cpu/t*100:.0f}% of a core | {cpu/gbytes:.2f} CPU-s per GB | {machine/gbytes:.2f} CPU-s per GB |")
EOF
  kill "$slirp" 2>/dev/null || true; kill "$holder" 2>/dev/null || true; wait 2>/dev/null || true
}
BASE="--configure --mtu=65520 --disable-host-loopback --disable-dns"
echo "| slirp4netns options | tap0 MTU | throughput | retransmits | slirp4netns CPU during the run | slirp4netns per GB | whole machine per GB |"
echo "|---|---|---|---|---|---|---|"
run "base: $BASE" "" $BASE
run "+ --enable-sandbox --enable-seccomp" "" $BASE --enable-sandbox --enable-seccomp
run "base, iperf3 -P 2" "-P 2" $BASE
run "base, iperf3 -w 4M" "-w 4M" $BASE
run "--mtu=1500" "" --configure --mtu=1500 --disable-host-loopback --disable-dns
