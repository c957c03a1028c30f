#if canImport(Glibc)
import Glibc
#endif

/// A DNS label that looks like data rather than a name: 40+ characters, 24+ hex digits (with letters), or
/// 16+ with base32/base64/hex-like entropy (the recorder's `dns-exfiltration` rule, docs/store.md). One rule for the proposer (never propose
/// such a name) and for `cagent enforce --ask` (never ask about one without saying so).
package enum EncodedLabel {
    package static func looksEncoded(_ label: Substring) -> Bool {
        let count = label.utf8.count
        if count >= 40 { return true }
        guard count >= 16 else { return false }
        var histogram: [UInt8: Int] = [:]
        var digits = 0
        for byte in label.utf8 {
            histogram[byte, default: 0] += 1
            if byte >= 0x30 && byte <= 0x39 { digits += 1 }
        }
        var entropy = 0.0
        for (_, n) in histogram {
            let p = Double(n) / Double(count)
            entropy -= p * log2(p)
        }
        // Hex of ASCII text (`736b2d64...`) stays near 3.0 bits (its nibbles cluster), under the entropy rule:
        // a long label of hex digits only, with digits and letters both, is data too.
        let hexOnly = label.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) }
        if hexOnly && count >= 24 && digits * 4 >= count && digits < count { return true }
        return entropy >= 3.6 || (entropy >= 3.2 && digits * 4 >= count && digits < count)
    }

    /// Whether any label of a dotted name looks encoded, or the name is longer than 180 bytes.
    package static func nameLooksEncoded(_ name: String) -> Bool {
        name.utf8.count > 180 || name.split(separator: ".").contains { looksEncoded($0) }
    }
}
