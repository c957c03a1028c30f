import CPcap

/// libpcap capture: DNS on the session's veth (the nflog records are read on their own netlink socket: NflogReader).
package enum Capture {
    /// libpcap's own version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    package static var libraryVersion: String { String(cString: cg_pcap_lib_version()) }

    /// Why libpcap cannot be loaded (it is dlopen'ed on first use: CPcap), or nil when it can.
    package static var loadError: String? { cg_pcap_load_error().map { String(cString: $0) } }
}
