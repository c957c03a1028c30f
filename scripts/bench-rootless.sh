#!/usr/bin/env bash
# Rootless mode's start and uplink beside root mode and bubblewrap (docs/benchmarks.md "Rootless mode").
# Root (it builds a two-namespace lab and runs the plain-user side through setpriv as uid $BENCH_UID, default
# 1000); everything it makes is named cgt-rlb-* and removed on exit.
set -euo pipefail
BIN=${BIN:-$(dirname "$0")/../.build/debug}
BIN=$(cd "$BIN" && pwd)
U=${BENCH_UID:-1000}
H=cgt-rlb-host; I=cgt-rlb-inet; D=$(mktemp -d /tmp/cgt-rlb-XXXXXX)
cleanup() {
  for ns in $I $H; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  sleep 0.3; ip netns del $H 2>/dev/null || true; ip netns del $I 2>/dev/null || true; rm -rf "$D"
}
trap cleanup EXIT
chmod 755 "$D"; mkdir -p "$D/ws" "$D/state" "$D/ustate" "$D/home"; chown "$U:$U" "$D/ws" "$D/ustate" "$D/home"
ip netns add $H; ip netns add $I
ip link add cgtrlbh netns $H type veth peer name cgtrlbi netns $I
ip -n $H addr add 198.18.0.2/24 dev cgtrlbh; ip -n $I addr add 198.18.0.1/24 dev cgtrlbi
ip -n $I addr add 198.18.0.10/32 dev cgtrlbi
for ns in $H $I; do ip -n $ns link set lo up; done
ip -n $H link set cgtrlbh up; ip -n $I link set cgtrlbi up; ip -n $H route add default via 198.18.0.1
ip netns exec $I dnsmasq --no-resolv --no-hosts --listen-address=198.18.0.1 --bind-interfaces --address=/allowed.test/198.18.0.10 --pid-file="$D/dnsmasq.pid"
ip netns exec $I iperf3 -s -D -B 198.18.0.10 -p 443 >/dev/null 2>&1
printf 'cagent: 1\nagent: bench\nextends: [base]\nnetwork:\n  domains: [allowed.test]\n' > "$D/p.yaml"; chmod 644 "$D/p.yaml"
AS_USER="setpriv --reuid $U --regid $U --clear-groups env -i PATH=/usr/bin:/bin HOME=$D/home"
ROOT_ENF="$BIN/cagent enforce --profile $D/p.yaml --user $U --workspace $D/ws --state-dir $D/state --upstream-dns 198.18.0.1"
USER_ENF="$BIN/cagent enforce --profile $D/p.yaml --workspace $D/ws --state-dir $D/ustate --upstream-dns 198.18.0.1"
BWRAP="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp --bind $D/ws $D/ws --cap-drop ALL /bin/true"
echo "== start, offline (hyperfine, in the lab's host namespace)"
ip netns exec $H hyperfine -N -w 3 -r ${RUNS:-20} --export-markdown "$D/start.md" \
  -n "root mode" "$ROOT_ENF --offline -- /bin/true" \
  -n "rootless" "$AS_USER $USER_ENF --offline -- /bin/true" \
  -n "bwrap (as the user)" "$AS_USER $BWRAP" >/dev/null
cat "$D/start.md"
echo "== start, networked (DNS gate, allowlist, uplink)"
ip netns exec $H hyperfine -N -w 2 -r ${RUNS:-20} --export-markdown "$D/net.md" \
  -n "root mode (veth)" "$ROOT_ENF -- /bin/true" \
  -n "rootless (slirp4netns)" "$AS_USER $USER_ENF -- /bin/true" >/dev/null
cat "$D/net.md"
echo "== TCP throughput to an allowed server (iperf3 -t 5, from inside the sandbox)"
for mode in root rootless; do
  if [ $mode = root ]; then CMD="$ROOT_ENF"; else CMD="$AS_USER $USER_ENF"; fi
  # iperf3's port 5201 is the allowed name's: a profile endpoint would do the same; here the domain pin opens 80/443 only,
  # so the server also listens on 443.
  echo "-- $mode"
  ip netns exec $H $CMD -- sh -c 'getent hosts allowed.test >/dev/null; iperf3 -c allowed.test -p 443 -t 5 -f g 2>&1 | grep -E "sender|receiver"' 2>/dev/null || true
done
