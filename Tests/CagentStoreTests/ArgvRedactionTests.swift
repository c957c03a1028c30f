@testable import CagentStore
import CagentEvents
import Testing

/// The pure rules of ArgvRedaction: what is cut from a recorded command line and what stays.
struct ArgvRedactionTests {
    func redact(_ argv: [String], secrets: [String] = []) -> [String] {
        ArgvRedaction(secretValues: secrets).redact(argv.map { RawText($0) }).map(\.lossyString)
    }

    @Test func optionsAndAssignmentsWithSecretNames() {
        #expect(redact(["deploy", "--password=hunter22", "--api-token", "t0k", "--verbose", "out"])
                == ["deploy", "--password=[redacted]", "--api-token", "[redacted]", "--verbose", "out"])
        #expect(redact(["env", "API_KEY=abc", "GITHUB_TOKEN=ghp_x", "DB_PWD=x", "PATH=/bin", "PWD=/ws", "make"])
                == ["env", "API_KEY=[redacted]", "GITHUB_TOKEN=[redacted]", "DB_PWD=[redacted]", "PATH=/bin", "PWD=/ws", "make"])
        // An option that takes no value, followed by another option: nothing is cut.
        #expect(redact(["psql", "--password", "-h", "db"]) == ["psql", "--password", "-h", "db"])
        #expect(redact(["git", "--no-password", "x"]) == ["git", "--no-password", "x"])
        // The program's own name is never an option.
        #expect(redact(["--token=x"]) == ["--token=x"])
    }

    @Test func headersUserinfoAndCurlUsers() {
        #expect(redact(["curl", "-H", "Authorization: Bearer sk-live-1", "-H", "authorization:tok", "-H", "Accept: */*"])
                == ["curl", "-H", "Authorization: Bearer [redacted]", "-H", "authorization:[redacted]", "-H", "Accept: */*"])
        #expect(redact(["curl", "--header=Cookie: session=abc", "-HX-Api-Key: k1"]) == ["curl", "--header=Cookie: [redacted]", "-HX-Api-Key: [redacted]"])
        #expect(redact(["git", "clone", "https://me:pa:ss@host.test/r.git", "ssh://git@host.test/r"])
                == ["git", "clone", "https://me:[redacted]@host.test/r.git", "ssh://git@host.test/r"])
        #expect(redact(["x", "a=postgres://app:pw@db/x;b=http://u:p@h/"]) == ["x", "a=postgres://app:[redacted]@db/x;b=http://u:[redacted]@h/"])
        #expect(redact(["curl", "-u", "me:pw", "--user=me:pw2", "-u", "onlyuser"]) == ["curl", "-u", "me:[redacted]", "--user=me:[redacted]", "-u", "onlyuser"])
    }

    @Test func passwordsGluedToP() {
        #expect(redact(["/usr/bin/mysql", "-psecret", "-h", "db"]) == ["/usr/bin/mysql", "-p[redacted]", "-h", "db"])
        #expect(redact(["sshpass", "-p", "pw", "ssh", "h"]) == ["sshpass", "-p", "[redacted]", "ssh", "h"])
        // ssh's -p is a port: kept.
        #expect(redact(["ssh", "-p2222", "host"]) == ["ssh", "-p2222", "host"])
    }

    @Test func secretValuesAnywhere() {
        let secrets = ArgvRedaction.secretValues(environment: ["DEPLOY_SECRET": "s3cr3t-value", "SHELL": "/bin/bash", "EDITOR": "vi",
                                                               "OPAQUE": "abcdefghijklmnopqrstuvwxyz", "FROMFILE": "filekey-123"],
                                                 secretNames: ["FROMFILE"], hidden: ["OPAQUE", "SHELL", "EDITOR"])
        #expect(Set(secrets) == ["s3cr3t-value", "abcdefghijklmnopqrstuvwxyz", "filekey-123"])
        #expect(redact(["/bin/bash", "-c", "echo s3cr3t-value; x=filekey-123", "abcdefghijklmnopqrstuvwxyz"], secrets: secrets)
                == ["/bin/bash", "-c", "echo [redacted]; x=[redacted]", "[redacted]"])
        // Too short to search for.
        #expect(ArgvRedaction(secretValues: ["abc"]).secretValues.isEmpty)
    }

    @Test func invalidUTF8IsCutToo() {
        let argv = [RawText("tool"), RawText(bytes: [0xFF] + Array("--token=abc".utf8)), RawText(bytes: Array("--secret=".utf8) + [0xFE, 0x41])]
        let out = ArgvRedaction().redact(argv)
        #expect(out[1].bytes == [0xFF] + Array("--token=abc".utf8))   // not an option: the name starts with 0xFF
        #expect(out[2].bytes == Array("--secret=[redacted]".utf8))
        let valued = ArgvRedaction(secretValues: ["abcdef"]).redact([RawText("t"), RawText(bytes: [0xFF] + Array("abcdef".utf8) + [0xFE])])
        #expect(valued[1].bytes == [0xFF] + ArgvRedaction.marker + [0xFE])
    }
}
