#!/bin/bash
# Start-to-exit of `cagent enforce -- /bin/true`, with network vs --offline, in a throwaway netns (debug build).
# Usage (root, from the package root, after `swift build`): scripts/bench-enforce-network.sh
# Nothing touches this machine's interfaces: cagent runs in a throwaway network namespace (cgtmeas*).
set -e
ns=cgtmeas$$
scratch=$(mktemp -d /tmp/cgbench-XXXXXX); chmod 755 $scratch; mkdir -p $scratch/ws $scratch/home; chown 1000:1000 $scratch/ws $scratch/home
trap "ip netns del $ns 2>/dev/null; rm -rf $scratch" EXIT
ip netns add $ns; ip -n $ns link set lo up; ip -n $ns link add cgtdummy type veth peer name cgtdummy2; ip -n $ns addr add 198.18.99.1/24 dev cgtdummy
ip -n $ns link set cgtdummy up; ip -n $ns link set cgtdummy2 up; ip -n $ns route add default via 198.18.99.2
cagent=$PWD/.build/debug/cagent
run() { cd $scratch/ws; s=$(date +%s%N); HOME=$scratch/home CAGENT_RUNTIME_DIR=$scratch/run nsenter --net=/run/netns/$ns $cagent enforce "$@" --profile default --user 1000 --state-dir $scratch/state -- /bin/true </dev/null 2>/dev/null; e=$(date +%s%N); echo $(( (e-s)/1000000 )); }
for mode in net offline; do
  args=(--upstream-dns 198.18.99.2); [ $mode = offline ] && args=(--offline)
  run "${args[@]}" >/dev/null; run "${args[@]}" >/dev/null
  ms=(); for i in $(seq 15); do ms+=($(run "${args[@]}")); done
  printf '%s: ' $mode; printf '%s\n' "${ms[@]}" | sort -n | awk '{a[NR]=$1} END {print "median " a[int((NR+1)/2)] " ms, min " a[1] ", max " a[NR] " (n=" NR ")"}'
done
echo "left in the netns:"; ip netns exec $ns nft list tables; ip -n $ns -o link | grep cgs || true
