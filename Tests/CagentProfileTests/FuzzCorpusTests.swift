import CagentCore
import Foundation
import Testing
@testable import CagentProfile

/// The `profile` fuzz target's seeds and every former finding (Tests/Fuzz/profile, scripts/fuzz.sh): each file
/// parses without a trap, and every diagnostic it produces is safe for a terminal.
@Suite struct FuzzCorpusTests {
    static let directory: String = {
        var path = #filePath
        for _ in 0..<2 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Fuzz/profile"
    }()

    static func dangerous(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return (value < 0x20 && value != 0x0A) || value == 0x7F || (0x80..<0xA0).contains(value)
            || (0x200B...0x200F).contains(value) || (0x202A...0x202E).contains(value) || (0x2060...0x2069).contains(value)
            || value == 0xFEFF || value == 0x061C
    }

    @Test func profileCorpusReplays() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory)
        #expect(names.count >= 5, "the corpus is there (control): \(names)")
        var diagnosed = 0
        for name in names {
            let bytes = try #require(FileManager.default.contents(atPath: Self.directory + "/" + name))
            let parsed = ProfileParser.parse(text: String(decoding: bytes, as: UTF8.self), file: "x\u{1B}[2J.yaml")
            diagnosed += parsed.diagnostics.count
            for diagnostic in parsed.diagnostics {
                #expect(!diagnostic.description.unicodeScalars.contains(where: Self.dangerous), "\(name): \(diagnostic.description.debugDescription)")
            }
        }
        #expect(diagnosed > 0, "the hostile seed produced no diagnostic: nothing was checked")
    }
}
