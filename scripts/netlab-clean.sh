#!/usr/bin/env bash
# Removes test-network labs whose test process is gone (a crashed or interrupted run). Labs of a running test
# process are left alone. Tests/Netlab/Netlab.swift does the same at every lab start.
set -u
registry=/run/cgt-netlab
[ -d "$registry" ] || exit 0
start_time() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || echo gone; }
for entry in "$registry"/*; do
  [ -f "$entry" ] || continue
  id=$(basename "$entry")
  read -r _ owner owner_start < <(grep '^owner ' "$entry")
  if [ "$(start_time "$owner")" = "$owner_start" ]; then continue; fi
  while read -r kind pid started; do
    [ "$kind" = child ] && [ "$(start_time "$pid")" = "$started" ] && kill -9 -- "-$pid" "$pid" 2>/dev/null
  done <"$entry"
  # host, inet, and the sandbox namespaces tests create in the lab (cgt-ID-sN)
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^cgt-$id-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
    ip netns delete "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  rm -rf "/tmp/cgt-netlab-$id" "$entry"
  echo "netlab-clean: removed lab $id"
done
