// libFuzzer target "profile": bytes as a profile file (YAML through libyaml and cagent's composer and schema
// walk). Parsing must never trap or hang, must decide the same twice, and every diagnostic a user sees must be
// safe for a terminal (no control, bidi or invisible character but the newline between message and hint),
// whatever the file holds. Built by scripts/fuzz.sh against the debug build's CagentCore.
import CagentCore

private func dangerous(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    return (value < 0x20 && value != 0x0A) || value == 0x7F || (0x80..<0xA0).contains(value)
        || (0x200B...0x200F).contains(value) || (0x202A...0x202E).contains(value) || (0x2060...0x2069).contains(value)
        || value == 0xFEFF || value == 0x061C
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProfile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let first = ProfileParser.parse(text: text, file: "fuzz\u{1B}[31m.yaml")
    let second = ProfileParser.parse(text: text, file: "fuzz\u{1B}[31m.yaml")
    precondition(first.layer == second.layer && first.diagnostics == second.diagnostics, "parsing is not deterministic")
    precondition((first.layer == nil) == first.diagnostics.contains { $0.severity == .error }, "a layer with errors")
    for diagnostic in first.diagnostics {
        precondition(!diagnostic.description.unicodeScalars.contains(where: dangerous),
                     "a diagnostic carries a raw control character: \(diagnostic.description.debugDescription)")
    }
    if !first.diagnostics.isEmpty {
        let error = CagentError.profile(first.diagnostics)
        precondition(!error.message.unicodeScalars.contains(where: dangerous) && !(error.hint ?? "").unicodeScalars.contains(where: dangerous),
                     "the profile error carries a raw control character")
    }
    return 0
}
