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

if run profile; then
  # Profile loading: resolve claude-code (three files, extends, every value checked) against PyYAML merely
  # loading the same three files without any checks, the least a Python-based tool would do.
  $bench --name "cagent profile lint claude-code vs PyYAML load of its 3 files" --rounds 30 \
    --subject "CAGENT_PROFILES_DIR=$PWD/profiles $cagent profile lint claude-code >/dev/null" \
    --reference "python3 -c 'import yaml,sys; [yaml.safe_load(open(f)) for f in sys.argv[1:]]' profiles/base.yaml profiles/github.yaml profiles/claude-code.yaml"
fi

if run seccomp; then
  # The sandbox's seccomp filter (175 BPF instructions, binary search on the syscall number) on a
  # syscall-bound workload and on a compile, each under bwrap with and without the filter (bwrap --seccomp
  # installs exactly the bytes `cagent policy seccomp --bpf` writes).
  filter=$(mktemp /tmp/cagent-filter-XXXXXX)
  trap 'rm -f "$filter"' EXIT
  $cagent policy seccomp --bpf "$filter" >/dev/null
  src=$(mktemp -d /tmp/cagent-bench-cc-XXXXXX)
  printf '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n' > "$src/hello.c"
  dd="dd if=/dev/zero of=/dev/null bs=1 count=200000 status=none"
  $bench --name "seccomp: dd bs=1, 400k read+write syscalls" --rounds 20 \
    --subject "bwrap --dev-bind / / --seccomp 9 9<$filter -- $dd" --reference "bwrap --dev-bind / / -- $dd"
  cc="cc -O2 -o $src/hello $src/hello.c"
  $bench --name "seccomp: cc -O2 hello.c" --rounds 20 \
    --subject "bwrap --dev-bind / / --seccomp 9 9<$filter -- $cc" --reference "bwrap --dev-bind / / -- $cc"
  rm -rf "$src"
fi

if run network; then
  # TCP throughput through a sandbox's uplink (veth + cagent's host-side nftables + masquerade) beside a plain
  # routed veth pair (iperf3), and the network part's setup time. Namespaces only (cgt-bn*).
  CAGENT=$cagent scripts/bench-network.sh
fi

if run enforce; then
  # Sandbox start: `cagent enforce -- /bin/true`, start to exit, beside bwrap with the same namespaces (user,
  # mount, pid, net, uts, ipc, cgroup) and an equivalent view (ro /usr, merged-/usr links, /etc on tmpfs,
  # /proc, minimal /dev, /tmp tmpfs, workspace and home read-write, new session, die-with-parent).
  # The agent user is BENCH_UID (default: SUDO_UID, else 1000).
  uid=${BENCH_UID:-${SUDO_UID:-1000}}
  scratch=$(mktemp -d /tmp/cgbench-XXXXXX); chmod 755 "$scratch"
  mkdir -p "$scratch/ws" "$scratch/home"; chown "$uid:$uid" "$scratch/ws" "$scratch/home"
  trap 'rm -rf "$scratch"' EXIT   # the shadow home lives in $scratch/state (--state-dir), not in a real home
  bwrap_cmd="bwrap --unshare-all --uid $uid --gid $uid --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
--symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --tmpfs /etc --ro-bind /etc/ld.so.cache /etc/ld.so.cache \
--ro-bind /etc/nsswitch.conf /etc/nsswitch.conf --proc /proc --dev /dev --tmpfs /tmp --bind $scratch/home $scratch/home \
--bind $scratch/ws $scratch/ws --chdir $scratch/ws --new-session --die-with-parent /bin/true"
  $bench --name "sandbox start: cagent enforce -- /bin/true vs bwrap" --rounds 40 --warmup 3 \
    --subject "cd $scratch/ws && $cagent enforce --offline --profile default --user $uid --state-dir $scratch/state -- /bin/true </dev/null" \
    --reference "$bwrap_cmd </dev/null"
  # The network's share (veth, chains, DNS gate, nflog reader, teardown), in a throwaway namespace so that
  # nothing touches this machine's interfaces: the same start with and without --offline.
  benchns=cgtbench$$
  trap 'rm -rf "$scratch"; ip netns del '$benchns' 2>/dev/null' EXIT
  ip netns add $benchns && ip -n $benchns link set lo up && ip -n $benchns link add cgtdummy type veth peer name cgtdummy2 \
    && ip -n $benchns addr add 198.18.99.1/24 dev cgtdummy && ip -n $benchns link set cgtdummy up && ip -n $benchns link set cgtdummy2 up \
    && ip -n $benchns route add default via 198.18.99.2
  in_ns="nsenter --net=/run/netns/$benchns env CAGENT_RUNTIME_DIR=$scratch/run"
  $bench --name "enforce start with network vs --offline (in a throwaway netns)" --rounds 20 --warmup 2 \
    --subject "cd $scratch/ws && $in_ns $cagent enforce --profile default --user $uid --state-dir $scratch/state --upstream-dns 198.18.99.2 -- /bin/true </dev/null 2>/dev/null" \
    --reference "cd $scratch/ws && $in_ns $cagent enforce --offline --profile default --user $uid --state-dir $scratch/state -- /bin/true </dev/null"
  # For scale: the start of the whole command set (`cagent --version`: the front execs cagent-full, which
  # loads Foundation, SQLite and the rest), what every `cagent enforce` paid before the lean front ...
  $bench --name "full command set start (cagent --version) vs bwrap" --rounds 40 --warmup 3 \
    --subject "$cagent --version" --reference "$bwrap_cmd </dev/null"
  # ... and the sandbox alone: the same plan replayed from C through cg_spawn_init and cagent-init.
  (cd "$scratch/ws" && $cagent enforce --profile default --user "$uid" --state-dir "$scratch/state" --dump-plan "$scratch/plan" -- /bin/true)
  cc -O2 -I Sources/CShim/include -o "$scratch/probe" scripts/sandbox-start-probe.c Sources/CShim/cg_spawn.c
  $bench --name "sandbox alone (plan replayed from C) vs bwrap" --rounds 40 --warmup 3 \
    --subject "$scratch/probe $scratch/plan $uid $uid $PWD/.build/release/cagent-init" --reference "$bwrap_cmd </dev/null"
fi

if run start; then
  # Issue #13's start targets, side by side (100 rounds after 3 warm-ups, round-robin): bwrap (offline,
  # the view of the `enforce` block), `cagent enforce --offline`, and `cagent enforce` with the network, all
  # three in a throwaway network namespace (only a veth with a default route: nothing touches this machine's
  # interfaces). The harness itself runs in it, so no command pays a wrapper's start (`nsenter ... env` per run
  # cost ~2.5 ms here, on cagent's commands only, until the third round). The tables of docs/benchmarks.md
  # ("Networked start ...") come from this.
  uid=${BENCH_UID:-${SUDO_UID:-1000}}
  scratch=$(mktemp -d /tmp/cgbench-XXXXXX); chmod 755 "$scratch"
  mkdir -p "$scratch/ws" "$scratch/home"; chown "$uid:$uid" "$scratch/ws" "$scratch/home"
  benchns=cgtbench$$
  trap 'rm -rf "$scratch"; ip netns del '$benchns' 2>/dev/null' EXIT
  ip netns add $benchns && ip -n $benchns link set lo up && ip -n $benchns link add cgtdummy type veth peer name cgtdummy2 \
    && ip -n $benchns addr add 198.18.99.1/24 dev cgtdummy && ip -n $benchns link set cgtdummy up && ip -n $benchns link set cgtdummy2 up \
    && ip -n $benchns route add default via 198.18.99.2
  bwrap_cmd="bwrap --unshare-all --uid $uid --gid $uid --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
--symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --tmpfs /etc --ro-bind /etc/ld.so.cache /etc/ld.so.cache \
--ro-bind /etc/nsswitch.conf /etc/nsswitch.conf --proc /proc --dev /dev --tmpfs /tmp --bind $scratch/home $scratch/home \
--bind $scratch/ws $scratch/ws --chdir $scratch/ws --new-session --die-with-parent /bin/true"
  harness=$PWD/scripts/bench-interleaved.py
  # OLD_CAGENT=<another build's cagent>: its two starts too, in the same run (a before/after pair).
  old=()
  if [ -n "${OLD_CAGENT:-}" ]; then
    old=("offline-old=$OLD_CAGENT enforce --offline --profile default --user $uid --state-dir $scratch/state-old -- /bin/true"
         "network-old=$OLD_CAGENT enforce --profile default --user $uid --state-dir $scratch/state-old --upstream-dns 198.18.99.2 -- /bin/true")
  fi
  uptime
  # Round-robin (scripts/bench-interleaved.py says why not hyperfine's back-to-back batches here): every round
  # runs each command once. /bin/true shows the harness's own cost.
  (cd "$scratch/ws" && CAGENT_RUNTIME_DIR=$scratch/run nsenter --net=/run/netns/$benchns \
    python3 "$harness" --rounds "${START_RUNS:-100}" --warmup 3 --json "$scratch/start.json" \
    "bwrap=$bwrap_cmd" "${old[@]}" \
    "offline=$cagent enforce --offline --profile default --user $uid --state-dir $scratch/state -- /bin/true" \
    "network=$cagent enforce --profile default --user $uid --state-dir $scratch/state --upstream-dns 198.18.99.2 -- /bin/true" \
    "true=/bin/true")
  uptime
fi

if run store; then
  # The store: 1M synthetic events (file 70%, DNS 15%, flows 10%, exec 5%) with 10k distinct keys, recorded
  # through the Recorder into a fresh database, against the sqlite3 CLI bulk-loading the same events as raw
  # CSV rows (one row per event, no aggregation, no index). Then the Tracee importer on the same events as
  # Tracee JSON lines against jq reducing them to counts per distinct key.
  work=$(mktemp -d /tmp/cagent-bench-store.XXXXXX)
  $cagent synthetic --events 1000000 --keys 10000 --format csv --output "$work/events.csv"
  $cagent synthetic --events 1000000 --keys 10000 --format tracee --output "$work/events.jsonl"
  $bench --name "store: record 1M events, 10k keys vs sqlite3 .import of the raw CSV" --rounds 5 --warmup 1 \
    --subject "rm -f $work/s.db*; $cagent synthetic --events 1000000 --keys 10000 --db $work/s.db" \
    --reference "rm -f $work/r.db; sqlite3 $work/r.db '.mode csv' 'CREATE TABLE events(kind,time,pid,program,key,detail,result);' '.import $work/events.csv events'"
  echo "  database bytes (1M events, 10k keys): cagent $(stat -c %s "$work/s.db")  raw sqlite3 $(stat -c %s "$work/r.db")"
  $bench --name "store: import 1M Tracee JSON lines vs jq counting per key" --rounds 3 --warmup 1 \
    --subject "rm -f $work/i.db*; $cagent import tracee $work/events.jsonl --db $work/i.db" \
    --reference "jq -r '[.eventName, .processName, (.args[] | select(.name==\"pathname\" or .name==\"dns_questions\" or .name==\"remote_addr\") | .value | tostring)] | @tsv' $work/events.jsonl | sort | uniq -c > /dev/null"
  echo "  database bytes after import: $(stat -c %s "$work/i.db")  raw JSON lines: $(stat -c %s "$work/events.jsonl")"
  rm -rf "$work"
fi

if run propose; then
  # `cagent profile propose` from a synthetic session of 1M events with 10k distinct keys (recorded through the
  # Recorder, as above), beside `cagent report --json` reading the same session (the cost of reading it at
  # all). Then wall time and peak RSS of three proposals with /usr/bin/time -v. Targets: < 2 s, < 200 MB.
  work=$(mktemp -d /tmp/cagent-bench-propose.XXXXXX)
  $cagent synthetic --events 1000000 --keys 10000 --db "$work/p.db" --session bench >/dev/null
  $bench --name "propose: 1M events, 10k keys vs cagent report --json of the same session" --rounds 5 --warmup 1 \
    --subject "$cagent profile propose --db $work/p.db --session bench --workspace $work >/dev/null" \
    --reference "$cagent report --db $work/p.db bench --json >/dev/null"
  for _ in 1 2 3; do
    /usr/bin/time -v $cagent profile propose --db "$work/p.db" --session bench --workspace "$work" 2>&1 >/dev/null \
      | grep -E 'Elapsed|Maximum resident' | tr '\n' ' '; echo
  done
  rm -rf "$work"
fi

if run dns; then
  # The DNS gate beside dnsmasq (allowlist, cache off, --nftset) on the same query mix: q/s and latency.
  swift build -c release --product cagent-dns-bench >/dev/null
  scripts/bench-dns.sh 10
fi

if run tracing; then
  # Learn mode's tracers on a file-heavy workload: walk /usr/include, stat + lstat + open + read every file
  # (~8,000 files, ~50k traced syscalls incl. the stat family), plain, under each backend via `cagent trace`
  # (which includes loading the BPF programs / installing the filter), and under `strace -f` (all syscalls).
  walk=$PWD/scripts/bench-walk.py
  w="python3 $walk /usr/include"
  $w  # warm the page cache
  $bench --name "tracing: file-heavy walk, eBPF tracer" --rounds 10 --subject "$cagent trace --tracer ebpf -- $w" --reference "$w"
  $bench --name "tracing: file-heavy walk, seccomp notify tracer" --rounds 10 --subject "$cagent trace --tracer seccomp -- $w" --reference "$w"
  $bench --name "tracing: file-heavy walk, strace -f" --rounds 10 --subject "strace -f -o /dev/null $w" --reference "$w"
  # The same tree read three times in one run (an agent re-reading its sources): repeats stay in the kernel.
  w3="python3 $walk /usr/include /usr/include /usr/include"
  $bench --name "tracing: file-heavy walk x3, eBPF tracer" --rounds 10 --subject "$cagent trace --tracer ebpf -- $w3" --reference "$w3"
fi

if run learn; then
  # `cagent learn` on the file-heavy walk of the `tracing` block, plain vs learn with each backend. Everything
  # runs in a throwaway network namespace (cgt-bl*: the learn session's veth, nft chains and gate live there,
  # no packet reaches a real interface) with cgroup2 mounted at /sys/fs/cgroup in ip's private mount
  # namespace (the eBPF tracer's scope). The subject includes the whole learn session: the view, the
  # network setup and teardown, the tracer's load, the store. Agent user: BENCH_UID (default SUDO_UID, else 1000).
  uid=${BENCH_UID:-${SUDO_UID:-1000}}
  ns=cgt-bl$$
  scratch=$(mktemp -d /tmp/cgbench-learn-XXXXXX); chmod 755 "$scratch"
  mkdir -p "$scratch/ws" "$scratch/home"; chown "$uid:$uid" "$scratch/ws" "$scratch/home"
  ip netns add "$ns"
  trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$scratch"' EXIT
  cp scripts/bench-walk.py "$scratch/ws/walk.py"   # inside the workspace: readable by the agent user
  in_ns="ip netns exec $ns sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec \"\$@\"' sh"
  # LEARN_TREE: the tree walked (default /usr/include, ~8k files; /usr/share, ~43k files and 650 MB, is the
  # "large source tree" of the learn issue's target).
  w="/usr/bin/python3 $scratch/ws/walk.py ${LEARN_TREE:-/usr/include}"
  learn="$cagent learn --quiet --user $uid --home $scratch/home --state-dir $scratch/state --db $scratch/learn.db --workspace $scratch/ws"
  $w  # warm the page cache
  $bench --name "learn: file-heavy walk, cagent learn (eBPF)" --rounds 10 --subject "$in_ns $learn --tracer ebpf -- $w 2>/dev/null" --reference "$in_ns $w"
  $bench --name "learn: file-heavy walk, cagent learn (seccomp)" --rounds 10 --subject "$in_ns $learn --tracer seccomp -- $w 2>/dev/null" --reference "$in_ns $w"
  $bench --name "learn: /bin/true, cagent learn (eBPF): the session's fixed cost" --rounds 10 --subject "$in_ns $learn --tracer ebpf -- /bin/true 2>/dev/null" --reference "$in_ns /bin/true"
  # For scale, the tool a user would reach for: strace -f (every syscall, each one stopping the tracee twice).
  $bench --name "learn: file-heavy walk, strace -f" --rounds "${STRACE_ROUNDS:-3}" --subject "$in_ns strace -f -o /dev/null $w" --reference "$in_ns $w"
fi
