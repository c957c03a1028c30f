#!/usr/bin/env bash
# Fuzzes the DNS wire parser/builder and the gate's answer walk with libFuzzer (Swift's -sanitize=fuzzer).
#   scripts/fuzz-dns.sh build            build .build/fuzz/{wire,answer,nflog}
#   scripts/fuzz-dns.sh run TARGET SECS  fuzz one target for SECS seconds (findings land in .build/fuzz/findings/)
# The seed corpus is Tests/DNSTests/Corpus/TARGET; new inputs go to .build/fuzz/corpus/TARGET so the
# checked-in seeds stay small. Every finding becomes a regression test in Tests/DNSTests/FuzzRegressionTests.swift.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
out=.build/fuzz
sources=(Sources/CagentNetwork/IPAddress.swift Sources/CagentDNS/DNSWire.swift Sources/CagentDNS/AddressClass.swift Sources/CagentDNS/DomainPattern.swift
         Sources/CagentDNS/GatePolicy.swift Sources/CagentDNS/GateAnswer.swift)

build() {
  mkdir -p "$out"
  for target in wire answer; do
    entry=Fuzz/$(tr '[:lower:]' '[:upper:]' <<<"${target:0:1}")${target:1}Fuzz.swift
    swiftc -sanitize=fuzzer,address -parse-as-library -g -O -module-name CagentDNSFuzz -D CAGENT_FUZZ \
      "${sources[@]}" "$entry" -o "$out/$target"
  done
  swiftc -sanitize=fuzzer,address -parse-as-library -g -O -module-name CagentNflogFuzz -D CAGENT_FUZZ \
    Sources/CagentNetwork/IPAddress.swift Sources/CagentDNS/AddressClass.swift Sources/CagentCapture/NflogFrame.swift Fuzz/NflogFuzz.swift -o "$out/nflog"
}

case "${1:-}" in
  build) build ;;
  run)
    target=$2; secs=${3:-600}
    mkdir -p "$out/corpus/$target" "$out/findings/$target"
    "$out/$target" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$out/findings/$target/" "$out/corpus/$target" "Tests/DNSTests/Corpus/$target"
    ;;
  *) echo "usage: $0 build | run wire|answer|nflog [seconds]" >&2; exit 2 ;;
esac
