import Foundation
import Testing

/// Compares text with a golden file in Tests/NetworkTests/Golden; CAGENT_UPDATE_GOLDEN=1 rewrites the file.
func expectGolden(_ text: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Golden")
    let file = directory.appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["CAGENT_UPDATE_GOLDEN"] == "1" {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOf: file, encoding: .utf8)
    #expect(text == expected, "differs from Golden/\(name) (CAGENT_UPDATE_GOLDEN=1 rewrites it)", sourceLocation: sourceLocation)
}
