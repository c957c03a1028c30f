import CagentCore
import Foundation
import Netlab
import Testing

/// `cagent learn` records every exec's argv. An agent that runs `curl -H "Authorization: Bearer …"`, a tool
/// with `--password=…`, a `KEY=value` assignment, a URL with a password or a secret it was handed must not
/// leave that secret in the database (docs/security.md, "what cagent keeps"). Control: the same execs are
/// in the report, with their harmless arguments as given.
@Suite(.serialized) struct LearnArgvRedactionTests {
    @Test(.enabled(if: Requirements.mayRun(root: true, tools: ["ip", "nft", "dnsmasq"]), "needs root and the netlab tools"))
    func secretsOnCommandLinesStayOutOfTheStore() throws {
        try Requirements.root()
        let fixture = try SandboxFixture(); defer { fixture.remove() }
        let lab = try Netlab(services: [.dns]); defer { lab.shutdown() }
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let secrets = ["password": "pw-\(tag)-a", "token": "tok-\(tag)-b", "bearer": "bearer-\(tag)-c", "assignment": "key-\(tag)-d",
                       "url": "url-\(tag)-e", "environment": "envsecret-\(tag)-f", "curl user": "curlpw-\(tag)-g"]
        let visible = "visible-\(tag)"
        // A file, not `sh -c`: the script's text would be the shell's own argv.
        try fixture.write(fixture.workspace + "/agent.sh", """
            /bin/true \(visible) --password=\(secrets["password"]!) --api-token \(secrets["token"]!)
            /bin/true -H "Authorization: Bearer \(secrets["bearer"]!)" API_KEY=\(secrets["assignment"]!)
            /bin/true https://agent:\(secrets["url"]!)@git.example.test/repo.git \(secrets["environment"]!) -u me:\(secrets["curl user"]!)
            echo ran > ran.txt

            """)
        let database = fixture.root + "/learn.db"
        let run = try lab.run(in: .host, ["env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEPLOY_SECRET=\(secrets["environment"]!)",
                                          Products.cagent, "learn", "--quiet", "--user", String(SandboxFixture.agentUID),
                                          "--home", fixture.home, "--state-dir", fixture.state, "--db", database,
                                          "--workspace", fixture.workspace, "--tracer", "seccomp",
                                          "--", "/bin/sh", fixture.workspace + "/agent.sh"], timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(fixture.read(fixture.workspace + "/ran.txt") == "ran\n", "the agent did not run: \(run.stderr)")
        let report = try Netlab.execute([Products.cagent, "report", "--db", database, "--json", "--limit", "0"], timeout: 30)
        #expect(report.status == 0, "\(report.stderr)")
        // The control: the execs were recorded, their harmless arguments as given, the secrets' options still named.
        #expect(report.stdout.contains(visible), "the exec was not recorded: \(report.stdout.prefix(3000))")
        for kept in ["--password=", "--api-token", "Authorization: Bearer ", "API_KEY=", "https://agent:", "@git.example.test/repo.git", "-u"] {
            #expect(report.stdout.contains(kept), "\(kept) is missing from the report: \(report.stdout.prefix(3000))")
        }
        // Every file of the database (the WAL too) and the report: none of the secrets.
        var places = [("report", report.stdout)]
        for file in FileSystem.list(fixture.root) where file.hasPrefix("learn.db") {
            places.append((file, String(decoding: FileManager.default.contents(atPath: fixture.root + "/" + file) ?? Data(), as: UTF8.self)))
        }
        #expect(places.count >= 2, "no database written: \(FileSystem.list(fixture.root))")
        for (place, text) in places {
            for (kind, secret) in secrets {
                let leaked = text.contains(secret)
                #expect(!leaked, "the \(kind) secret is in \(place)")
            }
        }
    }
}
