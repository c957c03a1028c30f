#!/usr/bin/env bash
# Fails when kernel state of cagent or of its tests remains: network namespaces, interfaces, nft tables, mounts,
# cgroups, loop devices.
set -u
left=""
ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(cagent|cg)' || true)
[ -n "$ns" ] && left="$left namespaces: $(echo $ns)"
links=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(cagent|cg)' || true)
[ -n "$links" ] && left="$left interfaces: $(echo $links)"
# `inet cagent` is kept between sessions (its base chains, no session's chains or sets: docs/network.md "The kept
# table"); with any session's part (a `cgs<id>` chain, set or map entry) it is a leftover, as is any other cagent table.
tables=$(nft list tables 2>/dev/null | grep -i cagent | grep -vx 'table inet cagent' || true)
[ -n "$tables" ] && left="$left nft: $(echo $tables)"
if nft list tables 2>/dev/null | grep -qx 'table inet cagent'; then
  parts=$(nft list table inet cagent 2>/dev/null | sed 's/"cgs\*"//g' | grep -o 'cgs[a-z0-9_]*' | sort -u || true)
  [ -n "$parts" ] && left="$left nft (session parts in inet cagent): $(echo $parts)"
fi
mounts=$(awk '{print $5}' /proc/self/mountinfo | grep -iE 'cagent|/cgt-' || true)
[ -n "$mounts" ] && left="$left mounts: $(echo $mounts)"
# Session and trace cgroups (cagent-*) in every hierarchy (v1 controllers and cgroup2).
cgroups=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -name 'cagent-*' 2>/dev/null || true)
[ -n "$cgroups" ] && left="$left cgroups: $(echo $cgroups)"
# Loop devices still backed by a bounded volume (shadow homes, learn scratch, the doctor's probe, test fixtures):
# they detach themselves (AUTOCLEAR) when the sandbox's mount namespace ends.
loops=$(for f in /sys/block/loop*/loop/backing_file; do [ -r "$f" ] && grep -lE '\.img|/cgsb-|cagent' "$f" 2>/dev/null; done | cut -d/ -f4 || true)
[ -n "$loops" ] && left="$left loop devices: $(echo $loops)"
if [ -n "$left" ]; then
  echo "leftovers: FAILED:$left" >&2
  exit 1
fi
echo "leftovers: none"
