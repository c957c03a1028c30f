import CNftnl
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// One nftables expression, as the kernel sees it (what `nft --debug=netlink` prints).
package enum NftExpr: Sendable, Equatable {
    case meta(key: UInt32, dreg: UInt32)
    case cmp(sreg: UInt32, op: UInt32, data: [UInt8])
    case payload(base: UInt32, offset: UInt32, length: UInt32, dreg: UInt32)
    case bitwise(sreg: UInt32, dreg: UInt32, mask: [UInt8], xor: [UInt8])
    case ct(key: UInt32, dreg: UInt32)
    case lookup(set: String, sreg: UInt32, dreg: UInt32?)
    /// `update @set { key timeout T }`: resets the matched element's timeout (the key is in sreg onwards).
    case dynsetUpdate(set: String, sreg: UInt32, timeoutMilliseconds: UInt64)
    case verdict(NftVerdict)
    case immediate(dreg: UInt32, data: [UInt8])
    case log(group: UInt16, prefix: String)
    case reject(type: UInt32, code: UInt8)
    case masquerade
    case redirect(protoMinRegister: UInt32)
    case counter
}

package enum NftVerdict: Sendable, Equatable {
    case accept, drop, jump(String)

    var code: Int32 {
        switch self {
        case .accept: return Int32(NF_ACCEPT)
        case .drop: return Int32(NF_DROP)
        case .jump: return NFT_JUMP.rawValue
        }
    }

    var chain: String? { if case .jump(let name) = self { return name } else { return nil } }
}

/// A rule: its expressions and the nft-syntax line it means (for golden files and error messages).
package struct NftRule: Sendable, Equatable {
    package var chain: String
    package var text: String
    package var expressions: [NftExpr]
}

package struct NftChain: Sendable, Equatable {
    package struct Hook: Sendable, Equatable {
        package var type: String        // filter | nat
        package var hook: UInt32        // NF_INET_*
        package var priority: Int32
        package var hookName: String
    }
    package var name: String
    package var hook: Hook?
}

package struct NftSet: Sendable, Equatable {
    package var name: String
    /// nft datatype id (composite for concatenations: `type << 6 | next`).
    package var keyType: UInt32
    package var keyLength: UInt32
    /// Field lengths of a concatenation, unpadded.
    package var fields: [UInt32]
    package var flags: UInt32
    /// True for a verdict map.
    package var verdictMap: Bool
    package var typeText: String
}

package struct NftElement: Sendable, Equatable {
    package var key: [UInt8]
    package var keyEnd: [UInt8]?
    package var timeoutMilliseconds: UInt64?
    package var verdict: NftVerdict?
    package var text: String
}

/// One atomic change to cagent's table: what `nft -f` would apply as one transaction.
package struct NftBatch: Sendable, Equatable {
    package enum Operation: Sendable, Equatable {
        case addTable
        case deleteTable
        case addChain(NftChain)
        case deleteChain(String)
        case addSet(NftSet)
        case deleteSet(String)
        case addRule(NftRule)
        /// Deletes every rule of a chain (the chain stays).
        case flushChain(String)
        case addElements(set: String, [NftElement])
        case deleteElements(set: String, [NftElement])
    }

    package var table: String
    package var family: UInt16 = UInt16(NFPROTO_INET)
    package var operations: [Operation] = []

    package init(table: String) { self.table = table }

    package var isEmpty: Bool { operations.isEmpty }

    /// The batch in nft syntax, one command per line (golden files compare this).
    package var text: String {
        var lines: [String] = []
        let prefix = "inet \(table)"
        for operation in operations {
            switch operation {
            case .addTable: lines.append("add table \(prefix)")
            case .deleteTable: lines.append("delete table \(prefix)")
            case .addChain(let chain):
                if let hook = chain.hook {
                    lines.append("add chain \(prefix) \(chain.name) { type \(hook.type) hook \(hook.hookName) priority \(hook.priority); policy accept; }")
                } else {
                    lines.append("add chain \(prefix) \(chain.name)")
                }
            case .deleteChain(let name): lines.append("delete chain \(prefix) \(name)")
            case .addSet(let set):
                let kind = set.verdictMap ? "map" : "set"
                var flags: [String] = []
                if set.flags & UInt32(NFT_SET_INTERVAL.rawValue) != 0 { flags.append("interval") }
                if set.flags & UInt32(NFT_SET_EVAL.rawValue) != 0 { flags.append("dynamic") }
                if set.flags & UInt32(NFT_SET_TIMEOUT.rawValue) != 0 { flags.append("timeout") }
                let flagText = flags.isEmpty ? "" : " flags \(flags.joined(separator: ",")) ;"
                lines.append("add \(kind) \(prefix) \(set.name) { type \(set.typeText) ;\(flagText) }")
            case .deleteSet(let name): lines.append("delete set \(prefix) \(name)")
            case .addRule(let rule): lines.append("add rule \(prefix) \(rule.chain) \(rule.text)")
            case .flushChain(let name): lines.append("flush chain \(prefix) \(name)")
            case .addElements(let set, let elements):
                lines.append("add element \(prefix) \(set) { \(elements.map(\.text).joined(separator: ", ")) }")
            case .deleteElements(let set, let elements):
                lines.append("delete element \(prefix) \(set) { \(elements.map(\.text).joined(separator: ", ")) }")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Encodes the batch as netlink messages between BATCH_BEGIN and BATCH_END; returns the bytes and the
    /// number of acknowledgements to wait for (one per message between).
    func encode(firstSequence: UInt32) throws -> (bytes: [UInt8], acks: Int, meaning: [UInt32: String]) {
        var meaning: [UInt32: String] = [:]
        let lines = text.split(separator: "\n").map(String.init)
        var out: [UInt8] = []
        var sequence = firstSequence
        var scratch = [UInt8](repeating: 0, count: 1 << 17)
        var acks = 0
        var setIDs: [String: UInt32] = [:]

        func append(_ build: (UnsafeMutablePointer<CChar>, UInt32) throws -> UnsafeMutablePointer<nlmsghdr>?) throws {
            let bytes: [UInt8] = try scratch.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                guard let header = try build(base, sequence) else {
                    throw CagentError(stage: "nft batch", "cannot build a netlink message")
                }
                return Array(UnsafeRawBufferPointer(start: raw.baseAddress, count: Int(header.pointee.nlmsg_len)))
            }
            out += bytes
            sequence &+= 1
        }
        func header(_ base: UnsafeMutablePointer<CChar>, _ type: nf_tables_msg_types, _ flags: Int32, _ seq: UInt32) -> UnsafeMutablePointer<nlmsghdr> {
            acks += 1
            return nftnl_nlmsg_build_hdr(base, UInt16(type.rawValue), family, UInt16(flags | NLM_F_ACK), seq)!
        }

        try append { base, seq in nftnl_batch_begin(base, seq) }
        for (index, operation) in operations.enumerated() {
            meaning[sequence] = index < lines.count ? lines[index] : nil
            switch operation {
            case .addTable, .deleteTable:
                let table = nftnl_table_alloc()!
                defer { nftnl_table_free(table) }
                nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), self.table)
                let isAdd = operation == .addTable
                try append { base, seq in
                    let h = header(base, isAdd ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, isAdd ? NLM_F_CREATE : 0, seq)
                    nftnl_table_nlmsg_build_payload(h, table)
                    return h
                }
            case .addChain(let spec):
                let chain = nftnl_chain_alloc()!
                defer { nftnl_chain_free(chain) }
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), spec.name)
                if let hook = spec.hook {
                    nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), hook.hook)
                    nftnl_chain_set_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue), hook.priority)
                    nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TYPE.rawValue), hook.type)
                    nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
                }
                try append { base, seq in
                    let h = header(base, NFT_MSG_NEWCHAIN, NLM_F_CREATE, seq)
                    nftnl_chain_nlmsg_build_payload(h, chain)
                    return h
                }
            case .deleteChain(let name):
                let chain = nftnl_chain_alloc()!
                defer { nftnl_chain_free(chain) }
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), name)
                try append { base, seq in
                    let h = header(base, NFT_MSG_DELCHAIN, 0, seq)
                    nftnl_chain_nlmsg_build_payload(h, chain)
                    return h
                }
            case .addSet(let spec):
                let id = UInt32(setIDs.count + 1)
                setIDs[spec.name] = id
                let set = makeSet(spec.name)
                defer { nftnl_set_free(set) }
                nftnl_set_set_u32(set, UInt16(NFTNL_SET_ID.rawValue), id)
                nftnl_set_set_u32(set, UInt16(NFTNL_SET_FLAGS.rawValue), spec.flags)
                nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_TYPE.rawValue), spec.keyType)
                nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_LEN.rawValue), spec.keyLength)
                if spec.verdictMap {
                    // Set user data as nft writes it (key byte order: host), so that `nft list` prints the names.
                    var userData: [UInt8] = [0, 4, 1, 0, 0, 0]
                    userData.withUnsafeMutableBytes { raw in
                        _ = nftnl_set_set_data(set, UInt16(NFTNL_SET_USERDATA.rawValue), raw.baseAddress, UInt32(raw.count))
                    }
                    nftnl_set_set_u32(set, UInt16(NFTNL_SET_DATA_TYPE.rawValue), UInt32(bitPattern: Int32(truncatingIfNeeded: NFT_DATA_VERDICT.rawValue)))
                    nftnl_set_set_u32(set, UInt16(NFTNL_SET_DATA_LEN.rawValue), 0)
                }
                if spec.fields.count > 1 {
                    // libnftnl takes the field lengths as bytes (uint8_t field_len[]).
                    var fields = spec.fields.map { UInt8($0) }
                    fields.withUnsafeMutableBytes { raw in
                        _ = nftnl_set_set_data(set, UInt16(NFTNL_SET_DESC_CONCAT.rawValue), raw.baseAddress, UInt32(raw.count))
                    }
                }
                try append { base, seq in
                    let h = header(base, NFT_MSG_NEWSET, NLM_F_CREATE, seq)
                    nftnl_set_nlmsg_build_payload(h, set)
                    return h
                }
            case .deleteSet(let name):
                let set = makeSet(name)
                defer { nftnl_set_free(set) }
                try append { base, seq in
                    let h = header(base, NFT_MSG_DELSET, 0, seq)
                    nftnl_set_nlmsg_build_payload(h, set)
                    return h
                }
            case .addRule(let spec):
                let rule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(rule) }
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), table)
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), spec.chain)
                nftnl_rule_set_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
                for expression in spec.expressions {
                    nftnl_rule_add_expr(rule, try makeExpression(expression, setIDs: setIDs))
                }
                try append { base, seq in
                    let h = header(base, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, seq)
                    nftnl_rule_nlmsg_build_payload(h, rule)
                    return h
                }
            case .flushChain(let name):
                // DELRULE with a chain and no handle deletes all of the chain's rules.
                let rule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(rule) }
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), table)
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), name)
                nftnl_rule_set_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
                try append { base, seq in
                    let h = header(base, NFT_MSG_DELRULE, 0, seq)
                    nftnl_rule_nlmsg_build_payload(h, rule)
                    return h
                }
            case .addElements(let name, let elements), .deleteElements(let name, let elements):
                let isAdd: Bool
                if case .addElements = operation { isAdd = true } else { isAdd = false }
                // Nested attribute lengths are u16: keep each message well under 64 KiB (kernel-notes §3).
                var start = 0
                while start < elements.count {
                    let chunk = elements[start..<min(start + 400, elements.count)]
                    start += chunk.count
                    let set = makeSet(name)
                    defer { nftnl_set_free(set) }
                    if let id = setIDs[name] { nftnl_set_set_u32(set, UInt16(NFTNL_SET_ID.rawValue), id) }
                    for element in chunk { nftnl_set_elem_add(set, makeElement(element)) }
                    try append { base, seq in
                        let h = header(base, isAdd ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, isAdd ? NLM_F_CREATE : 0, seq)
                        nftnl_set_elems_nlmsg_build_payload(h, set)
                        return h
                    }
                }
            }
        }
        try append { base, seq in nftnl_batch_end(base, seq) }
        return (out, acks, meaning)
    }

    private func makeSet(_ name: String) -> OpaquePointer {
        let set = nftnl_set_alloc()!
        nftnl_set_set_str(set, UInt16(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(set, UInt16(NFTNL_SET_NAME.rawValue), name)
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(family))
        return set
    }

    private func makeElement(_ spec: NftElement) -> OpaquePointer {
        let element = nftnl_set_elem_alloc()!
        spec.key.withUnsafeBytes { _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count)) }
        if let end = spec.keyEnd {
            end.withUnsafeBytes { _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY_END), $0.baseAddress, UInt32($0.count)) }
        }
        if let timeout = spec.timeoutMilliseconds {
            nftnl_set_elem_set_u64(element, UInt16(NFTNL_SET_ELEM_TIMEOUT), timeout)
        }
        if let verdict = spec.verdict {
            nftnl_set_elem_set_u32(element, UInt16(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain { nftnl_set_elem_set_str(element, UInt16(NFTNL_SET_ELEM_CHAIN), chain) }
        }
        return element
    }

    private func makeExpression(_ spec: NftExpr, setIDs: [String: UInt32]) throws -> OpaquePointer {
        func alloc(_ name: String) -> OpaquePointer { nftnl_expr_alloc(name)! }
        func u32(_ e: OpaquePointer, _ attribute: Int, _ value: UInt32) { nftnl_expr_set_u32(e, UInt16(attribute), value) }
        func data(_ e: OpaquePointer, _ attribute: Int, _ bytes: [UInt8]) {
            bytes.withUnsafeBytes { _ = nftnl_expr_set(e, UInt16(attribute), $0.baseAddress, UInt32($0.count)) }
        }
        switch spec {
        case .meta(let key, let dreg):
            let e = alloc("meta")
            u32(e, NFTNL_EXPR_META_KEY, key); u32(e, NFTNL_EXPR_META_DREG, dreg)
            return e
        case .cmp(let sreg, let op, let bytes):
            let e = alloc("cmp")
            u32(e, NFTNL_EXPR_CMP_SREG, sreg); u32(e, NFTNL_EXPR_CMP_OP, op)
            data(e, NFTNL_EXPR_CMP_DATA, bytes)
            return e
        case .payload(let base, let offset, let length, let dreg):
            let e = alloc("payload")
            u32(e, NFTNL_EXPR_PAYLOAD_BASE, base); u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset)
            u32(e, NFTNL_EXPR_PAYLOAD_LEN, length); u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg)
            return e
        case .bitwise(let sreg, let dreg, let mask, let xor):
            let e = alloc("bitwise")
            u32(e, NFTNL_EXPR_BITWISE_SREG, sreg); u32(e, NFTNL_EXPR_BITWISE_DREG, dreg)
            u32(e, NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
            data(e, NFTNL_EXPR_BITWISE_MASK, mask); data(e, NFTNL_EXPR_BITWISE_XOR, xor)
            return e
        case .ct(let key, let dreg):
            let e = alloc("ct")
            u32(e, NFTNL_EXPR_CT_KEY, key); u32(e, NFTNL_EXPR_CT_DREG, dreg)
            return e
        case .lookup(let set, let sreg, let dreg):
            let e = alloc("lookup")
            nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOOKUP_SET), set)
            if let id = setIDs[set] { u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id) }
            u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg)
            if let dreg { u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg) }
            return e
        case .dynsetUpdate(let set, let sreg, let timeout):
            let e = alloc("dynset")
            nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_DYNSET_SET_NAME), set)
            if let id = setIDs[set] { u32(e, NFTNL_EXPR_DYNSET_SET_ID, id) }
            u32(e, NFTNL_EXPR_DYNSET_OP, UInt32(NFT_DYNSET_OP_UPDATE.rawValue))
            u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, sreg)
            nftnl_expr_set_u64(e, UInt16(NFTNL_EXPR_DYNSET_TIMEOUT), timeout)
            return e
        case .verdict(let verdict):
            let e = alloc("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, UInt32(NFT_REG_VERDICT.rawValue))
            u32(e, NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain { nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_IMM_CHAIN), chain) }
            return e
        case .immediate(let dreg, let bytes):
            let e = alloc("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, dreg)
            data(e, NFTNL_EXPR_IMM_DATA, bytes)
            return e
        case .log(let group, let prefix):
            let e = alloc("log")
            nftnl_expr_set_u16(e, UInt16(NFTNL_EXPR_LOG_GROUP), group)
            nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOG_PREFIX), prefix)
            // Queue threshold 1: the kernel sends each record at once instead of batching up to 100 records
            // or a second, so the live denial line appears while the agent's tool is still failing.
            nftnl_expr_set_u16(e, UInt16(NFTNL_EXPR_LOG_QTHRESHOLD), 1)
            return e
        case .reject(let type, let code):
            let e = alloc("reject")
            u32(e, NFTNL_EXPR_REJECT_TYPE, type)
            nftnl_expr_set_u8(e, UInt16(NFTNL_EXPR_REJECT_CODE), code)
            return e
        case .masquerade:
            return alloc("masq")
        case .redirect(let register):
            let e = alloc("redir")
            u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, register)
            u32(e, NFTNL_EXPR_REDIR_FLAGS, 0x2) // NF_NAT_RANGE_PROTO_SPECIFIED
            return e
        case .counter:
            return alloc("counter")
        }
    }
}

/// Applies batches to the nftables of the calling thread's network namespace.
package enum NftApplier {
    package static func apply(_ batch: NftBatch, stage: String = "nftables") throws {
        _ = try applyHolding(batch, stage: stage)
    }

    /// Applies `batch` and returns its socket still open (nil for an empty batch). What a batch deletes is
    /// freed by nf_tables after an RCU grace period, on a work item, and the release of any NETLINK_NETFILTER
    /// socket waits for that work (nft_rcv_nl_event flushes it): ~10-15 ms on this machine's close, measured
    /// with strace (docs/benchmarks.md). A caller with other slow work to do holds the socket across it and
    /// drops it after, when the grace period has mostly passed.
    static func applyHolding(_ batch: NftBatch, stage: String = "nftables") throws -> NetlinkSocket? {
        guard !batch.isEmpty else { return nil }
        let socket = try NetlinkSocket(NETLINK_NETFILTER, stage: stage)
        let first = socket.sequences(batch.operations.count + 1000)
        let (bytes, acks, meaning) = try batch.encode(firstSequence: first)
        try socket.transact(bytes, acks: acks, meaning: meaning)
        return socket
    }
}
