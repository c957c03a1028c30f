#!/usr/bin/env bash
# The module graph of docs/architecture.md, drawn from Package.swift (`swift package dump-package`): every
# non-test target with what it depends on, lowest layer first (a target's layer is one above its highest
# dependency). `--write` puts it between the markers in docs/architecture.md; `--check` (make test) fails when
# the document and Package.swift disagree; no argument prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
graph=$(swift package dump-package 2>/dev/null | python3 -c '
import json, sys
package = json.load(sys.stdin)
targets = {t["name"]: t for t in package["targets"] if t["type"] != "test"}
def deps(t):
    local, products = [], []
    for d in t.get("dependencies", []):
        kind, value = next(iter(d.items()))
        name = value[0]
        (local if kind in ("byName", "target") and name in targets else products).append(name)
    return local, products
layer = {}
def depth(name):
    if name not in layer:
        local, _ = deps(targets[name])
        layer[name] = 1 + max((depth(d) for d in local), default=-1)
    return layer[name]
for name in targets: depth(name)
width = max(len(n) for n in targets)
for name in sorted(targets, key=lambda n: (layer[n], n)):
    local, products = deps(targets[name])
    right = ", ".join(sorted(local) + sorted(products)) or "(nothing)"
    print(f"{layer[name]}  {name.ljust(width)}  -> {right}")
')
begin='<!-- module-graph: scripts/module-graph.sh --write -->'
end='<!-- /module-graph -->'
doc=docs/architecture.md
block=$(printf '%s\n```\n%s\n```\n%s' "$begin" "$graph" "$end")
current=$(awk -v b="$begin" -v e="$end" '$0==b{p=1} p{print} $0==e{p=0}' "$doc")
case "${1:-}" in
  --write)
    if [ -z "$current" ]; then echo "module-graph: no markers in $doc" >&2; exit 1; fi
    python3 - "$doc" "$begin" "$end" "$block" <<'PY'
import sys
path, begin, end, block = sys.argv[1:]
text = open(path).read()
start = text.index(begin); stop = text.index(end) + len(end)
open(path, "w").write(text[:start] + block + text[stop:])
PY
    ;;
  --check)
    if [ "$current" != "$block" ]; then
      echo "module-graph: FAILED: the module graph in $doc is not Package.swift's; run scripts/module-graph.sh --write" >&2
      diff <(printf '%s\n' "$current") <(printf '%s\n' "$block") >&2 || true
      exit 1
    fi
    echo "module-graph: $doc matches Package.swift"
    ;;
  *) printf '%s\n' "$graph" ;;
esac
