import ArgumentParser
import CagentCLI
@testable import CagentLaunch
import Testing

/// The launch path's parse of `cagent enforce` arguments (EnforceOptions.parseCommon) against
/// ArgumentParser's (EnforceCommand): where the fast one answers, both give the same options; where
/// ArgumentParser refuses, the fast one declines and leaves the message to it.
@Suite struct EnforceArgumentsTests {
    static let accepted: [[String]] = [
        ["--profile", "default", "--", "/bin/true"],
        ["--profile=default", "--", "/bin/true"],
        ["--profile", "claude-code", "--workspace", "/tmp/ws", "--user", "1000", "--", "claude", "--flag", "-x"],
        ["--offline", "--profile", "p", "--revert-risky", "--json", "--verbose", "--debug", "--", "sh", "-c", "echo --"],
        ["--profile", "p", "--upstream-dns", "198.18.0.2", "--upstream-dns=198.18.0.3:5353", "--", "a"],
        ["--profile", "p", "--state-dir", "/tmp/s", "--dump-plan", "/tmp/plan", "--fail-at-stage", "mount-proc", "--", "a"],
        ["--profile", "p", "--"],
        ["--profile", "p", "--env", "DATABASE_URL", "--env=HTTPS_PROXY", "--allow-proxy", "--", "a"],
        ["--user=4294967295", "--profile", "p", "--", "--", "x"],
        ["--profile", "név with space", "--workspace=/tmp/a=b", "--", "x"],
        ["--profile", "p", "--db", "/tmp/s/e.db", "--", "x"],
        ["--ask", "--profile", "p", "--ask-timeout", "2.5", "--", "x"],
        ["--profile", "p", "--proxy", "http://198.18.0.9:3128", "--", "x"],
        ["--proxy=http://proxy.corp:3128/", "--profile", "p", "--", "x"],
        ["--profile", "p", "--ssh-key", "/home/u/.config/cagent/ssh/deploy", "--", "git", "push"],
        ["--profile", "p", "--publish", "8085", "--", "gh", "auth", "login"],
        ["--in-container", "--profile", "claude-code", "--", "claude"],
    ]

    /// Forms the fast path leaves to ArgumentParser (some valid, most not).
    static let declined: [[String]] = [
        ["--help"], ["-h"], ["--version"], [],
        ["--profile", "p"],                                  // no `--`: ArgumentParser says what is missing
        ["--", "/bin/true"],                                 // no profile
        ["--profile", "--offline", "--", "x"],               // a missing value
        ["--profile", "p", "--profile", "q", "--", "x"],     // repeated single option
        ["--offline", "--offline", "--profile", "p", "--", "x"],
        ["--user", "-1", "--profile", "p", "--", "x"],
        ["--user", "abc", "--profile", "p", "--", "x"],
        ["--user", "4294967296", "--profile", "p", "--", "x"],
        ["--offline=yes", "--profile", "p", "--", "x"],
        ["--allow-proxy", "--allow-proxy", "--profile", "p", "--", "x"],
        ["--allow-proxy=yes", "--profile", "p", "--", "x"],
        ["--env", "--profile", "p", "--", "x"],
        ["--no-such-option", "--profile", "p", "--", "x"],
        ["-v", "--profile", "p", "--", "x"],
        ["--profile=", "--", "x"],
        ["--profile", "p", "stray", "--", "x"],
        ["--Profile", "p", "--", "x"],
        ["--db", "a", "--db", "b", "--profile", "p", "--", "x"],
        ["--proxy", "http://a:1", "--proxy", "http://b:2", "--profile", "p", "--", "x"],
        ["--proxy", "--profile", "p", "--", "x"],
        ["--ask-timeout", "0", "--profile", "p", "--", "x"],
        ["--ask-timeout", "soon", "--profile", "p", "--", "x"],
        ["--ssh-key", "a", "--ssh-key", "b", "--profile", "p", "--", "x"],
        ["--publish", "0", "--profile", "p", "--", "x"],
        ["--publish", "65536", "--profile", "p", "--", "x"],
        ["--publish", "http", "--profile", "p", "--", "x"],
    ]

    @Test(arguments: accepted)
    func theFastParseIsArgumentParsers(_ arguments: [String]) throws {
        let fast = try #require(EnforceOptions.parseCommon(arguments), "declined \(arguments)")
        let reference = try EnforceCommand.parse(arguments)
        #expect(fast == reference.options)
    }

    @Test(arguments: declined)
    func otherFormsAreLeftToArgumentParser(_ arguments: [String]) {
        #expect(EnforceOptions.parseCommon(arguments) == nil)
    }

    /// Where ArgumentParser itself refuses, so must the fast path (no form is accepted that the reference
    /// would reject).
    @Test func nothingArgumentParserRefusesIsAccepted() {
        for arguments in Self.declined {
            if (try? EnforceCommand.parse(arguments)) == nil {
                #expect(EnforceOptions.parseCommon(arguments) == nil, "\(arguments)")
            }
        }
    }

    /// Every option and flag of EnforceCommand is known to the fast path (and nothing else): a new option
    /// added to the command without the fast path fails here, not silently at a user's start.
    @Test func theFastPathKnowsEveryOption() {
        let help = EnforceCommand.helpMessage(includeHidden: true, columns: 400)
        var names: Set<String> = []
        for word in help.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," || $0 == "[" || $0 == "]" }) where word.hasPrefix("--") {
            let name = word.dropFirst(2).prefix { $0.isLetter || $0 == "-" }
            if !name.isEmpty { names.insert(String(name)) }
        }
        names.remove("help")
        #expect(names == EnforceOptions.knownOptions.union(EnforceOptions.knownFlags), "help lists \(names.sorted())")
    }
}
