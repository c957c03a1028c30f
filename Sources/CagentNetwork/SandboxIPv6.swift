import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Rootless mode's IPv6 on the user-mode stack's tap device, configured at once: slirp4netns leaves IPv6 to
/// SLAAC, which gives the sandbox an address only after duplicate address detection and the stack's router
/// advertisement (a second or more: the agent would start without IPv6). The address skips detection (the
/// link has two ends, the stack and the sandbox); the default route goes via the stack's router.
package enum SandboxIPv6 {
    /// Whether this (the host's) namespace has an IPv6 default route: without one the sandbox gets IPv4 only,
    /// as in root mode (answering AAAA would only make the agent's programs wait for a route that is not there).
    package static func hostHasDefaultRoute() -> Bool {
        guard let routing = try? Rtnetlink(stage: "read host routes"), let routes = try? routing.routes(family: .v6) else { return false }
        return routes.contains(where: \.isDefault)
    }

    /// `routeDescriptor`: a NETLINK_ROUTE socket of the sandbox's namespace (owned from here); `probe`: any
    /// socket of that namespace, for the interface's index (closed by the caller).
    package static func configure(routeDescriptor: Int32, probe: Int32, interface name: String, address: IPAddress,
                                 prefixLength: Int, gateway: IPAddress) throws {
        let link = try Rtnetlink(descriptor: routeDescriptor, stage: "configure IPv6 in the sandbox")
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
            for (i, byte) in name.utf8.prefix(Int(IFNAMSIZ) - 1).enumerated() { raw[i] = byte }
        }
        guard ioctl(probe, UInt(SIOCGIFINDEX), &request) == 0 else {
            throw CagentError.system("configure IPv6 in the sandbox", "no interface \(name)")
        }
        let index = UInt32(request.ifr_ifru.ifru_ivalue)
        try link.addAddress(address, prefixLength: prefixLength, interface: index)
        try link.addDefaultRoute(via: gateway, interface: index)
    }
}
