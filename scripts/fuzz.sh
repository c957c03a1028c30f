#!/usr/bin/env bash
# Fuzzes every parser and decision that reads bytes from a sandbox, with libFuzzer + AddressSanitizer
# (`swiftc -sanitize=fuzzer,address -parse-as-library`, on the sources each target needs). docs/testing.md "Fuzzing".
#   scripts/fuzz.sh build [TARGET...]     build .build/fuzz/bin/TARGET (all targets without arguments)
#   scripts/fuzz.sh run TARGET [SECONDS]  fuzz one target (default 600 s)
#   scripts/fuzz.sh all [SECONDS]         build, then fuzz every target in turn (`make fuzz`: FUZZ_SECONDS, default 60)
# Targets: wire answer gate nflog tls packet tracee profile. Seeds: Tests/Fuzz/TARGET (tracee also reads the
# importer's fixtures). New inputs go to .build/fuzz/corpus/TARGET (the checked-in seeds stay small), crashes to
# .build/fuzz/findings/TARGET. Every finding is copied into Tests/Fuzz/TARGET, where a test CI runs replays it
# (CagentDNSTests: wire, answer, gate, nflog, tls, packet; CagentStoreTests: tracee; CagentProfileTests: profile), then fixed.
# tracee and profile link CagentCore (and CagentEvents) from the debug build: `swift build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
# Swift's own backtracer would symbolicate every crash for up to 30 s while libFuzzer waits: off.
export SWIFT_BACKTRACE=enable=no
out=.build/fuzz
targets=(wire answer gate nflog tls packet tracee profile)
# The package name SwiftPM gave the debug build (the checkout's directory name): the tracee and profile
# targets see CagentCore's `package` declarations only under the same name.
package_name=$(grep -s '"-module-name","CagentCore"' .build/debug.yaml | grep -o '"-package-name","[^"]*"' | head -1 | cut -d'"' -f4)
flags=(-sanitize=fuzzer,address -parse-as-library -g -O -D CAGENT_FUZZ -package-name "${package_name:-cagent}")
# CagentCore's String(nulTerminated:) (IPAddress uses it), compiled into the targets that do not link CagentCore.
cstring=Sources/CagentCore/CString.swift
dns=("$cstring" Sources/CagentNetwork/IPAddress.swift Sources/CagentDNS/DNSWire.swift Sources/CagentDNS/AddressClass.swift
     Sources/CagentDNS/DomainPattern.swift Sources/CagentDNS/GatePolicy.swift Sources/CagentDNS/GateAnswer.swift)
debug=.build/debug

# Objects and modules of the debug build, for the targets whose sources import CagentCore.
prebuilt() {
  local missing=0
  for module in "$@"; do [ -d "$debug/$module.build" ] || missing=1; done
  if [ $missing = 1 ]; then echo "fuzz: run 'swift build' first (the tracee and profile targets link its CagentCore)" >&2; exit 1; fi
  prebuilt_flags=(-I "$debug/Modules" -Xcc -fmodule-map-file="$debug/CShim.build/module.modulemap" -Xcc -fmodule-map-file=Sources/CLibYAML/module.modulemap)
  for module in "$@"; do prebuilt_flags+=("$debug/$module.build"/*.o); done
}

build_one() {
  local target=$1 bin=$out/bin/$1
  mkdir -p "$out/bin"
  case $target in
    wire|answer|gate)
      swiftc "${flags[@]}" -module-name CagentDNSFuzz "${dns[@]}" "Fuzz/$(tr '[:lower:]' '[:upper:]' <<<"${target:0:1}")${target:1}Fuzz.swift" -o "$bin" ;;
    nflog)
      swiftc "${flags[@]}" -module-name CagentNflogFuzz "$cstring" Sources/CagentNetwork/IPAddress.swift Sources/CagentDNS/AddressClass.swift \
        Sources/CagentCapture/NflogFrame.swift Fuzz/NflogFuzz.swift -o "$bin" ;;
    tls|packet)
      swiftc "${flags[@]}" -module-name CagentPacketFuzz "$cstring" Sources/CagentNetwork/IPAddress.swift Sources/CagentCapture/TLSClientHello.swift \
        Sources/CagentCapture/PacketDecoder.swift "Fuzz/$(tr '[:lower:]' '[:upper:]' <<<"${target:0:1}")${target:1}Fuzz.swift" -o "$bin" ;;
    tracee)
      # The parser and the finding rules instrumented; the event model and CagentCore from the debug build.
      prebuilt CagentCore CagentEvents CShim Logging
      swiftc "${flags[@]}" -module-name TraceeFuzz "${prebuilt_flags[@]}" -lz \
        Sources/CagentStore/FindingRules.swift Sources/CagentTrace/TraceeParser.swift Fuzz/TraceeFuzz.swift -o "$bin" ;;
    profile)
      # The whole profile module instrumented (libyaml events, composer, schema walk, diagnostics).
      prebuilt CagentCore CShim Logging
      swiftc "${flags[@]}" -module-name CagentProfile -enable-upcoming-feature MemberImportVisibility "${prebuilt_flags[@]}" -lyaml \
        Sources/CagentProfile/*.swift Fuzz/ProfileFuzz.swift -o "$bin" ;;
    *) echo "fuzz: unknown target '$target' (${targets[*]})" >&2; exit 2 ;;
  esac
}

# Rebuilds a target only when a Swift source or harness is newer than its binary (or the debug build changed).
build_if_stale() {
  local bin=$out/bin/$1
  if [ -x "$bin" ] && [ -z "$(find Fuzz Sources "$debug/Modules" -newer "$bin" \( -name '*.swift' -o -name '*.swiftmodule' \) -print -quit 2>/dev/null)" ]; then
    echo "fuzz: $1 is up to date"
  else
    echo "fuzz: building $1"; build_one "$1"
  fi
}

seeds() {
  echo "Tests/Fuzz/$1"
  if [ "$1" = tracee ]; then echo Tests/CagentStoreTests/Fixtures/tracee; fi
}

run_one() {
  local target=$1 secs=$2 extra=()
  [ -x "$out/bin/$target" ] || build_one "$target"
  mkdir -p "$out/corpus/$target" "$out/findings/$target"
  [ -f "Fuzz/$target.dict" ] && extra+=(-dict="Fuzz/$target.dict")
  # -rss_limit_mb/-timeout: a hang or a memory blow-up is a finding too.
  "$out/bin/$target" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${extra[@]}" -artifact_prefix="$out/findings/$target/" "$out/corpus/$target" $(seeds "$target")
}

case "${1:-}" in
  build) shift; for target in "${@:-${targets[@]}}"; do echo "fuzz: building $target"; build_one "$target"; done ;;
  run) run_one "$2" "${3:-600}" ;;
  all)
    secs=${2:-${FUZZ_SECONDS:-60}}
    for target in "${targets[@]}"; do build_if_stale "$target"; done
    failed=()
    for target in "${targets[@]}"; do
      echo "fuzz: $target for ${secs}s"
      run_one "$target" "$secs" 2>&1 | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)|Fatal error' || true
      if [ -n "$(ls -A "$out/findings/$target")" ]; then failed+=("$target"); fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: findings in ${failed[*]} (.build/fuzz/findings/): copy each into Tests/Fuzz/TARGET and fix" >&2; exit 1
    fi
    echo "fuzz: no findings" ;;
  *) echo "usage: $0 build [TARGET...] | run TARGET [SECONDS] | all [SECONDS]  (targets: ${targets[*]})" >&2; exit 2 ;;
esac
