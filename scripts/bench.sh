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

if run store; then
  # The store: 1M synthetic events (file 70%, DNS 15%, flows 10%, exec 5%) with 10k distinct keys, recorded
  # through the Recorder into a fresh database, against the sqlite3 CLI bulk-loading the same events as raw
  # CSV rows (one row per event, no aggregation, no index). Then the Tracee importer on the same events as
  # Tracee JSON lines against jq reducing them to counts per distinct key.
  work=$(mktemp -d /tmp/cagent-bench-store.XXXXXX)
  trap 'rm -rf "$work"' EXIT
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
fi
