@testable import CagentSandbox
import CagentProfile
import Testing

/// The sandbox's known_hosts under `--ssh-key` (KnownHosts): only the profile's ssh hosts, found in plain
/// and in hashed entries (ssh-keygen -H wrote the hashed lines below), never through a wildcard.
@Suite struct KnownHostsTests {
    @Test func hmacSHA1MatchesRFC2202() {
        let mac = HMACSHA1.mac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
                == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        #expect(HMACSHA1.sha1([]).prefix(4) == [0xda, 0x39, 0xa3, 0xee])
    }

    @Test func onlyTheNamedHostsAreCopied() {
        let text = """
        # a comment
        |1|bLjk9JU/dJNbcys0bGIuig9ueiU=|o9zJLiMXFiB2TPit48NmvE17rVA= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestOnly0000000000000000000000000
        |1|dn7Ht5o5ZYrzNndyc29GmhmIQgQ=|CNBhPFY94/sGkwTZsz+IBvYWZ6w= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPortKey00000000000000000000000000000000000
        other.test,GIT.example.test ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCplain
        *.example.test ssh-rsa AAAAwildcard
        @cert-authority git.example.test ssh-rsa AAAAca
        attacker.test ssh-rsa AAAAother
        """
        let found = KnownHosts.filter(text, names: ["git.allowed.test", "[git.allowed.test]:2222", "git.example.test", "none.test"])
        #expect(found["git.allowed.test"] == ["git.allowed.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestOnly0000000000000000000000000"])
        #expect(found["[git.allowed.test]:2222"] == ["[git.allowed.test]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPortKey00000000000000000000000000000000000"])
        #expect(found["git.example.test"] == ["git.example.test ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCplain"])
        #expect(found["none.test"] == nil)
        #expect(found.values.joined().allSatisfy { !$0.contains("attacker") && !$0.contains("wildcard") && !$0.contains("AAAAca") })
    }

    @Test func theSshHostsAreThePort22Endpoints() {
        let endpoints = [Endpoint(host: "git.allowed.test", port: 22), Endpoint(host: "Git.Allowed.Test", port: 22),
                         Endpoint(host: "code.test", port: 2222), Endpoint(host: "dns.test", port: 53, proto: .udp)]
        #expect(SshDeployKey.sshHosts(endpoints) == ["git.allowed.test"])
    }
}
