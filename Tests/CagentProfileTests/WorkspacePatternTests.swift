import Testing
@testable import CagentProfile

/// `filesystem.hide` entries that name workspace files: the syntax (docs/profiles.md) and its refusals.
@Suite("workspace patterns")
struct WorkspacePatternTests {
    @Test func canonicalForms() throws {
        #expect(try ValueSyntax.hideEntry(".env") == ".env")
        #expect(try ValueSyntax.hideEntry("./.env") == "./.env")
        #expect(try ValueSyntax.hideEntry("./config//prod.yaml") == "config/prod.yaml")
        #expect(try ValueSyntax.hideEntry("secrets/") == "secrets/")
        #expect(try ValueSyntax.hideEntry("~/.ssh/") == "~/.ssh")
        #expect(try ValueSyntax.hideEntry("/etc/x") == "/etc/x")
    }

    @Test func refusals() {
        for bad in ["../x", "a/../b", "./", ".", "a/./b", "**/x", "a/**", "*", "./*", ".git", "sub/.git/config", "a\\*b", "x\ty"] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.hideEntry(bad) }
        }
        #expect(throws: ValueProblem("'..' would leave the workspace",
                                     hint: "a workspace pattern names files inside the workspace; write an absolute or '~/' path for others")) {
            try ValueSyntax.hideEntry("../x")
        }
    }

    @Test func matching() throws {
        let env = try WorkspacePattern(".env")
        #expect(env.matches([".env"], isDirectory: false) && env.matches(["a", "b", ".env"], isDirectory: false))
        #expect(!env.matches([".env.local"], isDirectory: false) && !env.matches([".env", "x"], isDirectory: false))
        let anchored = try WorkspacePattern("./.env")
        #expect(anchored.matches([".env"], isDirectory: false) && !anchored.matches(["a", ".env"], isDirectory: false))
        let envs = try WorkspacePattern(".env.*")
        #expect(envs.matches([".env.local"], isDirectory: false) && envs.matches([".env.example"], isDirectory: false))
        #expect(!envs.matches([".env"], isDirectory: false))
        let pem = try WorkspacePattern("*.pem")
        #expect(pem.matches(["certs", "server.pem"], isDirectory: false) && pem.matches([".pem"], isDirectory: false))
        #expect(!pem.matches(["server.pem.txt"], isDirectory: false))
        let key = try WorkspacePattern("id_rsa*")
        #expect(key.matches(["id_rsa"], isDirectory: false) && key.matches(["k", "id_rsa.pub"], isDirectory: false))
        let directory = try WorkspacePattern("secrets/")
        #expect(directory.matches(["a", "secrets"], isDirectory: true) && !directory.matches(["secrets"], isDirectory: false))
        let nested = try WorkspacePattern("config/*.key")
        #expect(nested.matches(["config", "tls.key"], isDirectory: false) && !nested.matches(["x", "config", "tls.key"], isDirectory: false))
        let classes = try WorkspacePattern("key[0-9].txt")
        #expect(classes.matches(["key1.txt"], isDirectory: false) && !classes.matches(["keyA.txt"], isDirectory: false))
    }
}
