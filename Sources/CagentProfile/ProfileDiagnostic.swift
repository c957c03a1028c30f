import CagentCore

/// A place in a profile file: what every error names, and what `show --resolved` cites as provenance.
package struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The file as shown to the user (relative to the current directory when inside it).
    package var file: String
    /// 1-based line and column (columns count Unicode scalars, as libyaml does).
    package var line: Int
    package var column: Int

    package init(file: String, line: Int, column: Int) {
        self.file = file; self.line = line; self.column = column
    }

    /// A reference typed on the command line (no file to point into).
    package static let commandLine = SourceLocation(file: "command line", line: 0, column: 0)

    package var description: String { line == 0 ? file : "\(file):\(line):\(column)" }
}

/// One problem found in a profile: where, what was expected, and what to do.
package struct ProfileDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Severity: String, Sendable { case error, warning }
    package var location: SourceLocation
    package var severity: Severity
    /// Already escaped for a terminal: values from the file pass through `ProfileText.quote`.
    package var message: String
    package var hint: String?

    /// Message and hint are made safe for a terminal here, whatever they quote from the file.
    package init(_ location: SourceLocation, _ message: String, hint: String? = nil, severity: Severity = .error) {
        self.location = location; self.severity = severity
        self.message = ProfileText.sanitize(message)
        self.hint = hint.map(ProfileText.sanitize)
    }

    /// `file:line:column: error: message` (and the hint on the next line).
    package var description: String {
        var text = "\(TerminalEscape.escape(location.description)): \(severity.rawValue): \(message)"
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }
}

extension CagentError {
    /// The error `resolve` throws: stage "profile", every error with its file:line:column.
    package static func profile(_ diagnostics: [ProfileDiagnostic]) -> CagentError {
        let errors = diagnostics.filter { $0.severity == .error }
        let shown = errors.isEmpty ? diagnostics : errors
        let lines = shown.map { "\(TerminalEscape.escape($0.location.description)): \($0.message)" }
        let message = lines.count == 1 ? lines[0] : "\(lines.count) errors\n  " + lines.joined(separator: "\n  ")
        return CagentError(stage: "profile", message, hint: shown.first?.hint)
    }
}

/// Quoting of values that came from a file (maybe written by a hostile repository) for messages.
enum ProfileText {
    /// Shows control, bidi and invisible characters as escapes; leaves everything else (backslashes included)
    /// as it is, so text that was already escaped is not escaped twice.
    static func sanitize(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let dangerous = value < 0x20 || value == 0x7F || (0x80..<0xA0).contains(value) || (0x200B...0x200F).contains(value)
                || (0x202A...0x202E).contains(value) || (0x2060...0x2069).contains(value) || value == 0xFEFF || value == 0x061C
            if dangerous && scalar != "\n" {
                out += TerminalEscape.escape(String(Character(scalar)))
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func quote(_ text: String) -> String {
        let limited = text.unicodeScalars.count > 120 ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(117))) + "..." : text
        return "'" + TerminalEscape.escape(limited) + "'"
    }
}
