import CagentCore
import CagentProfile

/// What the exported policy is called and which pods it selects. The policy's name and selector are the
/// cluster's vocabulary, not the profile's: the CLI takes them as options and checks them here, so a bad
/// label fails at export time instead of at `kubectl apply`.
package struct ExportTarget: Sendable, Equatable {
    package var name: String
    package var namespace: String?
    /// The pod labels the policy applies to, sorted by key.
    package var selector: [(key: String, value: String)]
    /// Where the profile came from, written into the annotations (`claude-code`, `./agent.yaml`).
    package var profileReference: String

    package static func == (lhs: ExportTarget, rhs: ExportTarget) -> Bool {
        lhs.name == rhs.name && lhs.namespace == rhs.namespace && lhs.profileReference == rhs.profileReference
            && lhs.selector.map { "\($0.key)=\($0.value)" } == rhs.selector.map { "\($0.key)=\($0.value)" }
    }

    /// - Parameters:
    ///   - selectors: `key=value` strings; none selects `app=<agent>`.
    ///   - name: the policy's name; nil derives `cagent-<agent>`.
    package init(profile: Profile, reference: String, name: String? = nil, namespace: String? = nil,
                selectors: [String] = []) throws(CagentError) {
        let agent = ExportTarget.dnsLabel(from: profile.agent ?? ExportTarget.baseName(reference))
        if let name {
            guard ExportTarget.isDNSSubdomain(name) else {
                throw CagentError(stage: "export", "--name '\(TerminalEscape.escape(name))' is not a valid Kubernetes object name",
                                  hint: "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters")
            }
            self.name = name
        } else {
            self.name = "cagent-" + agent
        }
        if let namespace {
            guard ExportTarget.isDNSLabel(namespace) else {
                throw CagentError(stage: "export", "--namespace '\(TerminalEscape.escape(namespace))' is not a valid namespace name",
                                  hint: "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters")
            }
        }
        self.namespace = namespace
        var labels: [String: String] = [:]
        for selector in selectors {
            let parts = selector.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, ExportTarget.isLabelKey(parts[0]), ExportTarget.isLabelValue(parts[1]) else {
                throw CagentError(stage: "export", "--selector '\(TerminalEscape.escape(selector))' is not a label key=value",
                                  hint: "e.g. --selector app=claude-code; a key is [prefix/]name, a value at most 63 letters, digits, '-', '_', '.'")
            }
            if let earlier = labels[parts[0]], earlier != parts[1] {
                throw CagentError(stage: "export", "--selector gives '\(TerminalEscape.escape(parts[0]))' two values",
                                  hint: "a pod has one value per label key; give each key once")
            }
            labels[parts[0]] = parts[1]
        }
        if labels.isEmpty { labels["app"] = agent }
        self.selector = labels.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
        self.profileReference = reference
    }

    static func baseName(_ reference: String) -> String {
        var base = String(reference.split(separator: "/").last ?? Substring(reference))
        for suffix in [".yaml", ".yml"] where base.hasSuffix(suffix) { base.removeLast(suffix.count) }
        return base
    }

    /// A usable DNS label from free text: lowercase, anything else becomes '-', trimmed, at most 55
    /// characters (so that "cagent-" + it stays a label), "agent" when nothing is left.
    static func dnsLabel(from text: String) -> String {
        var label = String(text.lowercased().unicodeScalars.map { scalar -> Character in
            (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") ? Character(scalar) : "-"
        })
        label = String(label.prefix(55))
        while label.hasPrefix("-") { label.removeFirst() }
        while label.hasSuffix("-") { label.removeLast() }
        return label.isEmpty ? "agent" : label
    }

    static func isDNSLabel(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= 63 else { return false }
        let alnum: (Unicode.Scalar) -> Bool = { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") }
        return alnum(scalars.first!) && alnum(scalars.last!) && scalars.allSatisfy { alnum($0) || $0 == "-" }
    }

    static func isDNSSubdomain(_ text: String) -> Bool {
        text.utf8.count <= 253 && !text.isEmpty
            && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// Kubernetes' label name and value syntax: at most 63 of [A-Za-z0-9-_.], starting and ending with an
    /// alphanumeric (a value may also be empty).
    static func isLabelName(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= 63 else { return false }
        let alnum: (Unicode.Scalar) -> Bool = {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9")
        }
        return alnum(scalars.first!) && alnum(scalars.last!)
            && scalars.allSatisfy { alnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    static func isLabelValue(_ text: String) -> Bool { text.isEmpty || isLabelName(text) }

    static func isLabelKey(_ text: String) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 { return isDNSSubdomain(parts[0]) && isLabelName(parts[1]) }
        return isLabelName(text)
    }
}
