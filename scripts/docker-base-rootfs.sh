#!/usr/bin/env bash
# Builds the small Debian root file system the Docker tests import as the runtime image's base (no registry
# is reachable from the test machine): debootstrap --variant=minbase from the Debian mirror /etc/apt names,
# with cagent's runtime libraries and the probes the tests run in the container. Cached: the tarball is
# rebuilt only when this script changes. Usage: scripts/docker-base-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: docker-base-rootfs.sh OUT.tar}
suite=bookworm
# cagent's runtime libraries (docker/Dockerfile installs the same list), then the tests' probes.
packages=libnftnl11,libmnl0,libyaml-0-2,libsqlite3-0,zlib1g,libbpf1,libelf1,libpcap0.8,libstdc++6,libgcc-s1,ca-certificates,nftables,procps
stamp=$(sha256sum "$0" | cut -c1-16)
if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
# The mirror the machine's apt uses (deb822 or one-line sources).
mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$mirror" ] || { echo "docker-base-rootfs: no Debian mirror in /etc/apt" >&2; exit 1; }
work=$(mktemp -d "${out%/*}/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s.%N)
debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 \
  || { tail -n 20 "$work/log" >&2; echo "docker-base-rootfs: debootstrap failed" >&2; exit 1; }
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$stamp" > "$out.stamp"
echo "docker-base-rootfs: built $(du -h "$out" | cut -f1) in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
