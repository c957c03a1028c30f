import CagentCore
import Testing

/// One session-id scheme for every session: 12 lowercase hex digits, fresh each time.
@Suite struct SessionIDTests {
    @Test func twelveHexDigitsAndFresh() {
        let ids = (0..<200).map { _ in SessionID.new() }
        for id in ids {
            #expect(id.utf8.count == SessionID.length && SessionID.length == 12, "\(id)")
            #expect(id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }, "\(id)")
        }
        #expect(Set(ids).count == ids.count)
    }
}
