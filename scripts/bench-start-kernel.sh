#!/usr/bin/env bash
# The kernel's two waits on a sandbox start's critical path, measured without cagent (docs/benchmarks.md,
# "Networked start, issue #13, second round"). Root; a throwaway netns and two throwaway v1 pids cgroups.
# 1. nf_tables: `nft` adding a chain and a set vs deleting them (process start to exit: the exit releases the
#    netlink socket, and that release waits for nf_tables' destruction work, an RCU grace period).
# 2. cgroup v1: the first cgroup.procs write of a process (cgroup_threadgroup_rwsem: a grace period), the write
#    right after it, and "0" to `tasks` by the writing thread itself (no threadgroup lock).
set -u
ns=cgt-sfk$$
cg=/sys/fs/cgroup/pids
ip netns add $ns
trap 'ip netns del $ns; rmdir $cg/cgt-sfk-a $cg/cgt-sfk-b $cg/cgt-sfk-c 2>/dev/null' EXIT
ms() { echo "($2-$1)*1000" | bc; }
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms (p90 %.2f)", a[int((NR+1)/2)], a[int(NR*0.9)]}'; }
ip netns exec $ns nft add table inet t
add=(); del=()
for i in $(seq 20); do
  t0=$EPOCHREALTIME; ip netns exec $ns nft "add chain inet t c$i; add set inet t s$i { type ipv4_addr; }"; t1=$EPOCHREALTIME
  ip netns exec $ns nft "delete chain inet t c$i; delete set inet t s$i"; t2=$EPOCHREALTIME
  add+=($(ms $t0 $t1)); del+=($(ms $t1 $t2))
  sleep 0.05
done
echo "nft, add batch: $(med "${add[@]}"); delete batch: $(med "${del[@]}")"
mkdir -p $cg/cgt-sfk-a $cg/cgt-sfk-b $cg/cgt-sfk-c
first=(); second=(); self=()
for i in $(seq 20); do
  sleep 5 & pid=$!
  sleep 0.2
  t0=$EPOCHREALTIME; echo $pid > $cg/cgt-sfk-a/cgroup.procs; t1=$EPOCHREALTIME
  echo $pid > $cg/cgt-sfk-b/cgroup.procs; t2=$EPOCHREALTIME
  kill $pid; wait $pid 2>/dev/null
  sleep 0.2
  # A fresh bash (one thread): "0" to tasks moves the writing thread itself.
  self+=($(bash -c 't0=$EPOCHREALTIME; echo 0 > '$cg'/cgt-sfk-c/tasks; t1=$EPOCHREALTIME; echo "($t1-$t0)*1000" | bc'))
  first+=($(ms $t0 $t1)); second+=($(ms $t1 $t2))
done
echo "cgroup v1 pids: first cgroup.procs write $(med "${first[@]}"); the write right after it $(med "${second[@]}"); \"0\" to tasks by the thread itself $(med "${self[@]}")"
