import CNftnl
#if canImport(Glibc)
import Glibc
#endif

/// Building blocks of cagent's rules: each returns the expressions and the nft-syntax text they stand for.
/// Encodings follow what `nft --debug=netlink` prints for the same text (kernel-notes §3): in an inet table
/// every address match is preceded by `meta nfproto`.
struct RulePart {
    var text: String
    var expressions: [NftExpr]

    static func + (lhs: RulePart, rhs: RulePart) -> RulePart {
        RulePart(text: [lhs.text, rhs.text].filter { !$0.isEmpty }.joined(separator: " "),
                 expressions: lhs.expressions + rhs.expressions)
    }

    func rule(in chain: String) -> NftRule { NftRule(chain: chain, text: text, expressions: expressions) }
}

enum Reg {
    static let verdict = UInt32(NFT_REG_VERDICT.rawValue)
    static let r1 = UInt32(NFT_REG_1.rawValue)
    /// 32-bit registers for concatenations: reg 1 is the same storage as 32-bit registers 8...11.
    static func r32(_ index: Int) -> UInt32 { UInt32(NFT_REG32_00.rawValue) + UInt32(index) }
}

enum L4 {
    static let tcp: UInt8 = 6
    static let udp: UInt8 = 17
    static let icmp: UInt8 = 1
    static let icmpv6: UInt8 = 58

    static func name(_ proto: UInt8) -> String {
        switch proto {
        case tcp: return "tcp"
        case udp: return "udp"
        case icmp: return "icmp"
        case icmpv6: return "ipv6-icmp"
        default: return String(proto)
        }
    }
}

enum Match {
    static let eq = UInt32(NFT_CMP_EQ.rawValue)
    static let neq = UInt32(NFT_CMP_NEQ.rawValue)
    static let network = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)
    static let transport = UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)

    static func nfproto(_ family: IPAddress.Family) -> RulePart {
        let value = UInt8(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)
        return RulePart(text: "meta nfproto \(family == .v4 ? "ipv4" : "ipv6")", expressions: [
            .meta(key: NFT_META_NFPROTO.rawValue, dreg: Reg.r1), .cmp(sreg: Reg.r1, op: eq, data: [value]),
        ])
    }

    /// `iifname "cgs*"` / `oifname "cgs*"`: a prefix match compares only the prefix's bytes.
    static func interfacePrefix(_ prefix: String, output: Bool = false) -> RulePart {
        let key = output ? NFT_META_OIFNAME : NFT_META_IIFNAME
        return RulePart(text: "\(output ? "oifname" : "iifname") \"\(prefix)*\"", expressions: [
            .meta(key: key.rawValue, dreg: Reg.r1), .cmp(sreg: Reg.r1, op: eq, data: Array(prefix.utf8)),
        ])
    }

    static func l4proto(_ proto: UInt8) -> RulePart {
        RulePart(text: "meta l4proto \(L4.name(proto))", expressions: [
            .meta(key: NFT_META_L4PROTO.rawValue, dreg: Reg.r1), .cmp(sreg: Reg.r1, op: eq, data: [proto]),
        ])
    }

    static func destinationPort(_ port: UInt16) -> RulePart {
        RulePart(text: "th dport \(port)", expressions: [
            .payload(base: transport, offset: 2, length: 2, dreg: Reg.r1),
            .cmp(sreg: Reg.r1, op: eq, data: [UInt8(port >> 8), UInt8(port & 0xff)]),
        ])
    }

    /// `ip daddr NET` / `ip6 daddr NET` (with the nfproto guard).
    static func destination(in network: IPNetwork) -> RulePart {
        let v4 = network.family == .v4
        let width = UInt32(network.address.bytes.count)
        let single = network.prefixLength == network.address.bytes.count * 8
        var expressions: [NftExpr] = [.payload(base: Self.network, offset: v4 ? 16 : 24, length: width, dreg: Reg.r1)]
        if !single {
            let mask = IPNetwork.mask([UInt8](repeating: 0xff, count: Int(width)), network.prefixLength)
            expressions.append(.bitwise(sreg: Reg.r1, dreg: Reg.r1, mask: mask, xor: [UInt8](repeating: 0, count: Int(width))))
        }
        expressions.append(.cmp(sreg: Reg.r1, op: eq, data: network.address.bytes))
        let text = "\(v4 ? "ip" : "ip6") daddr \(single ? network.address.description : network.description)"
        return nfproto(network.family) + RulePart(text: text, expressions: expressions)
    }

    static func destination(_ address: IPAddress) -> RulePart {
        destination(in: IPNetwork(address: address, prefixLength: address.bytes.count * 8)!)
    }

    static func established() -> RulePart {
        // ct state is a host-order u32 bitmask; established (2) | related (4).
        RulePart(text: "ct state established,related", expressions: [
            .ct(key: NFT_CT_STATE.rawValue, dreg: Reg.r1),
            .bitwise(sreg: Reg.r1, dreg: Reg.r1, mask: [0x06, 0, 0, 0], xor: [0, 0, 0, 0]),
            .cmp(sreg: Reg.r1, op: neq, data: [0, 0, 0, 0]),
        ])
    }

    static func ctStateNew() -> RulePart {
        // ct state bit new is 8.
        RulePart(text: "ct state new", expressions: [
            .ct(key: NFT_CT_STATE.rawValue, dreg: Reg.r1),
            .bitwise(sreg: Reg.r1, dreg: Reg.r1, mask: [0x08, 0, 0, 0], xor: [0, 0, 0, 0]),
            .cmp(sreg: Reg.r1, op: neq, data: [0, 0, 0, 0]),
        ])
    }

    /// `icmp type T` or `icmpv6 type T`.
    static func icmpType(_ family: IPAddress.Family, _ type: UInt8, name: String) -> RulePart {
        let proto = family == .v4 ? L4.icmp : L4.icmpv6
        return nfproto(family) + RulePart(text: "\(family == .v4 ? "icmp" : "icmpv6") type \(name)", expressions: [
            .meta(key: NFT_META_L4PROTO.rawValue, dreg: Reg.r1), .cmp(sreg: Reg.r1, op: eq, data: [proto]),
            .payload(base: transport, offset: 0, length: 1, dreg: Reg.r1), .cmp(sreg: Reg.r1, op: eq, data: [type]),
        ])
    }

    /// `ip daddr . meta l4proto . th dport @set` (or ip6).
    static func allowLookup(_ family: IPAddress.Family, set: String) -> RulePart {
        let width = family == .v4 ? 1 : 4   // 32-bit registers the address fills
        return nfproto(family) + RulePart(text: "\(family == .v4 ? "ip" : "ip6") daddr . meta l4proto . th dport @\(set)", expressions: [
            .payload(base: network, offset: family == .v4 ? 16 : 24, length: family == .v4 ? 4 : 16, dreg: Reg.r1),
            .meta(key: NFT_META_L4PROTO.rawValue, dreg: Reg.r32(width)),
            .payload(base: transport, offset: 2, length: 2, dreg: Reg.r32(width + 1)),
            .lookup(set: set, sreg: Reg.r1, dreg: nil),
        ])
    }

    /// `update @set { ip daddr . meta l4proto . th dport timeout T }` after `allowLookup` on the same set: the
    /// key is still in the registers the lookup read.
    static func refresh(_ family: IPAddress.Family, set: String, seconds: UInt32) -> RulePart {
        RulePart(text: "update @\(set) { \(family == .v4 ? "ip" : "ip6") daddr . meta l4proto . th dport timeout \(seconds)s }",
                 expressions: [.dynsetUpdate(set: set, sreg: Reg.r1, timeoutMilliseconds: UInt64(seconds) * 1000)])
    }

    /// `iifname vmap @map`.
    static func interfaceVerdictMap(_ map: String) -> RulePart {
        RulePart(text: "iifname vmap @\(map)", expressions: [
            .meta(key: NFT_META_IIFNAME.rawValue, dreg: Reg.r1), .lookup(set: map, sreg: Reg.r1, dreg: Reg.verdict),
        ])
    }
}

enum Statement {
    static func verdict(_ verdict: NftVerdict) -> RulePart {
        let text: String
        switch verdict {
        case .accept: text = "accept"
        case .drop: text = "drop"
        case .jump(let chain): text = "jump \(chain)"
        }
        return RulePart(text: text, expressions: [.verdict(verdict)])
    }

    static func log(group: UInt16, prefix: String) -> RulePart {
        RulePart(text: "log prefix \"\(prefix)\" group \(group) queue-threshold 1", expressions: [.log(group: group, prefix: prefix)])
    }

    static func rejectTCPReset() -> RulePart {
        RulePart(text: "reject with tcp reset", expressions: [.reject(type: UInt32(NFT_REJECT_TCP_RST.rawValue), code: 0)])
    }

    static func rejectAdminProhibited() -> RulePart {
        RulePart(text: "reject with icmpx admin-prohibited", expressions: [
            .reject(type: UInt32(NFT_REJECT_ICMPX_UNREACH.rawValue), code: UInt8(NFT_REJECT_ICMPX_ADMIN_PROHIBITED.rawValue)),
        ])
    }

    static func masquerade() -> RulePart { RulePart(text: "masquerade", expressions: [.masquerade]) }

    static func redirect(to port: UInt16) -> RulePart {
        RulePart(text: "redirect to :\(port)", expressions: [
            .immediate(dreg: Reg.r1, data: [UInt8(port >> 8), UInt8(port & 0xff)]), .redirect(protoMinRegister: Reg.r1),
        ])
    }
}

extension Match {
    /// `meta skuid UID` / `meta skuid != UID`: the socket's owner (a packet without a socket matches neither).
    static func socketUID(_ uid: UInt32, equal: Bool = true) -> RulePart {
        RulePart(text: "meta skuid \(equal ? "" : "!= ")\(uid)", expressions: [
            .meta(key: NFT_META_SKUID.rawValue, dreg: Reg.r1),
            .cmp(sreg: Reg.r1, op: equal ? eq : neq, data: withUnsafeBytes(of: uid) { Array($0) }),
        ])
    }

}
