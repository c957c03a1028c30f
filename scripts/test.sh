#!/usr/bin/env bash
# The whole test suite: unit tests, the hermetic network tests, and two checks around them:
#  - a capture on the machine's real uplink during the whole run must show no packet from the test network;
#  - afterwards no cagent/test namespace, interface, nft table or mount may remain.
set -uo pipefail
cd "$(dirname "$0")/.."

# Inputs downloaded from outside (the test cache), before the uplink capture starts: docs/testing.md.
if ! scripts/test-inputs.sh; then
  echo "test: FAILED: could not make the test inputs (scripts/test-inputs.sh)" >&2
  exit 1
fi

# Address ranges the test network uses (Tests/Netlab/NetlabAddresses.swift).
netlab_filter='net 198.18.0.0/15 or net 198.51.100.0/24 or net 203.0.113.0/24 or net 2001:db8::/32'
uplink=$(ip -o route show default 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="dev") print $(i+1)}' | head -n1)
capture_file=$(mktemp /tmp/cagent-uplink.XXXXXX)
capture_pid=""
if [ -n "$uplink" ] && command -v tcpdump >/dev/null; then
  tcpdump -i "$uplink" -n -l -p "$netlab_filter" >"$capture_file" 2>/dev/null &
  capture_pid=$!
  sleep 0.5
elif [ "${CI:-}" = true ]; then
  echo "test: cannot watch the real uplink (no default route or no tcpdump)" >&2
  exit 1
fi

# The committed eBPF skeleton must be what its source builds to (docs/tracing.md).
skeleton_status=0
scripts/gen-bpf-skeleton.sh --check || skeleton_status=1

# The style gate (docs/testing.md "Style gate"): the project's own targets build with every warning an error
# (Package.swift reads CAGENT_STRICT; dependencies keep theirs), and the formatter's enabled rules hold.
export CAGENT_STRICT=1
style_status=0
scripts/lint-format.sh || style_status=1
scripts/module-graph.sh --check || style_status=1   # docs/architecture.md's graph is Package.swift's

swift build --build-tests 2>&1 | grep -Ev '^(\[[0-9]+/[0-9]+\] |Building|Build complete|warning: .*Source files)'
build_status=${PIPESTATUS[0]}
if [ "$build_status" = 0 ]; then
  swift test --skip-build "$@"
  status=$?
else
  echo "test: FAILED: the build failed (warnings are errors here)" >&2
  status=1
fi
if [ "$skeleton_status" != 0 ] || [ "$style_status" != 0 ]; then status=1; fi

if [ -n "$capture_pid" ]; then
  sleep 0.5
  kill "$capture_pid" 2>/dev/null; wait "$capture_pid" 2>/dev/null
  leaked=$(grep -c . "$capture_file" || true)
  if [ "$leaked" != 0 ]; then
    echo "test: FAILED: $leaked packets from the test network reached the real uplink $uplink:" >&2
    head -n 20 "$capture_file" >&2
    status=1
  else
    echo "test: real uplink $uplink saw 0 packets from the test network"
  fi
fi
rm -f "$capture_file"

scripts/netlab-clean.sh
if ! scripts/check-leftovers.sh; then status=1; fi
exit $status
