import Testing
@testable import CagentCore

@Suite struct TerminalEscapeTests {
    @Test func plainTextIsUnchanged() {
        #expect(TerminalEscape.escape("api.anthropic.com/v1 ü") == "api.anthropic.com/v1 ü")
    }

    @Test func controlCharactersAreVisible() {
        #expect(TerminalEscape.escape("a\u{1B}[2Jb\u{07}\u{7F}") == "a\\x1B[2Jb\\x07\\x7F")
        #expect(TerminalEscape.escape("line\nnext\ttab\\") == "line\\nnext\\ttab\\\\")
    }

    @Test func c1AndBidiOverridesAreVisible() {
        #expect(TerminalEscape.escape("x\u{9B}31m") == "x\\u{9B}31m")
        #expect(TerminalEscape.escape("evil\u{202E}txt.exe") == "evil\\u{202E}txt.exe")
        #expect(TerminalEscape.escape("\u{2066}a\u{2069}") == "\\u{2066}a\\u{2069}")
    }

    @Test func invalidUTF8IsShownByteByByte() {
        let bytes: [UInt8] = [0x61, 0xFF, 0xC3, 0x28, 0xE2, 0x82, 0xAC, 0xF0]
        #expect(TerminalEscape.escape(bytes: bytes) == "a\\xFF\\xC3(€\\xF0")
    }
}

@Suite struct JSONTextTests {
    @Test func quotesAndControlCharacters() {
        #expect(JSONText.quote("a\"b\\c\n\u{01}") == "\"a\\\"b\\\\c\\n\\u0001\"")
    }
}
