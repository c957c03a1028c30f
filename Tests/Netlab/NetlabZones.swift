/// The test zones served by the internet's dnsmasq. Names and TTLs the network tests rely on.
package enum NetlabZones {
    /// dnsmasq arguments that define the zones.
    static func dnsmasqRecords(hostsFile: String) -> [String] {
        let a = NetlabAddresses.self
        return [
            // Everything under .test is answered here and nowhere else: unknown names get NXDOMAIN.
            "--local=/test/",
            // allowed.test: the allowed zone, with v4 and v6 addresses and a 30 s TTL.
            "--host-record=allowed.test,\(a.web1),\(a.web1v6),30",
            "--host-record=www.allowed.test,\(a.web1),\(a.web1v6),30",
            "--host-record=a.allowed.test,\(a.web1),30",
            "--host-record=api.allowed.test,\(a.web2),\(a.web2v6),30",
            "--host-record=deep.x.allowed.test,\(a.web2),30",
            // A name whose answer points at the attacker: a look-alike outside the zone.
            "--host-record=evilallowed.test,\(a.attacker4),\(a.attacker6),30",
            // Rebinding: allowed names that answer loopback, metadata and private addresses.
            "--host-record=rebind.allowed.test,127.0.0.1,30",
            "--host-record=meta.allowed.test,169.254.169.254,30",
            "--host-record=private.allowed.test,10.1.2.3,30",
            // cdn.test: assets.allowed.test -> edge.cdn.test -> node7.edge.cdn.test, short TTLs.
            "--host-record=node7.edge.cdn.test,\(a.web3),5",
            "--cname=edge.cdn.test,node7.edge.cdn.test,5",
            "--cname=assets.allowed.test,edge.cdn.test,5",
            // attacker.test: every name under it answers the attacker (exfiltration probes); and data types.
            "--address=/attacker.test/\(a.attacker4)",
            "--address=/attacker.test/\(a.attacker6)",
            "--txt-record=txt.attacker.test,exfil-channel",
            "--mx-host=attacker.test,mail.attacker.test,10",
            // Attribution: code.allowed.test answers web4, and so does every name under spray.test (a wildcard: a
            // process looking up many names that answer the same address must not rename an earlier flow).
            // Not git.allowed.test: ProposeWorkloadsTests sets that one through the hosts file.
            "--host-record=code.allowed.test,\(a.web4),30",
            "--address=/spray.test/\(a.web4)",
            // fail.test: the upstream refuses (no server for it: dnsmasq runs with --no-resolv), so the gate answers
            // SERVFAIL and glibc asks the sandbox's next nameserver, the gate's IPv6 address.
            "--server=/fail.test/#",
            // Mutable records (moving.allowed.test): rewritten by Netlab.setRecord, re-read on SIGHUP.
            "--addn-hosts=\(hostsFile)",
            "--local-ttl=5",
        ]
    }
}
