import Testing
@testable import CagentProfile

@Suite("Profile values")
struct ValueSyntaxTests {
    @Test("SHA-256 matches the FIPS 180-4 test vectors")
    func sha256() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("domain patterns: normalized, wildcards only leftmost")
    func domains() throws {
        #expect(try ValueSyntax.domainPattern("Example.COM.") == "example.com")
        #expect(try ValueSyntax.domainPattern("*.example.com") == "*.example.com")
        #expect(try ValueSyntax.domainPattern("**.Example.com") == "**.example.com")
        #expect(try ValueSyntax.domainPattern("xn--bcher-kva.example") == "xn--bcher-kva.example")
        for bad in ["*", "**", "a.*.com", "foo*.com", "*.com", "**.com", "bücher.example", "a..b", "-a.com",
                    "a-.com", "1.2.3.4", "host.123", "example.com:443", "https://x.com", "a b.com", ""] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.domainPattern(bad) }
        }
        #expect(ValueSyntax.matches(pattern: "*.example.com", name: "a.example.com."))
        #expect(!ValueSyntax.matches(pattern: "*.example.com", name: "a.b.example.com"))
        #expect(!ValueSyntax.matches(pattern: "*.example.com", name: "example.com"))
        #expect(ValueSyntax.matches(pattern: "**.example.com", name: "A.b.Example.com"))
        #expect(!ValueSyntax.matches(pattern: "**.example.com", name: "example.com"))
        #expect(!ValueSyntax.matches(pattern: "**.example.com", name: "badexample.com"))
        #expect(ValueSyntax.matches(pattern: "example.com", name: "EXAMPLE.com."))
    }

    @Test("endpoints: host:port/proto, IPv6 in brackets")
    func endpoints() throws {
        #expect(try ValueSyntax.endpoint("github.com:22/tcp") == Endpoint(host: "github.com", port: 22, proto: .tcp))
        #expect(try ValueSyntax.endpoint("GitHub.com:22") == Endpoint(host: "github.com", port: 22, proto: .tcp))
        #expect(try ValueSyntax.endpoint("[2001:DB8:0::1]:443/UDP") == Endpoint(host: "2001:db8::1", port: 443, proto: .udp))
        #expect(try ValueSyntax.endpoint("[2001:db8::1]:443/udp").description == "[2001:db8::1]:443/udp")
        #expect(try ValueSyntax.endpoint("192.0.2.1:53/udp").description == "192.0.2.1:53/udp")
        for bad in ["github.com", "github.com:0/tcp", "github.com:65536/tcp", "github.com:22/sctp", "2001:db8::1:443/tcp",
                    "[2001:db8::1]/tcp", "[nothex::1]:22/tcp", "*.github.com:22/tcp", "github.com:+22/tcp", "github.com:/tcp"] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.endpoint(bad) }
        }
    }

    @Test("CIDRs: v4 and v6, valid prefix, no host bits")
    func cidrs() throws {
        #expect(try ValueSyntax.cidr("192.0.2.0/24") == "192.0.2.0/24")
        #expect(try ValueSyntax.cidr("2001:DB8:0:0::/32") == "2001:db8::/32")
        #expect(try ValueSyntax.cidr("198.51.100.7") == "198.51.100.7")
        #expect(try ValueSyntax.cidr("10.0.0.0/8") == "10.0.0.0/8")
        #expect(throws: ValueProblem("host bits are set after the /8 prefix", hint: "did you mean '10.0.0.0/8'?")) {
            try ValueSyntax.cidr("10.0.0.1/8")
        }
        for bad in ["10.0.0.0/33", "::/129", "0.0.0.0/0", "::/0", "10.0.0.0/", "10.0.0/8", "010.0.0.1", "0.0.0.0",
                    "10.0.0.0/8/8", "example.com", "10.0.0.0/-1"] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.cidr(bad) }
        }
    }

    @Test("paths: absolute or ~/, no dot components")
    func paths() throws {
        #expect(try ValueSyntax.path("/opt//tools/") == "/opt/tools")
        #expect(try ValueSyntax.path("~/.ssh/") == "~/.ssh")
        #expect(try ValueSyntax.path("~") == "~")
        for bad in ["relative", "./x", "/a/../b", "~/a/./b", "~root/x", "/", "", "/a\tb"] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.path(bad) }
        }
    }

    @Test("environment names and limits")
    func envAndLimits() throws {
        #expect(try ValueSyntax.environmentName("ANTHROPIC_API_KEY") == "ANTHROPIC_API_KEY")
        for bad in ["1ABC", "A-B", "FOO=bar", "LC_*", ""] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.environmentName(bad) }
        }
        #expect(try ValueSyntax.size("2GiB") == 2 << 30)
        #expect(try ValueSyntax.size("512 MiB") == 512 << 20)
        #expect(try ValueSyntax.size("1000") == 1000)
        #expect(try ValueSyntax.size("2GB") == 2_000_000_000)
        #expect(ValueSyntax.formatSize(2 << 30) == "2GiB")
        #expect(ValueSyntax.formatSize(1536 << 20) == "1536MiB")
        #expect(ValueSyntax.formatSize(1000) == "1000")
        #expect(throws: ValueProblem("unknown unit 'G'", hint: "did you mean '2GiB'? (units: KiB MiB GiB TiB, KB MB GB TB, B)")) {
            try ValueSyntax.size("2G")
        }
        for bad in ["0", "1.5GiB", "GiB", "-1", "99999999999999999999", "20000000TiB"] {
            #expect(throws: ValueProblem.self, "\(bad)") { try ValueSyntax.size(bad) }
        }
        #expect(try ValueSyntax.count("512", range: 1...4096) == 512)
        #expect(throws: ValueProblem.self) { try ValueSyntax.count("0", range: 1...4096) }
        #expect(throws: ValueProblem.self) { try ValueSyntax.count("5k", range: 1...4096) }
    }

    @Test("did you mean: typos, other sections, synonyms")
    func suggestions() {
        #expect(ProfileSchema.suggestion(for: "domian", in: "network") == "did you mean 'domains'?")
        #expect(ProfileSchema.suggestion(for: "openFiles", in: "limits") == "did you mean 'open_files'?")
        #expect(ProfileSchema.suggestion(for: "extend", in: nil) == "did you mean 'extends'?")
        #expect(ProfileSchema.suggestion(for: "version", in: nil) == "did you mean 'cagent'?")
        #expect(ProfileSchema.suggestion(for: "domains", in: nil) == "did you mean 'domains' under 'network:'? ('network.domains')")
        #expect(ProfileSchema.suggestion(for: "zzzzzz", in: nil) == nil)
    }
}
