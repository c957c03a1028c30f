import Foundation

/// What of cagent's nftables remains in a namespace, read from its `nft list ruleset`: the `inet cagent` table is
/// kept between sessions with its base chains and no session's part (docs/network.md "The kept table"), so a
/// leftover is any other table, or a line of that table naming a session (`cgs<id>`: its chains, sets, map
/// entries). The permanent part's own `"cgs*"` patterns are not a session's.
package enum NftLeftovers {
    package static func find(ruleset: String) -> [String] {
        var found: [String] = []
        var inKeptTable = false
        for raw in ruleset.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("table ") {
                inKeptTable = line == "table inet cagent {"
                if !inKeptTable { found.append(line) }
                continue
            }
            if inKeptTable && line.replacingOccurrences(of: "\"cgs*\"", with: "").contains("cgs") { found.append(line) }
        }
        return found
    }
}
