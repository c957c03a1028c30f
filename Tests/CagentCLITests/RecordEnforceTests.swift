@testable import CagentCLI
import CagentStore
import Foundation
import Testing

/// The enforce session record, as `cagent-full record-enforce` reads it: the front's shape is stored; anything
/// else is refused or skipped, never a crash (the file lies in the user's state directory).
@Suite struct RecordEnforceTests {
    static let good = """
    {"session":"S1","kind":"enforce","profile":"p.yaml","command":["/bin/sh","-c","x"],"started_at":10,"ended_at":20,\
    "status":0,"gate":"100.72.0.1","allowed":1,"refused":2,"blocked":1,"failed":1,"entries":[\
    {"verdict":"refused","subject":"api.allowed.test","proto":"dns","count":2,"first_seen":11,"last_seen":12,"allowable":true,\
    "name":"api.allowed.test","port":53,"reason":"not in profile"},\
    {"verdict":"failed","subject":"slow.allowed.test","proto":"dns","count":1,"first_seen":13,"last_seen":13,"port":53},\
    {"verdict":"blocked","subject":"203.0.113.66","proto":"tcp","count":1,"first_seen":14,"last_seen":14,"port":80,"allowable":true}]}
    """

    @Test func theFrontsShapeIsRead() throws {
        let record = try RecordEnforceCommand.parse(Data(Self.good.utf8))
        #expect(record.session.id == "S1" && record.session.kind == "enforce" && record.session.gate == "100.72.0.1")
        #expect(record.session.command.map(\.description) == ["/bin/sh", "-c", "x"])
        #expect(record.entries.map(\.verdict) == ["refused", "failed", "blocked"])
        #expect(record.entries[0].count == 2 && record.entries[0].allowable && record.entries[2].port == 80)
    }

    /// The enforced agent's command line is stored with learn's redaction: a token on it never reaches the store.
    @Test func theCommandsSecretsAreCut() throws {
        let text = Self.good.replacingOccurrences(of: #"["/bin/sh","-c","x"]"#,
                                                  with: #"["curl","-H","Authorization: Bearer sk-enforce-1","--token=t-2","https://u:p-3@h/"]"#)
        let record = try RecordEnforceCommand.parse(Data(text.utf8))
        let stored = record.session.command.map(\.description)
        #expect(stored == ["curl", "-H", "Authorization: Bearer [redacted]", "--token=[redacted]", "https://u:[redacted]@h/"], "\(stored)")
    }

    @Test func anythingElseIsRefusedOrSkipped() {
        for text in ["", "[]", "null", "{\"session\":\"\"}", "{\"session\":1,\"started_at\":1,\"ended_at\":2}",
                     "{\"session\":\"" + String(repeating: "x", count: 200) + "\",\"started_at\":1,\"ended_at\":2}",
                     "{\"session\":\"S\",\"started_at\":\"x\",\"ended_at\":2}", String(repeating: "[", count: 100_000)] {
            #expect(throws: (any Error).self, "\(text.prefix(40))") { try RecordEnforceCommand.parse(Data(text.utf8)) }
        }
        // Entries of the wrong shape are skipped, hostile values kept as data (bound, never SQL).
        let odd = """
        {"session":"S2","started_at":1,"ended_at":2,"entries":[1,"x",{"verdict":"refused"},\
        {"verdict":"refused","subject":"a'; DROP TABLE sessions;--","proto":"dns","count":1e300,"port":99999}]}
        """
        let record = try? RecordEnforceCommand.parse(Data(odd.utf8))
        #expect(record?.entries.count == 1 && record?.entries.first?.port == nil, "\(String(describing: record))")
    }
}
