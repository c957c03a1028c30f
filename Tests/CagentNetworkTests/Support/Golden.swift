import Foundation
import Testing

/// Compares text with a golden file in Tests/CagentNetworkTests/Golden; CAGENT_UPDATE_GOLDEN=1 rewrites the file.
/// A rewrite that changed the file fails the test (review the diff, rerun without it): update mode never
/// passes over a difference. Under CI (CI=true) update mode is refused: the run compares.
func expectGolden(_ text: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Golden")
    let file = directory.appendingPathComponent(name)
    let previous = try? String(contentsOf: file, encoding: .utf8)
    if ProcessInfo.processInfo.environment["CAGENT_UPDATE_GOLDEN"] == "1" {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("CAGENT_UPDATE_GOLDEN=1 is refused under CI: comparing instead", sourceLocation: sourceLocation)
        } else {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
            #expect(previous == text, "rewrote Golden/\(name): review the diff, then rerun without CAGENT_UPDATE_GOLDEN",
                    sourceLocation: sourceLocation)
            return
        }
    }
    let expected = try #require(previous, "no Golden/\(name) (CAGENT_UPDATE_GOLDEN=1 writes it)", sourceLocation: sourceLocation)
    #expect(text == expected, "differs from Golden/\(name) (CAGENT_UPDATE_GOLDEN=1 rewrites it)", sourceLocation: sourceLocation)
}
