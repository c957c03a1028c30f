import CagentNetwork
#if canImport(Glibc)
import Glibc
#endif

/// Looks a name up: the one impure step of the Kubernetes export. Tests inject a table.
package protocol AddressResolving: Sendable {
    /// The name's addresses, or a short reason it has none ("NXDOMAIN", "no address").
    func resolve(_ name: String) -> Result<[IPAddress], ResolutionFailure>
}

package struct ResolutionFailure: Error, Sendable, Equatable {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
}

/// The system resolver, through getaddrinfo: what a pod's own lookup would see is the cluster's resolver,
/// which may answer differently; the export says so in its annotations.
package struct SystemResolver: AddressResolving {
    package init() {}

    package func resolve(_ name: String) -> Result<[IPAddress], ResolutionFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        guard status == 0 else { return .failure(ResolutionFailure(String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var addresses: Set<IPAddress> = []
        var entry = list
        while let current = entry {
            if let sockaddr = current.pointee.ai_addr {
                switch current.pointee.ai_family {
                case AF_INET:
                    sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                        var raw = v4.pointee.sin_addr
                        let bytes = withUnsafeBytes(of: &raw) { Array($0) }
                        if let address = IPAddress(bytes: bytes) { addresses.insert(address) }
                    }
                case AF_INET6:
                    sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                        var raw = v6.pointee.sin6_addr
                        let bytes = withUnsafeBytes(of: &raw) { Array($0) }
                        if let address = IPAddress(bytes: bytes) { addresses.insert(address) }
                    }
                default: break
                }
            }
            entry = current.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(ResolutionFailure("no address")) : .success(addresses.sorted())
    }
}

/// A fixed table, for tests and for exporting from addresses recorded elsewhere.
package struct TableResolver: AddressResolving {
    package var table: [String: [IPAddress]]
    package init(_ table: [String: [IPAddress]]) { self.table = table }

    package func resolve(_ name: String) -> Result<[IPAddress], ResolutionFailure> {
        guard let addresses = table[name], !addresses.isEmpty else { return .failure(ResolutionFailure("NXDOMAIN")) }
        return .success(addresses)
    }
}
