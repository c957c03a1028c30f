import CagentCore
import CagentExport
import CagentNetwork
import CagentProfile
import Foundation
import Netlab
import Testing

/// Every bundled profile, exported both ways, validated against the upstream schemas (Fixtures/) by
/// `validate-policies.py`; broken documents must fail the same validator.
@Suite("profile export: schemas")
struct ExportSchemaTests {
    /// Every bundled profile, resolved with its layers.
    static func bundled() throws -> [(name: String, profile: Profile)] {
        let directory = ExportSupport.bundledProfiles
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
        let paths = CagentPaths(runtime: "/nonexistent/run", data: "/nonexistent/data", config: "/nonexistent/config")
        let resolver = ProfileResolver(paths: paths, workspace: "/nonexistent/ws", bundledDirectories: [directory],
                                       environment: ["HOME": "/nonexistent/home"], currentDirectory: directory)
        return try names.map { ($0, try resolver.resolve($0).profile) }
    }

    /// A documentation address for every name, so that every rule kind appears in the Kubernetes export.
    struct DocumentationResolver: AddressResolving {
        func resolve(_ name: String) -> Result<[IPAddress], ResolutionFailure> {
            let byte = UInt8(truncatingIfNeeded: name.utf8.reduce(0) { $0 &+ Int($1) } % 250 + 1)
            return .success([IPAddress(bytes: [203, 0, 113, byte])!,
                             IPAddress(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte])!])
        }
    }

    /// A profile with every kind of entry, on top of the bundled ones.
    static let everything = Profile(
        agent: "everything", description: "Every entry kind: \"quotes\", colons: and a newline\nin the description.",
        network: NetworkPolicy(domains: ["api.example.com", "*.cdn.example.com", "**.deep.example.com"],
                               endpoints: [Endpoint(host: "git.example.com", port: 22), Endpoint(host: "192.0.2.7", port: 8443),
                                           Endpoint(host: "2001:db8::1", port: 443, proto: .udp)]
                                   // More ports for one host than one Cilium port rule holds (40).
                                   + (9000..<9045).map { Endpoint(host: "many.example.com", port: UInt16($0)) },
                               cidrs: ["10.20.0.0/16", "128.0.0.0/1", "2001:db8:100::/48"]))

    @Test("every bundled profile exports to a valid CiliumNetworkPolicy and NetworkPolicy, YAML and JSON",
          .enabled(if: ExportSupport.mayValidate, "needs python3 with jsonschema and PyYAML (make deps)"))
    func bundledProfilesValidate() throws {
        let directory = try ExportSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var profiles = try Self.bundled()
        #expect(profiles.count >= 12, "\(profiles.map(\.name))")
        profiles.append(("everything", Self.everything))
        var cilium: [String] = [], kubernetes: [String] = []
        for (name, profile) in profiles {
            let target = try ExportTarget(profile: profile, reference: name, namespace: "agents")
            let c = CiliumExport.policy(profile, target: target)
            let strict = CiliumExport.policy(profile, target: target, dnsLookups: .profile)
            let k = KubernetesExport.policy(profile, target: target, resolver: DocumentationResolver(), exportedAt: "2026-12-07T15:00:00Z")
            for (suffix, text, list) in [("cilium.yaml", c.yaml, 0), ("cilium.json", c.json, 0), ("cilium-strict.yaml", strict.yaml, 0),
                                         ("k8s.yaml", k.yaml, 1), ("k8s.json", k.json, 1)] {
                let path = directory + "/\(name).\(suffix)"
                try text.write(toFile: path, atomically: false, encoding: .utf8)
                if list == 0 { cilium.append(path) } else { kubernetes.append(path) }
            }
        }
        for (kind, files) in [("cilium", cilium), ("kubernetes", kubernetes)] {
            let result = try ExportSupport.validate(kind, files)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            let ok = result.stdout.split(separator: "\n").filter { $0.hasPrefix("ok ") }
            #expect(ok.count == files.count, "\(result.stdout)")
        }
        // YAML and JSON are the same document.
        let yaml = try String(contentsOfFile: directory + "/everything.cilium.yaml", encoding: .utf8)
        let json = try String(contentsOfFile: directory + "/everything.cilium.json", encoding: .utf8)
        let same = try Netlab.execute(["python3", "-c", "import sys, yaml, json; sys.exit(0 if yaml.safe_load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)",
                                       directory + "/everything.cilium.yaml", directory + "/everything.cilium.json"], timeout: 60)
        #expect(same.status == 0, "\(yaml)\n\(json)\n\(same.stderr)")
    }

    @Test("negative control: the validator rejects broken policies, including a broken export",
          .enabled(if: ExportSupport.mayValidate, "needs python3 with jsonschema and PyYAML (make deps)"))
    func brokenPoliciesFail() throws {
        let directory = try ExportSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = try ExportTarget(profile: Self.everything, reference: "everything")
        let good = CiliumExport.policy(Self.everything, target: target, dnsLookups: .profile).json
        let goodKubernetes = KubernetesExport.policy(Self.everything, target: target, resolver: DocumentationResolver(), exportedAt: "T").json
        let cases: [(kind: String, name: String, text: String)] = [
            // Our own export with ICMP in a port rule (Cilium's enum has no ICMP there).
            ("cilium", "icmp", good.replacingOccurrences(of: "\"protocol\": \"UDP\"", with: "\"protocol\": \"ICMP\"")),
            // A wildcard written as a matchName (the matchName pattern has no '*').
            ("cilium", "star-name", good.replacingOccurrences(of: "\"matchName\": \"api.example.com\"", with: "\"matchName\": \"*.api.example.com\"")),
            // Labels written straight under toEndpoints instead of under matchLabels (a bug an earlier version
            // of the exporter had: Cilium's schema leaves the selector open, the validator closes it).
            ("cilium", "labels-without-matchLabels", good.replacingOccurrences(of: "\"matchLabels\": {\n              \"k8s:io", with: "\"labels\": {\n              \"k8s:io")),
            // No endpointSelector or nodeSelector.
            ("cilium", "no-selector", "{\"apiVersion\": \"cilium.io/v2\", \"kind\": \"CiliumNetworkPolicy\", \"metadata\": {\"name\": \"x\"}, \"spec\": {\"egress\": []}}"),
            // The right document under the wrong kind.
            ("cilium", "wrong-kind", good.replacingOccurrences(of: "\"CiliumNetworkPolicy\"", with: "\"NetworkPolicy\"")),
            // Our own export with a port that is not a number.
            ("kubernetes", "port-object", goodKubernetes.replacingOccurrences(of: "\"port\": 53", with: "\"port\": {\"n\": 53}")),
            // An ipBlock without its cidr.
            ("kubernetes", "no-cidr", goodKubernetes.replacingOccurrences(of: "\"cidr\": \"10.20.0.0/16\"", with: "\"kidr\": \"10.20.0.0/16\"")),
        ]
        for broken in cases {
            #expect(broken.text != good && broken.text != goodKubernetes, "\(broken.name): the mutation did not apply")
            let path = directory + "/\(broken.name).json"
            try broken.text.write(toFile: path, atomically: false, encoding: .utf8)
            let result = try ExportSupport.validate(broken.kind, [path])
            #expect(result.status == 1, "\(broken.name): \(result.stdout)\(result.stderr)")
            #expect(result.stdout.hasPrefix("invalid \(path): "), "\(broken.name): \(result.stdout)")
        }
        // Positive control in the same run: the unbroken documents pass.
        let goodPath = directory + "/good.json", goodKubernetesPath = directory + "/good-k8s.json"
        try good.write(toFile: goodPath, atomically: false, encoding: .utf8)
        try goodKubernetes.write(toFile: goodKubernetesPath, atomically: false, encoding: .utf8)
        #expect(try ExportSupport.validate("cilium", [goodPath]).status == 0)
        #expect(try ExportSupport.validate("kubernetes", [goodKubernetesPath]).status == 0)
    }
}
