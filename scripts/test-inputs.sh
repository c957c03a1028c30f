#!/usr/bin/env bash
# Makes the test inputs that come from outside the machine, into the test cache (Tests/Netlab/TestCache.swift:
# /var/cache/cagent-tests, or CAGENT_TEST_CACHE), before scripts/test.sh starts watching the real uplink: the
# machine's package mirror may sit in an address range the test network also uses, so a download during the
# run would read as a leak. Each step is skipped when its result is there; the tests make the same inputs
# themselves when run alone. The versions are read from the tests, so they are written down once.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${CAGENT_TEST_CACHE:-/var/cache/cagent-tests}
mkdir -p "$cache"

version_in() { grep -o "$2 = \"[^\"]*\"" "$1" | head -n1 | sed 's/.*"\(.*\)"/\1/'; }

# The Docker tests' base image: a debootstrap root file system (its own stamp decides when to rebuild).
if command -v debootstrap >/dev/null; then
  mkdir -p "$cache/docker"
  scripts/docker-base-rootfs.sh "$cache/docker/base-rootfs.tar"
fi

# The aider proof: aider-chat's wheels (AgentProofTests.aiderWheels: complete once renamed from .partial).
aider=$(version_in Tests/SandboxTests/AgentProofTests.swift aiderVersion)
wheels="$cache/agent-proofs/aider-chat-$aider"
if [ -n "$aider" ] && [ ! -d "$wheels" ]; then
  mkdir -p "$wheels.partial"
  python3 -m pip wheel --no-color --progress-bar off -q -w "$wheels.partial" "aider-chat==$aider"
  mv "$wheels.partial" "$wheels"
fi

# The differential name-matching test: dnspython in a venv (NameMatchingDifferentialTests.ensureDnspython).
dnspython=$(version_in Tests/CagentDNSTests/NameMatchingDifferentialTests.swift dnspythonVersion)
venv="$cache/differential/dnspython-$dnspython"
if [ -n "$dnspython" ] && ! "$venv/bin/python" -c 'import dns.name' 2>/dev/null; then
  mkdir -p "$cache/differential"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "dnspython==$dnspython"
fi

# The git-over-ssh proof: sshd from the Debian package, unpacked only (GitSshTests.sshdBinary: installing
# openssh-server would start the machine's own ssh service).
if [ ! -x /usr/sbin/sshd ] && [ ! -x "$cache/sshd/root/usr/sbin/sshd" ]; then
  work=$(mktemp -d)
  (cd "$work" && { apt-get download -q openssh-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download -q openssh-server >/dev/null; }; } \
     && dpkg-deb -x openssh-server_*.deb root)
  mkdir -p "$cache/sshd" && rm -rf "$cache/sshd/root" && mv "$work/root" "$cache/sshd/root"
  rm -rf "$work"
fi
