// cagent-dns-bench: runs the DNS gate standalone for scripts/bench-dns.sh, pinning into a real nftables
// set over netlink (libnftnl), so it does the same work as `dnsmasq --nftset`:
//
//   cagent-dns-bench --listen 10.98.0.1 --port 5301 --upstream 10.98.0.2 --allow '**.bench.test' \
//                    --table cgt --set allow4
//
// Run it inside the benchmark's network namespace (ip netns exec). Stops on SIGINT/SIGTERM.
#if canImport(Glibc)
import Glibc
#endif
import CNftnl
import CagentCore
import CagentDNS
import CagentNetwork

/// Adds addresses (the set is keyed by address only, like dnsmasq's) to `inet TABLE SET` with a timeout: one netlink batch per pin, ACK awaited before the
/// gate releases the answer. (The product's pinner is the Firewall's; this one exists for the benchmark.)
// @unchecked: a libmnl socket (C), used by the gate's one thread.
final class NetlinkSetPinner: AddressPinner, @unchecked Sendable {
    let table: String
    let set: String
    private var socket: OpaquePointer?
    private var sequence: UInt32 = UInt32(truncatingIfNeeded: time(nil))
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(table: String, set: String) { self.table = table; self.set = set }

    func pin(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        guard address.isV4 else { return }   // the benchmark's set is ipv4_addr
        if socket == nil {
            // Opened lazily on the gate thread, so the socket lives in the gate's network namespace.
            guard let opened = mnl_socket_open(NETLINK_NETFILTER), mnl_socket_bind(opened, 0, MNL_SOCKET_AUTOPID) == 0 else {
                throw CagentError.system("pin", "mnl_socket_open")
            }
            socket = opened
        }
        let element = nftnl_set_elem_alloc()!
        var key = address.bytes
        nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), &key, UInt32(key.count))
        nftnl_set_elem_set_u64(element, UInt16(NFTNL_SET_ELEM_TIMEOUT), UInt64(ttl) * 1000)
        let setObject = nftnl_set_alloc()!
        defer { nftnl_set_free(setObject) }
        nftnl_set_set_str(setObject, UInt16(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(setObject, UInt16(NFTNL_SET_NAME.rawValue), set)
        nftnl_set_elem_add(setObject, element)

        let sent: Int = buffer.withUnsafeMutableBytes { raw in
            let batch = mnl_nlmsg_batch_start(raw.baseAddress, raw.count)!
            defer { mnl_nlmsg_batch_stop(batch) }
            sequence &+= 1
            nftnl_batch_begin(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), sequence)
            mnl_nlmsg_batch_next(batch)
            sequence &+= 1
            let header = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self),
                                              UInt16(NFT_MSG_NEWSETELEM.rawValue), UInt16(NFPROTO_INET),
                                              UInt16(NLM_F_CREATE | NLM_F_ACK), sequence)
            nftnl_set_elems_nlmsg_build_payload(header, setObject)
            mnl_nlmsg_batch_next(batch)
            sequence &+= 1
            nftnl_batch_end(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), sequence)
            mnl_nlmsg_batch_next(batch)
            return mnl_socket_sendto(socket, mnl_nlmsg_batch_head(batch), mnl_nlmsg_batch_size(batch))
        }
        guard sent > 0 else { throw CagentError.system("pin", "mnl_socket_sendto") }
        // One ACK (NLMSG_ERROR with error 0) for the one message sent with NLM_F_ACK.
        let received = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
        guard received >= 20 else { throw CagentError.system("pin", "mnl_socket_recvfrom") }
        let type = UInt16(buffer[4]) | UInt16(buffer[5]) << 8
        let error = Int32(bitPattern: UInt32(buffer[16]) | UInt32(buffer[17]) << 8 | UInt32(buffer[18]) << 16 | UInt32(buffer[19]) << 24)
        guard type == UInt16(NLMSG_ERROR), error == 0 else {
            throw CagentError(stage: "pin", "netlink answered type \(type) error \(error)")
        }
    }

    func refresh(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws { try pin(address, ports: ports, ttl: ttl) }
}

func say(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func option(_ name: String, _ fallback: String? = nil) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count { return arguments[index + 1] }
    if let fallback { return fallback }
    say("cagent-dns-bench: \(name) is required")
    exit(2)
}

do {
    let policy = try GatePolicy(domains: option("--allow").split(separator: ",").map(String.init), ipv6: false)
    let configuration = Gate.Configuration(listen: [IPAddress(option("--listen"))!], port: UInt16(option("--port"))!,
                                           policy: policy, upstream: try UpstreamConfig(override: [option("--upstream")]),
                                           clamp: .init(floor: 60, cap: 3600))
    let gate = Gate(configuration: configuration, pinner: NetlinkSetPinner(table: option("--table", "cgt"), set: option("--set", "allow4")))
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &signals, nil)   // before the gate thread starts, so it inherits the mask
    let port = try gate.start()
    print("cagent-dns-bench: gate on port \(port)")
    fflush(nil)
    var received: Int32 = 0
    sigwait(&signals, &received)
    gate.stop()
} catch {
    say("cagent-dns-bench: \(error)")
    exit(1)
}
