/// The test network's addresses. They come from ranges reserved for documentation and benchmarking
/// (RFC 2544 198.18.0.0/15, RFC 5737 TEST-NET-2/3, RFC 3849 2001:db8::/32) and never from this machine's own
/// networks (its uplink is 192.0.2.0/24 and fd00::/64; `ip addr` shows them). scripts/test.sh watches the
/// real uplink for any packet from these ranges.
package enum NetlabAddresses {
    // The link between the simulated host and the simulated internet.
    package static let host4 = "198.18.0.2"
    package static let router4 = "198.18.0.1"
    package static let host6 = "2001:db8:18::2"
    package static let router6 = "2001:db8:18::1"

    /// The internet's DNS server (dnsmasq), authoritative for the test zones; it logs every query.
    package static let dns4 = "198.51.100.53"
    package static let dns6 = "2001:db8:53::53"
    /// A "public resolver" (the 8.8.8.8 of the test internet). It is one of the attacker's addresses: any
    /// packet that reaches it is recorded by the sink.
    package static let publicResolver4 = "198.51.100.8"
    package static let publicResolver6 = "2001:db8:8::8"

    /// Web servers (plain HTTP on 80, 443 and 8080).
    package static let web1 = "203.0.113.10"      // www.allowed.test, allowed.test, a.allowed.test
    package static let web2 = "203.0.113.11"      // api.allowed.test
    package static let web3 = "203.0.113.12"      // the cdn.test edge at the end of the CNAME chain
    package static let web4 = "203.0.113.13"      // moving.allowed.test's second address
    package static let web1v6 = "2001:db8:10::10"
    package static let web2v6 = "2001:db8:10::11"
    package static let webAll4 = [web1, web2, web3, web4]
    package static let webAll6 = [web1v6, web2v6]

    /// The attacker: every packet to these is recorded.
    package static let attacker4 = "203.0.113.66"
    package static let attacker6 = "2001:db8:66::66"
    package static let attackerAll = [attacker4, attacker6, publicResolver4, publicResolver6]

    package static let webTCPPorts = [80, 443, 8080]
    package static let sinkTCPPorts = [22, 53, 80, 443, 853, 8080]
    package static let sinkUDPPorts = [53, 443, 853, 9999]
}
