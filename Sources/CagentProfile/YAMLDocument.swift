import CLibYAML
#if canImport(Glibc)
import Glibc
#endif

/// A place in YAML text: 1-based line and column (columns count Unicode scalars, as libyaml does).
struct YAMLMark: Sendable, Equatable, CustomStringConvertible {
    var line: Int
    var column: Int

    init(line: Int, column: Int) { self.line = line; self.column = column }

    /// libyaml's marks are 0-based.
    init(_ mark: yaml_mark_t) { self.init(line: Int(mark.line) + 1, column: Int(mark.column) + 1) }

    var description: String { "\(line):\(column)" }
}

/// One node of a composed YAML document, with what the profile parser needs to check it: where it starts,
/// how a scalar was written (style, tag), and any anchor. Aliases are kept as aliases, never resolved.
enum YAMLNode: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)
    case alias(Alias)

    struct Scalar: Sendable {
        enum Style: Sendable { case any, plain, singleQuoted, doubleQuoted, literal, folded }
        var string: String
        /// The tag as libyaml resolved it (`!!str` is `tag:yaml.org,2002:str`); nil when none was written.
        var tag: String?
        var style: Style
        /// libyaml's implicit flags: the tag may be omitted for the plain style (plain), for any other (quoted).
        var plainImplicit: Bool
        var quotedImplicit: Bool
        var anchor: String?
        var mark: YAMLMark
    }

    struct Mapping: Sendable {
        var pairs: [(key: YAMLNode, value: YAMLNode)]
        /// nil when none was written.
        var tag: String?
        var anchor: String?
        var mark: YAMLMark
    }

    struct Sequence: Sendable {
        var items: [YAMLNode]
        var tag: String?
        var anchor: String?
        var mark: YAMLMark
    }

    struct Alias: Sendable {
        var anchor: String
        var mark: YAMLMark
    }

    /// Where the node starts (its anchor or tag, when it has one).
    var mark: YAMLMark {
        switch self {
        case .scalar(let node): node.mark
        case .mapping(let node): node.mark
        case .sequence(let node): node.mark
        case .alias(let node): node.mark
        }
    }

    /// The anchor a node defines, or the one an alias refers to.
    var anchor: String? {
        switch self {
        case .scalar(let node): node.anchor
        case .mapping(let node): node.anchor
        case .sequence(let node): node.anchor
        case .alias(let node): node.anchor
        }
    }

    var scalar: Scalar? {
        if case .scalar(let node) = self { return node }
        return nil
    }
}

/// Why a text is not one YAML document.
enum YAMLError: Error, Sendable, Equatable {
    /// libyaml's scanner or parser: the problem, where it is, and what it was reading (e.g. "while parsing a
    /// flow sequence") with where that started.
    case syntax(problem: String, mark: YAMLMark, context: String?, contextMark: YAMLMark?)
    /// libyaml's reader: bytes that are not UTF-8, or characters YAML does not allow (control characters).
    case unreadable(problem: String, mark: YAMLMark, value: Int?)
    /// The same scalar key twice in one mapping (sorted names; the mark of the first one's first use).
    case duplicateKeys([String], mark: YAMLMark)
    /// Collections nested deeper than the limit.
    case tooDeep(limit: Int, mark: YAMLMark)
    /// A second document (`---`) after the first.
    case secondDocument(mark: YAMLMark)
    /// libyaml could not allocate memory.
    case memory
}

/// Composes YAML text into `YAMLNode`s with libyaml's event parser: a small composer that keeps what
/// libyaml reports (marks, styles, tags, anchors) and resolves nothing (no aliases, no tag resolution).
enum YAMLDocument {
    /// Collections deeper than this are refused (a profile needs three levels).
    static let maximumDepth = 64

    /// The tag `!!str` expands to.
    static let stringTag = "tag:yaml.org,2002:str"

    /// The single document of `text`, or nil when the text holds none (empty, or only comments).
    static func compose(_ text: String, maximumDepth: Int = maximumDepth) throws(YAMLError) -> YAMLNode? {
        try compose(bytes: Array(text.utf8), maximumDepth: maximumDepth)
    }

    /// The same for raw bytes (libyaml checks that they are UTF-8; a UTF-8 byte-order mark is skipped).
    static func compose(bytes: [UInt8], maximumDepth: Int = maximumDepth) throws(YAMLError) -> YAMLNode? {
        // The parser and its event stay at one address for their whole life (libyaml keeps pointers into
        // the input); both are freed on every path.
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else { throw .memory }
        defer { yaml_parser_delete(parser) }
        let event = UnsafeMutablePointer<yaml_event_t>.allocate(capacity: 1)
        defer { event.deallocate() }

        let result: Result<YAMLNode?, YAMLError> = bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
            var composer = Composer(parser: parser, event: event, bytes: buffer, maximumDepth: maximumDepth)
            do throws(YAMLError) {
                return .success(try composer.document())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// One libyaml event, copied out of libyaml's memory before the event is deleted.
private enum Event {
    case streamStart, streamEnd
    case documentStart(YAMLMark), documentEnd
    case alias(YAMLNode.Alias)
    case scalar(YAMLNode.Scalar)
    case sequenceStart(tag: String?, anchor: String?, mark: YAMLMark), sequenceEnd
    case mappingStart(tag: String?, anchor: String?, mark: YAMLMark), mappingEnd
}

private struct Composer {
    let parser: UnsafeMutablePointer<yaml_parser_t>
    let event: UnsafeMutablePointer<yaml_event_t>
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int

    mutating func document() throws(YAMLError) -> YAMLNode? {
        guard case .streamStart = try next() else { throw unexpected("the stream start") }
        let first = try next()
        if case .streamEnd = first { return nil }
        guard case .documentStart = first else { throw unexpected("a document") }
        let root = try node(try next(), depth: 1)
        guard case .documentEnd = try next() else { throw unexpected("the document end") }
        switch try next() {
        case .streamEnd: return root
        case .documentStart(let mark): throw .secondDocument(mark: mark)
        default: throw unexpected("the stream end")
        }
    }

    mutating func node(_ event: Event, depth: Int) throws(YAMLError) -> YAMLNode {
        switch event {
        case .scalar(let scalar):
            return .scalar(scalar)
        case .alias(let alias):
            return .alias(alias)
        case .sequenceStart(let tag, let anchor, let mark):
            guard depth <= maximumDepth else { throw .tooDeep(limit: maximumDepth, mark: mark) }
            var items: [YAMLNode] = []
            while true {
                let item = try next()
                if case .sequenceEnd = item { break }
                items.append(try node(item, depth: depth + 1))
            }
            return .sequence(YAMLNode.Sequence(items: items, tag: tag, anchor: anchor, mark: mark))
        case .mappingStart(let tag, let anchor, let mark):
            guard depth <= maximumDepth else { throw .tooDeep(limit: maximumDepth, mark: mark) }
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var first: [String: YAMLMark] = [:]
            var duplicates: Set<String> = []
            while true {
                let keyEvent = try next()
                if case .mappingEnd = keyEvent { break }
                let key = try node(keyEvent, depth: depth + 1)
                let value = try node(try next(), depth: depth + 1)
                if case .scalar(let scalar) = key {
                    if first[scalar.string] == nil { first[scalar.string] = scalar.mark } else { duplicates.insert(scalar.string) }
                }
                pairs.append((key, value))
            }
            if !duplicates.isEmpty {
                let names = duplicates.sorted()
                throw .duplicateKeys(names, mark: first[names[0]]!)
            }
            return .mapping(YAMLNode.Mapping(pairs: pairs, tag: tag, anchor: anchor, mark: mark))
        default:
            // libyaml emits only nodes where a node is expected.
            throw unexpected("a node")
        }
    }

    func unexpected(_ expected: String) -> YAMLError {
        .syntax(problem: "libyaml reported an unexpected event where \(expected) belongs",
                mark: YAMLMark(parser.pointee.mark), context: nil, contextMark: nil)
    }

    /// The next event, copied; the libyaml event is deleted before this returns.
    mutating func next() throws(YAMLError) -> Event {
        guard yaml_parser_parse(parser, event) == 1 else { throw failure() }
        defer { yaml_event_delete(event) }
        let e = event.pointee
        let mark = YAMLMark(e.start_mark)
        switch e.type {
        case YAML_STREAM_START_EVENT: return .streamStart
        case YAML_STREAM_END_EVENT: return .streamEnd
        case YAML_DOCUMENT_START_EVENT: return .documentStart(mark)
        case YAML_DOCUMENT_END_EVENT: return .documentEnd
        case YAML_ALIAS_EVENT:
            return .alias(YAMLNode.Alias(anchor: Self.string(e.data.alias.anchor) ?? "", mark: mark))
        case YAML_SCALAR_EVENT:
            let data = e.data.scalar
            let value = data.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: data.length), as: UTF8.self) } ?? ""
            let style: YAMLNode.Scalar.Style = switch data.style {
            case YAML_PLAIN_SCALAR_STYLE: .plain
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: .literal
            case YAML_FOLDED_SCALAR_STYLE: .folded
            default: .any
            }
            return .scalar(YAMLNode.Scalar(string: value, tag: Self.string(data.tag), style: style,
                                           plainImplicit: data.plain_implicit != 0, quotedImplicit: data.quoted_implicit != 0,
                                           anchor: Self.string(data.anchor), mark: mark))
        case YAML_SEQUENCE_START_EVENT:
            let data = e.data.sequence_start
            return .sequenceStart(tag: data.implicit != 0 ? nil : Self.string(data.tag), anchor: Self.string(data.anchor), mark: mark)
        case YAML_SEQUENCE_END_EVENT: return .sequenceEnd
        case YAML_MAPPING_START_EVENT:
            let data = e.data.mapping_start
            return .mappingStart(tag: data.implicit != 0 ? nil : Self.string(data.tag), anchor: Self.string(data.anchor), mark: mark)
        case YAML_MAPPING_END_EVENT: return .mappingEnd
        default:
            throw unexpected("an event")
        }
    }

    /// libyaml's error, from the parser's fields.
    func failure() -> YAMLError {
        let p = parser.pointee
        let problem = Self.string(p.problem) ?? "unknown problem"
        switch p.error {
        case YAML_MEMORY_ERROR:
            return .memory
        case YAML_READER_ERROR:
            // The reader names a byte offset, not a mark; the value is the offending byte or character.
            let value = p.problem_value >= 0 ? Int(p.problem_value) : nil
            return .unreadable(problem: problem, mark: Self.mark(ofByte: Int(p.problem_offset), in: bytes), value: value)
        default:
            let context = Self.string(p.context)
            return .syntax(problem: problem, mark: YAMLMark(p.problem_mark), context: context,
                           contextMark: context == nil ? nil : YAMLMark(p.context_mark))
        }
    }

    static func string(_ pointer: UnsafePointer<CChar>?) -> String? {
        pointer.map { String(decoding: UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0)), as: UTF8.self) }
    }

    static func string(_ pointer: UnsafeMutablePointer<UInt8>?) -> String? {
        pointer.map { String(decoding: UnsafeBufferPointer(start: $0, count: strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))), as: UTF8.self) }
    }

    /// The 1-based line and column (in Unicode scalars) of a byte offset; a UTF-8 byte-order mark at the
    /// start takes no column, as in libyaml's own marks.
    static func mark(ofByte offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> YAMLMark {
        var line = 1, column = 1
        var index = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while index < min(offset, bytes.count) {
            let byte = bytes[index]
            let lineBreak = byte == 0x0A || (byte == 0x0D && (index + 1 >= bytes.count || bytes[index + 1] != 0x0A))
            if lineBreak { line += 1; column = 1 } else if byte & 0xC0 != 0x80 && byte != 0x0D { column += 1 }
            index += 1
        }
        return YAMLMark(line: line, column: column)
    }
}
