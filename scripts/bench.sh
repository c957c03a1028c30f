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

if run enforce; then
  # Sandbox start: `cagent enforce -- /bin/true`, start to exit, beside bwrap with the same namespaces (user,
  # mount, pid, net, uts, ipc, cgroup) and an equivalent view (ro /usr, merged-/usr links, /etc on tmpfs,
  # /proc, minimal /dev, /tmp tmpfs, workspace and home read-write, new session, die-with-parent).
  # The agent user is BENCH_UID (default: SUDO_UID, else 1000); its shadow home is created under its home.
  uid=${BENCH_UID:-${SUDO_UID:-1000}}
  scratch=$(mktemp -d /tmp/cgbench-XXXXXX); chmod 755 "$scratch"
  mkdir -p "$scratch/ws" "$scratch/home"; chown "$uid:$uid" "$scratch/ws" "$scratch/home"
  # The shadow home is created under the user's home (~/.local/share/cagent); remove it if this run made it.
  state="$(getent passwd "$uid" | cut -d: -f6)/.local/share/cagent"
  if [ -e "$state" ]; then trap 'rm -rf "$scratch"' EXIT; else trap 'rm -rf "$scratch" "$state"' EXIT; fi
  bwrap_cmd="bwrap --unshare-all --uid $uid --gid $uid --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
--symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --tmpfs /etc --ro-bind /etc/ld.so.cache /etc/ld.so.cache \
--ro-bind /etc/nsswitch.conf /etc/nsswitch.conf --proc /proc --dev /dev --tmpfs /tmp --bind $scratch/home $scratch/home \
--bind $scratch/ws $scratch/ws --chdir $scratch/ws --new-session --die-with-parent /bin/true"
  $bench --name "sandbox start: cagent enforce -- /bin/true vs bwrap" --rounds 40 --warmup 3 \
    --subject "cd $scratch/ws && $cagent enforce --profile default --user $uid -- /bin/true </dev/null" \
    --reference "$bwrap_cmd </dev/null"
  # What dominates: the bare start of the cagent binary (Swift runtime, Foundation, ArgumentParser) ...
  $bench --name "cagent process start (cagent --version) vs bwrap" --rounds 40 --warmup 3 \
    --subject "$cagent --version" --reference "$bwrap_cmd </dev/null"
  # ... and the sandbox alone: the same plan replayed from C through cg_spawn_init and cagent-init.
  (cd "$scratch/ws" && $cagent enforce --profile default --user "$uid" --dump-plan "$scratch/plan" -- /bin/true)
  cc -O2 -I Sources/CShim/include -o "$scratch/probe" scripts/sandbox-start-probe.c Sources/CShim/cg_spawn.c
  $bench --name "sandbox alone (plan replayed from C) vs bwrap" --rounds 40 --warmup 3 \
    --subject "$scratch/probe $scratch/plan $uid $uid $PWD/.build/release/cagent-init" --reference "$bwrap_cmd </dev/null"
fi
