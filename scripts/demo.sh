#!/usr/bin/env bash
# The demo of `make demo`: what this machine supports, a short agent session under `cagent enforce`, then
# one under `cagent learn` and its report. The demo agents make no network connections.
# Runs as root; the agent runs as the invoking user under sudo, else as `nobody`. Everything it creates lives
# under /tmp/cagent-demo and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cagent=$PWD/.build/debug/cagent
demo=/tmp/cagent-demo
agent_uid=${SUDO_UID:-65534}

echo "== cagent doctor"
"$cagent" doctor || true

rm -rf "$demo"; mkdir -p "$demo/ws"
chown "$agent_uid" "$demo/ws"
trap 'rm -rf "$demo"' EXIT
cat >"$demo/demo.yaml" <<'YAML'
cagent: 1
description: the demo's profile, embedded in scripts/demo.sh
extends: [base]
network:
  domains: [example.com]
YAML

echo
echo "== cagent enforce: an 'agent' that looks around"
cd "$demo/ws"
"$cagent" enforce --profile "$demo/demo.yaml" --user "$agent_uid" --state-dir "$demo/state" -- /bin/sh -c '
  echo "who am I:      $(id)"
  grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | tr "\n" " "; echo
  echo "processes:     $(ls /proc | grep -c "^[0-9]") visible (pid 1 is $(cat /proc/1/comm))"
  for secret in ~/.ssh/id_rsa ~/.aws/credentials /etc/shadow /root/.bash_history; do
    if [ -s "$secret" ]; then echo "secret:        $secret READABLE"; else echo "secret:        $secret hidden"; fi
  done
  echo "work" > notes.txt && echo "workspace:     wrote $(pwd)/notes.txt"
  touch /usr/local/pwned 2>/dev/null && echo "outside:       WROTE /usr/local" || echo "outside:       /usr/local is read-only"
  unshare -Ur true 2>/dev/null && echo "namespaces:    CREATED" || echo "namespaces:    unshare refused"
  getent hosts exfil.attacker.invalid >/dev/null 2>&1 && echo "dns:           RESOLVED" || echo "dns:           exfil.attacker.invalid not resolved (not in the profile)"
'
echo "agent exit status: $?"
echo
echo "on the host: $(ls -l "$demo/ws/notes.txt")"

echo
echo "== cagent learn: watch an 'agent' and record what it needed"
"$cagent" learn --user "$agent_uid" --db "$demo/learn.db" --state-dir "$demo/state" -- /bin/sh -c '
  cat notes.txt >/dev/null; cat ~/.ssh/id_rsa 2>/dev/null; ls /usr/share/doc >/dev/null
  python3 -c "import json" ; echo done > learned.txt'
echo
echo "== cagent report (the session just recorded, first lines)"
"$cagent" report --db "$demo/learn.db" | head -n 30
