import Foundation
import Testing
@testable import CagentProfile

/// Hostile or broken input never crashes the loader: mutated profiles get diagnostics, never a trap.
@Suite("Mutated profiles")
struct MutationTests {
    /// A small deterministic generator, so a failure reproduces.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("thousands of mutated profiles parse to a layer or to diagnostics with positions inside the file")
    func mutations() throws {
        let seeds = try ["claude-code", "base", "aider"].map {
            try String(contentsOfFile: repositoryProfiles() + "/\($0).yaml", encoding: .utf8)
        } + [ResolverTests.everyKey]
        let alphabet = Array(" \n\t:-[]{},#!&*'\"\\|>?%@`~./0123456789abcxyzé\u{202E}".unicodeScalars)
        var random = SplitMix(state: 42)
        var parsed = 0, rejected = 0
        for round in 0..<3000 {
            var scalars = Array(seeds[round % seeds.count].unicodeScalars)
            for _ in 0..<Int.random(in: 1...6, using: &random) where !scalars.isEmpty {
                let at = Int.random(in: 0..<scalars.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: scalars[at] = alphabet.randomElement(using: &random)!
                case 1: scalars.insert(alphabet.randomElement(using: &random)!, at: at)
                case 2: scalars.remove(at: at)
                default:
                    let end = min(scalars.count, at + Int.random(in: 1...40, using: &random))
                    scalars.insert(contentsOf: scalars[at..<end], at: Int.random(in: 0...scalars.count, using: &random))
                }
            }
            let text = String(String.UnicodeScalarView(scalars))
            let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
            let (layer, diagnostics) = ProfileParser.parse(text: text, file: "m.yaml")
            if layer == nil {
                rejected += 1
                #expect(diagnostics.contains { $0.severity == .error })
            } else {
                parsed += 1
            }
            for diagnostic in diagnostics {
                #expect(diagnostic.location.line >= 1 && diagnostic.location.line <= lineCount + 1,
                        "round \(round): \(diagnostic)")
                #expect(!diagnostic.description.unicodeScalars.contains { $0.value == 0x202E || $0.value == 0x1B })
            }
            if let layer {
                // Whatever parses renders to a profile that reads back the same.
                let merged = ProfileMerger.merge([(ProfileSource(path: "/m.yaml", display: "m.yaml", origin: .other,
                                                                 sha256: "", text: text), layer)])
                let (again, problems) = ProfileParser.parse(text: ProfileRenderer.render(merged), file: "r.yaml")
                #expect(problems.filter { $0.severity == .error }.isEmpty, "round \(round): \(problems)")
                if let again {
                    var expected = merged.profile
                    expected.extends = []
                    #expect(ProfileMerger.merge([(merged.layers[0], again)]).profile == expected, "round \(round)")
                }
            }
        }
        #expect(parsed > 100 && rejected > 100, "parsed \(parsed), rejected \(rejected)")
    }
}
