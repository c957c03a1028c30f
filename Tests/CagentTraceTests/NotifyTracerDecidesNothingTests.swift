import Foundation
import Testing

/// H20 (seccomp-notify TOCTOU): a tracer that decided from pointer arguments could be raced — the agent rewrites
/// the path between the tracer's read and the kernel's. cagent's notify tracer only records: every notification is
/// answered CONTINUE, unconditionally, and the C side has no other answer. This audits the code that answers (the
/// behaviour — every syscall continued, the workload runs to its end — is `BackendTests/seccomp`). A change that
/// adds a deny, or makes the answer depend on what `handle` read, fails here.
@Suite struct NotifyTracerDecidesNothingTests {
    static let sources: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Sources"
    }()

    func swiftFiles(_ directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.map { directory + "/" + $0 }
    }

    @Test func h20TheNotifyTracerOnlyContinues() throws {
        let c = try String(contentsOfFile: Self.sources + "/CShim/cg_seccomp_notify.c", encoding: .utf8)
        // The one place a response is sent, and it is CONTINUE with no error or value.
        #expect(c.components(separatedBy: "SECCOMP_IOCTL_NOTIF_SEND").count - 1 == 1, "responses sent from more than one place")
        #expect(c.contains("resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;"))
        #expect(!c.contains("resp.error") && !c.contains("resp.val"), "a response with an error or value exists")

        // Swift: cg_notify_continue is called once, right after handle(note), with nothing deciding in between.
        let files = swiftFiles(Self.sources)
        #expect(files.count > 50, "the audit found the sources (control): \(files.count)")
        var calls: [(file: String, previous: String)] = []
        for file in files {
            let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() where line.contains("cg_notify_continue(") {
                calls.append((file, index > 0 ? lines[index - 1].trimmingCharacters(in: .whitespaces) : ""))
            }
        }
        #expect(calls.count == 1, "cg_notify_continue called in \(calls.count) places: \(calls.map(\.file))")
        #expect(calls.first?.file.hasSuffix("CagentTrace/SeccompNotifyTracer.swift") == true)
        #expect(calls.first?.previous == "handle(note)", "the answer must not depend on what was read: \(calls.first?.previous ?? "none")")
    }
}
