#!/usr/bin/env bash
# Fuzzes the Tracee parser with libFuzzer + AddressSanitizer.
#   scripts/fuzz-tracee.sh [SECONDS]   (default 600)
# Seeds: Tests/StoreTests/Fixtures/tracee/*.jsonl. The working corpus and crash artifacts go to
# .build/fuzz/. A crash file found here must become a regression test (Tests/StoreTests/Fixtures/fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-600}
out=.build/fuzz
mkdir -p "$out/corpus" "$out/artifacts"
cp Tests/StoreTests/Fixtures/tracee/*.jsonl "$out/corpus/"
[ -d Tests/StoreTests/Fixtures/fuzz ] && cp Tests/StoreTests/Fixtures/fuzz/* "$out/corpus/" 2>/dev/null || true

# The parser and the model compile as one module (their `import CagentEvents` is behind canImport).
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name TraceeFuzz \
  Sources/CagentEvents/ObservedEvent.swift Sources/CagentStore/FindingRules.swift \
  Sources/CagentTrace/TraceeParser.swift Fuzz/TraceeFuzz.swift -o "$out/tracee-fuzz"

# -dict: JSON and Tracee tokens help libFuzzer reach the field mapping quickly.
"$out/tracee-fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict=Fuzz/tracee.dict -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$out/corpus"
