import CPcap

/// libpcap capture: DNS on the session's veth, nflog verdicts.
public enum Capture {
    /// libpcap's own version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    public static var libraryVersion: String { String(cString: cg_pcap_lib_version()) }
}
