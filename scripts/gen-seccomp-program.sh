#!/usr/bin/env bash
# Regenerates Sources/CagentSandbox/Policy/SeccompPrecompiled.swift: the sandbox's seccomp filter as the policy
# compiles it (SeccompCompiler.compileFromPolicy), so that no agent start pays for compiling it. Run after a
# change to SeccompPolicy or SyscallTable; SeccompTableTests fails until the two agree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
swift build --product cagent-full >/dev/null
out=Sources/CagentSandbox/Policy/SeccompPrecompiled.swift
.build/debug/cagent-full policy seccomp --swift-source > "$out.new"
mv "$out.new" "$out"
echo "wrote $out ($(grep -c SockFilter\( "$out") instructions)"
