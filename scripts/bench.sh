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
