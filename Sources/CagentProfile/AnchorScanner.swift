/// Finds the first YAML anchor (`&name`) or alias (`*name`) in a text, before the text is composed.
///
/// Profiles use neither, and they must be refused before composing: the composer shares aliased nodes, but
/// hashing a mapping key built from nested aliases visits every shared copy ("billion laughs"), so a
/// 300-byte file could keep cagent busy for hours. This is a small lexer, not a YAML parser: it skips
/// comments, quoted strings and block scalars, and looks for `&`/`*` where a YAML node can start.
enum AnchorScanner {
    static func firstAnchorOrAlias(_ text: String) -> (line: Int, column: Int)? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        var inDouble = false, inSingle = false
        var blockParentIndent: Int?
        for (number, line) in lines.enumerated() {
            let indent = line.prefix(while: { $0 == " " }).count
            if let parent = blockParentIndent {
                if indent == line.count || indent > parent { continue }
                blockParentIndent = nil
            }
            var index = 0
            var nodeCanStart = !(inDouble || inSingle)
            scan: while index < line.count {
                let c = line[index]
                let next: Unicode.Scalar? = index + 1 < line.count ? line[index + 1] : nil
                if inDouble {
                    if c == "\\" { index += 2; continue }
                    if c == "\"" { inDouble = false; nodeCanStart = false }
                    index += 1
                    continue
                }
                if inSingle {
                    if c == "'" {
                        if next == "'" { index += 2; continue }
                        inSingle = false; nodeCanStart = false
                    }
                    index += 1
                    continue
                }
                if c == " " || c == "\t" || c == "\r" { index += 1; continue }
                if c == "#" && (index == 0 || line[index - 1] == " " || line[index - 1] == "\t") { break scan }
                if nodeCanStart {
                    switch c {
                    case "&", "*": return (number + 1, index + 1)
                    case "\"": inDouble = true; index += 1; continue
                    case "'": inSingle = true; index += 1; continue
                    case "!":
                        // A tag; the node follows it.
                        while index < line.count && line[index] != " " { index += 1 }
                        continue
                    case "|", ">":
                        var rest = index + 1
                        while rest < line.count, "+-0123456789".unicodeScalars.contains(line[rest]) { rest += 1 }
                        let tail = line[rest...].drop(while: { $0 == " " || $0 == "\t" })
                        if tail.isEmpty || tail.first == "#" { blockParentIndent = indent; break scan }
                    default: break
                    }
                }
                switch c {
                case "[", "{", ",":
                    nodeCanStart = true
                case "-", "?":
                    nodeCanStart = true
                case ":" where next == nil || next == " " || next == "\t" || next == "," || next == "]" || next == "}":
                    nodeCanStart = true
                case "]", "}":
                    nodeCanStart = false
                default:
                    nodeCanStart = false
                }
                index += 1
            }
        }
        return nil
    }
}
