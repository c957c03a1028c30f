// What makes an event worth a finding. Pure logic, applied by the Recorder as events arrive.
import CagentCore
import CagentEvents
#if canImport(Glibc)
import Glibc
#endif

package enum FindingKind: String, Sendable, Hashable, CaseIterable {
    /// A file the hide list covers was opened, listed, written or looked up (failures included).
    case secretAccess = "secret-access"
    /// A DNS message to or from a resolver other than the session's gate.
    case dnsBypass = "dns-bypass"
    /// A flow to an address no DNS answer or SNI of the session named.
    case directIP = "direct-ip"
    /// A DNS-over-HTTPS/TLS provider was looked up or connected to.
    case dohEndpoint = "doh-endpoint"
    /// Long or high-entropy labels, the shape of data smuggled out in DNS names.
    case dnsExfiltration = "dns-exfiltration"

    /// Report order: the most serious first.
    package var rank: Int {
        switch self {
        case .secretAccess: 0
        case .dnsExfiltration: 1
        case .dnsBypass: 2
        case .dohEndpoint: 3
        case .directIP: 4
        }
    }
}

package struct FindingRules: Sendable {
    /// Secret paths: `~/x` entries match a `x` component sequence under any directory (the agent's home
    /// may be a shadow home), absolute entries match that path and everything below it.
    package var secretPaths: [String]
    /// The gate's address for this session, if there was a gate; DNS with any other resolver is a bypass. A gate on
    /// both families is `v4,v6` (the sessions table's `gate`): the sandbox's resolv.conf lists both, and glibc asks
    /// the second after a SERVFAIL from the first.
    package var gateAddress: String?

    /// Whether `address` is one of the gate's.
    package func isGate(_ address: String) -> Bool {
        Self.gateAddresses(gateAddress).contains(FlowObservation.canonicalAddress(address))
    }

    /// The addresses of a `gate` value (`v4`, `v4,v6`).
    package static func gateAddresses(_ gate: String?) -> [String] {
        gate.map { $0.split(separator: ",").map { FlowObservation.canonicalAddress(String($0)) } } ?? []
    }

    /// Default set used when a caller does not pass the profile's hide list: /etc/shadow and friends.
    package static let systemSecrets = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root/.ssh"]

    package init(secretPaths: [String], gateAddress: String? = nil) {
        self.secretPaths = secretPaths
        self.gateAddress = gateAddress
        compiled = secretPaths.map(SecretPattern.init)
        var filter = [UInt64](repeating: 0, count: 256)
        for pattern in compiled {
            guard let first = pattern.components.first, let lead = first.first else { continue }
            let bit = Self.filterBit(lead: lead, count: first.count)
            filter[bit >> 6] |= 1 << UInt64(bit & 63)
        }
        firstComponents = filter
    }

    private var compiled: [SecretPattern]
    /// A bit per (first byte, length) of the patterns' first components: every pattern's first component
    /// must equal some component of a path it matches, so a path none of whose components hits a bit
    /// cannot match (one pass over the path, no allocation: the common case for every file event).
    private var firstComponents: [UInt64]

    private static func filterBit(lead: UInt8, count: Int) -> Int { Int(lead) << 6 | min(count, 63) }

    /// True when some component of the path has the first byte and length of some pattern's first component.
    private func mayMatch(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { path in
            var start = 0
            let end = path.count
            while start < end {
                if path[start] == UInt8(ascii: "/") { start += 1; continue }
                var stop = start + 1
                while stop < end && path[stop] != UInt8(ascii: "/") { stop += 1 }
                let bit = Self.filterBit(lead: path[start], count: stop - start)
                if firstComponents[bit >> 6] & (1 << UInt64(bit & 63)) != 0 { return true }
                start = stop
            }
            return false
        }
    }

    /// The pattern a path matches, or nil. Called for every file event, so the common case (no component of
    /// the path can be a pattern's first component) is one pass over the path without allocation.
    package func secret(_ path: RawText) -> String? {
        let bytes = path.bytes
        guard mayMatch(bytes) else { return nil }
        let components = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        for pattern in compiled where pattern.matches(absolute: bytes.first == UInt8(ascii: "/"), components) {
            return pattern.source
        }
        return nil
    }

    /// Known DNS-over-HTTPS / DNS-over-TLS endpoints (names and anycast addresses): CagentCore's KnownDoH.
    package static var dohNames: Set<String> { KnownDoH.names }
    package static var dohAddresses: Set<String> { KnownDoH.addresses }

    package func isDoHName(_ name: RawText) -> Bool {
        Self.dohNames.contains(Self.normalizedName(name))
    }

    /// DoH runs on 443, DoT on 853.
    package func isDoHFlow(address: String, port: UInt16) -> Bool {
        (port == 443 || port == 853) && Self.dohAddresses.contains(address.lowercased())
    }

    /// Lower-cased, without a trailing dot.
    package static func normalizedName(_ name: RawText) -> String {
        var text = name.lossyString.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// For a name that looks like DNS exfiltration, the parent domain under which the suspicious labels
    /// sit (the finding's subject, so a flood of unique names stays one finding); else nil.
    package static func exfiltrationParent(_ name: RawText) -> String? {
        let text = normalizedName(name)
        if text.hasSuffix(".arpa") { return nil }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return nil }
        var lastSuspicious = -1
        // The last two labels are the registrable part; only labels below it carry data.
        for (index, label) in labels.dropLast(2).enumerated() where looksEncoded(label) { lastSuspicious = index }
        if lastSuspicious < 0 && text.utf8.count <= 180 { return nil }
        let parent = labels[(lastSuspicious + 1)...].joined(separator: ".")
        return parent.isEmpty ? text : parent
    }

    /// A label of 40+ characters, or of 16+ with a base32/base64/hex-like high entropy (EncodedLabel).
    static func looksEncoded(_ label: Substring) -> Bool { EncodedLabel.looksEncoded(label) }

    package static func isLoopbackOrUnspecified(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1" || address == "0.0.0.0" || address == "::"
            || address.hasPrefix("::ffff:127.")
    }
}

struct SecretPattern: Sendable {
    let source: String
    let absolute: Bool
    let components: [[UInt8]]

    init(_ source: String) {
        self.source = source
        var text = Substring(source)
        if text.hasPrefix("~/") { absolute = false; text = text.dropFirst(2) } else { absolute = text.hasPrefix("/") }
        components = text.split(separator: "/").map { Array($0.utf8) }
    }

    func matches(absolute pathIsAbsolute: Bool, _ path: [ArraySlice<UInt8>]) -> Bool {
        guard !components.isEmpty, path.count >= components.count else { return false }
        if absolute {
            guard pathIsAbsolute else { return false }
            return zip(components, path).allSatisfy { $0.elementsEqual($1) }
        }
        // Home-relative: the sequence may start at any component (…/home/u/.ssh/…, /root/.ssh, a shadow home).
        for start in 0...(path.count - components.count) {
            var equal = true
            for (offset, component) in components.enumerated() where !component.elementsEqual(path[start + offset]) {
                equal = false; break
            }
            if equal { return true }
        }
        return false
    }
}
