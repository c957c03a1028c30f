/// A profile domain pattern, compared on wire labels, case-insensitively, on label boundaries:
/// `example.test` (exactly that name), `*.example.test` (one more label), `**.example.test` (one or
/// more labels). `evilexample.test` never matches `*.example.test`: the suffix is whole labels.
package struct DomainPattern: Hashable, Sendable, CustomStringConvertible {
    package enum Depth: Hashable, Sendable { case exact, oneLabel, anyDepth }
    package let depth: Depth
    /// Lowercased labels of the suffix.
    package let suffix: [[UInt8]]

    /// Nil for text that is not a pattern: empty, a wildcard anywhere but the first label, a label
    /// with a NUL byte, an empty or >63-byte label.
    package init?(_ text: String) {
        var rest = text
        if rest.hasPrefix("**.") { depth = .anyDepth; rest.removeFirst(3) }
        else if rest.hasPrefix("*.") { depth = .oneLabel; rest.removeFirst(2) }
        else { depth = .exact }
        guard !rest.isEmpty, !rest.contains("*"), !rest.utf8.contains(0),
              let name = DNSName(rest), !name.labels.isEmpty else { return nil }
        suffix = name.lowercased().labels
    }

    package func matches(_ name: DNSName) -> Bool {
        let labels = name.labels
        let extra = labels.count - suffix.count
        switch depth {
        case .exact: guard extra == 0 else { return false }
        case .oneLabel: guard extra == 1 else { return false }
        case .anyDepth: guard extra >= 1 else { return false }
        }
        for (index, label) in suffix.enumerated() where !DNSName.labelEquals(labels[extra + index], label) {
            return false
        }
        return true
    }

    package var description: String {
        let base = DNSName(labels: suffix).display
        switch depth {
        case .exact: return base
        case .oneLabel: return "*." + base
        case .anyDepth: return "**." + base
        }
    }
}
