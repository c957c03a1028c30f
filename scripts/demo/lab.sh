# The demo's simulated network, sourced by scripts/demo.sh: two network namespaces joined by a veth, like
# the tests' netlab (Tests/Netlab) in a few lines of shell.
#
#   cgd-host  198.18.0.2   the "machine" cagent runs on; its only route leads into cgd-inet
#      │ veth cgdh ── cgdi (both ends created inside the namespaces, never in the machine's own)
#   cgd-inet  198.18.0.1   the "internet": dnsmasq (198.51.100.53) authoritative for .test, nothing forwarded,
#             every query logged; server.py on port 80 of the model API, the git/package server and the
#             attacker (203.0.113.66, which logs everything it receives)
#
# Nothing reaches the machine's interfaces or resolver: processes in cgd-host see /etc/netns/cgd-host/resolv.conf
# (`ip netns exec`) or are given the lab's DNS server. lab_down removes everything; demo.sh calls it on exit.

lab_host=cgd${suffix:-}-host lab_inet=cgd${suffix:-}-inet   # suffix: demo.sh's CAGENT_DEMO_TAG
lab_dns=198.51.100.53 lab_model=203.0.113.20 lab_git=203.0.113.21 lab_packages=203.0.113.22 lab_attacker=203.0.113.66

lab_down() {
  local ns pid
  for ns in $lab_host $lab_inet; do
    for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete $ns 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
}

# lab_up DIR: DIR/www is served as files; logs go to DIR.
lab_up() {
  local dir=$1 a
  lab_down
  rm -f "$dir/server.out" "$dir/dnsmasq.out" "$dir/dns.log" "$dir/attacker.log"
  ip netns add $lab_host
  ip netns add $lab_inet
  ip -n $lab_host link add cgdh type veth peer name cgdi netns $lab_inet
  for ns in $lab_host $lab_inet; do ip -n $ns link set lo up; done
  ip -n $lab_host link set cgdh up
  ip -n $lab_inet link set cgdi up
  ip -n $lab_host addr add 198.18.0.2/24 dev cgdh
  ip -n $lab_inet addr add 198.18.0.1/24 dev cgdi
  ip -n $lab_host route add default via 198.18.0.1
  # IPv6 too (the sandbox gets both families when the host has both); no IPv6 service exists.
  ip -n $lab_host addr add 2001:db8:18::2/64 dev cgdh nodad
  ip -n $lab_inet addr add 2001:db8:18::1/64 dev cgdi nodad
  ip -n $lab_host -6 route add default via 2001:db8:18::1
  for a in $lab_dns $lab_model $lab_git $lab_packages $lab_attacker; do ip -n $lab_inet addr add $a/32 dev lo; done
  mkdir -p /etc/netns/$lab_host
  echo "nameserver $lab_dns" >/etc/netns/$lab_host/resolv.conf

  ip netns exec $lab_inet dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --user=root \
    --pid-file= --bind-interfaces --listen-address=$lab_dns --except-interface=cgdi --cache-size=0 \
    --log-queries --log-facility="$dir/dns.log" --local=/test/ \
    --host-record=api.model.test,$lab_model --host-record=git.forge.test,$lab_git \
    --host-record=packages.demo.test,$lab_packages --address=/attacker.test/$lab_attacker \
    >"$dir/dnsmasq.out" 2>&1 &
  disown
  ip netns exec $lab_inet python3 "$(dirname "${BASH_SOURCE[0]}")/server.py" "$dir" $lab_model $lab_git $lab_packages -- $lab_attacker \
    >"$dir/server.out" 2>&1 &
  disown
  local i
  for i in $(seq 50); do
    grep -q ready "$dir/server.out" 2>/dev/null && ip netns exec $lab_host getent hosts api.model.test >/dev/null && return 0
    sleep 0.1
  done
  echo "the demo lab did not start:" >&2; cat "$dir/server.out" "$dir/dnsmasq.out" >&2
  return 1
}
