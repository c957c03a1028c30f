#!/usr/bin/env bash
# Installs what cagent, its tests and its demo need on Debian/Ubuntu. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  # build: the C libraries cagent links
  libpcap-dev libnftnl-dev libmnl-dev libsqlite3-dev libbpf-dev zlib1g-dev libyaml-dev
  # build: the eBPF tracer's skeleton (scripts/gen-bpf-skeleton.sh; clang is the Swift toolchain's)
  bpftool
  # runtime: netfilter, interfaces, the Public Suffix List
  nftables iproute2 publicsuffix
  # tests: the simulated internet (DNS, HTTP, attacker sink) and probes run inside the sandbox
  dnsmasq-base bind9-dnsutils busybox-static iputils-ping tcpdump curl python3 socat strace gdb make gcc git procps psmisc openssh-client
  # tests: the proofs with real package managers and agents (AgentProofTests: pip from a test index, aider
  # from the package index into a venv in a test user's home)
  python3-venv python3-pip
  # tests: a real HTTP proxy in the simulated internet (what --allow-proxy lets through; the binary only, no service)
  tinyproxy-bin
  # tests: the Debian Docker engine (started privately by DockerContainerTests) and the base image it builds
  docker.io debootstrap
  # tests: validate exported network policies against the upstream Cilium and Kubernetes schemas
  python3-jsonschema python3-yaml
  # benchmarks: the tools a user would pick instead
  bubblewrap iperf3 hyperfine sqlite3 jq dnsperf
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root (sudo)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm for AgentProofTests: often installed with Node itself (from another source than Debian, whose npm package
# would then conflict): Debian's only when no npm is on PATH.
if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: installing npm"
  if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root (sudo)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
  echo "install-deps: Swift 6 is required (expected on PATH or at /opt/swift)" >&2
  exit 1
fi
