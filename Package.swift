// swift-tools-version:6.2
// cagent: a Linux sandbox for AI coding agents that learns what the agent needs, then enforces exactly that.
// Module map and data flow: docs/architecture.md.
import PackageDescription

let package = Package(
    name: "cagent",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cagent", targets: ["cagent"]),
        .executable(name: "cagent-full", targets: ["cagent-full"]),
        .executable(name: "cagent-init", targets: ["cagent-init"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // C: the syscalls and macros Swift cannot reach (one header per concern), and system libraries.
        .target(name: "CShim"),
        .target(name: "CEbpf", exclude: ["bpf"], linkerSettings: [.linkedLibrary("bpf")]),  // learn mode's eBPF tracer: docs/tracing.md
        .target(name: "CPcap"),  // libpcap, dlopen'ed on first use: CPcap/include/cg_pcap.h
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev", "libmnl-dev"])]),
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),

        // Swift libraries, one job each.
        .target(name: "CagentCore", dependencies: [
            "CShim", .product(name: "Logging", package: "swift-log"),
        ]),
        // No Foundation (the enforce path loads none): libyaml directly; MemberImportVisibility keeps
        // Foundation's String extensions from leaking in through CagentCore.
        .target(name: "CagentProfile", dependencies: ["CagentCore", "CLibYAML"],
                swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]),
        .target(name: "CagentSandbox", dependencies: ["CagentCore", "CagentProfile", "CShim"]),
        .target(name: "CagentNetwork", dependencies: ["CagentCore", "CShim", "CNftnl"]),
        .target(name: "CagentDNS", dependencies: ["CagentCore", "CagentNetwork", "CShim"]),
        .target(name: "CagentCapture", dependencies: ["CagentCore", "CagentNetwork", "CagentDNS", "CPcap"]),
        // The event model every source feeds and the store records: no dependencies, so that tracers and
        // parsers (and their fuzz harness) build without the database.
        .target(name: "CagentEvents"),
        .target(name: "CagentStore", dependencies: ["CagentCore", "CagentEvents", .product(name: "GRDB", package: "GRDB.swift"),
                                                  .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        // `cagent profile export`: a profile as a CiliumNetworkPolicy or Kubernetes NetworkPolicy (docs/profiles.md).
        .target(name: "CagentExport", dependencies: ["CagentCore", "CagentProfile", "CagentNetwork", "CagentDNS"]),
        // `cagent profile propose`: observations -> the smallest profile (docs/profiles.md "Proposals").
        // -Onone in release: Swift 6.3.1's optimizer breaks this module's code (LLVM's verifier: "swifterror value
        // can only be loaded and stored from"); the proposer's benchmark is measured with it (docs/benchmarks.md).
        .target(name: "CagentPropose", dependencies: ["CagentCore", "CagentProfile", "CagentEvents", "CagentStore",
                                                    .product(name: "GRDB", package: "GRDB.swift")],
                swiftSettings: [.unsafeFlags(["-Onone"], .when(configuration: .release))]),
        .target(name: "CagentTrace", dependencies: ["CagentCore", "CagentEvents", "CShim", "CEbpf"],
                linkerSettings: [.linkedLibrary("z")]),  // gzip traces: CShim/include/cg_gzip.h
        // `cagent enforce` (the session, its network, its fast argument reading), the `cagent` front, and what
        // every command shares: no Foundation, SQLite, libpcap or ArgumentParser at start.
        .target(name: "CagentLaunch", dependencies: [
            "CagentCore", "CagentProfile", "CagentSandbox", "CagentNetwork", "CagentDNS", "CagentCapture", "CShim",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // `cagent learn`'s session: the sources around one sandbox and the one bridge from them into the
        // Recorder. Never linked into the lean front (CagentLaunch does not depend on it).
        .target(name: "CagentLearn", dependencies: [
            "CagentCore", "CagentEvents", "CagentProfile", "CagentStore", "CagentTrace", "CagentCapture", "CagentDNS",
            "CagentNetwork", "CagentLaunch", "CagentSandbox",
        ]),
        .target(name: "CagentCLI", dependencies: [
            "CagentLaunch", "CagentLearn", "CagentCore", "CagentProfile", "CagentSandbox", "CagentNetwork",
            "CagentCapture", "CagentEvents", "CagentStore", "CagentTrace", "CagentPropose", "CShim", "CagentExport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Executables: the lean front (`enforce` in process, everything else exec'd), the full command set,
        // the in-sandbox init (C), the benchmark harnesses.
        // The front is linked with the Swift runtime statically in release builds: no dynamic loading and
        // relocation of libswiftCore & co. at every agent start (docs/benchmarks.md "Sandbox start").
        .executableTarget(name: "cagent", dependencies: ["CagentLaunch"],
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(configuration: .release))]),
        .executableTarget(name: "cagent-full", dependencies: ["CagentCLI"]),
        // cagent-init is C; linked statically so that no dynamic loading (SwiftPM would add libswiftCore) slows
        // every sandbox start (~2 ms, docs/benchmarks.md "Sandbox start").
        .executableTarget(name: "cagent-init", dependencies: ["CShim"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        .executableTarget(name: "cagent-bench", dependencies: []),
        .executableTarget(name: "cagent-dns-bench", dependencies: ["CagentDNS", "CagentNetwork", "CagentCore", "CNftnl"]),

        // Test support, never linked into a product: the hermetic test network every network test uses, the
        // test user, spawning, and `Requirements` (what a test needs from the machine; under CI=true unmet means fail).
        .target(name: "Netlab", dependencies: ["CagentCore", "CShim"], path: "Tests/Netlab", exclude: ["Resources"]),

        // Test targets are named after the module they test (docs/testing.md "Test targets"); SandboxTests runs whole
        // sessions of the real binary, NetlabTests the test network.
        .testTarget(name: "CagentCoreTests", dependencies: ["CagentCore", "Netlab"]),
        .testTarget(name: "NetlabTests", dependencies: ["Netlab", "CagentCore"]),
        .testTarget(name: "CagentProfileTests", dependencies: ["CagentProfile", "Netlab"]),
        .testTarget(name: "SandboxTests", dependencies: ["CagentSandbox", "Netlab"], exclude: ["Servers"]),
        .testTarget(name: "CagentNetworkTests", dependencies: ["CagentNetwork", "Netlab"], exclude: ["Golden"]),
        .testTarget(name: "CagentDNSTests", dependencies: ["CagentDNS", "CagentCapture", "CagentNetwork", "Netlab"]),
        .testTarget(name: "CagentStoreTests", dependencies: ["Netlab", "CagentCore", "CagentEvents", "CagentStore", "CagentTrace"], exclude: ["Fixtures"]),
        .testTarget(name: "CagentExportTests", dependencies: ["CagentExport", "CagentProfile", "CagentNetwork", "Netlab"],
                    exclude: ["Fixtures", "validate-policies.py"]),
        .testTarget(name: "CagentProposeTests", dependencies: ["CagentPropose", "CagentProfile", "CagentEvents", "CagentStore", "CagentCore",
                                                              .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "CagentTraceTests", dependencies: ["CagentTrace", "CagentEvents", "CagentStore", "CagentCore", "Netlab"], exclude: ["Fixtures"]),
        .testTarget(name: "CagentLaunchTests", dependencies: [
            "CagentLaunch", "CagentCLI", "CagentSandbox", "CagentDNS", "CagentCore", "Netlab",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "CagentLearnTests", dependencies: [
            "CagentLearn", "CagentCapture", "CagentDNS", "CagentNetwork", "CagentEvents", "CagentStore",
        ]),
        .testTarget(name: "CagentCLITests", dependencies: ["CagentCLI", "CagentCore", "CagentProfile", "CagentStore", "Netlab"]),
    ],
    swiftLanguageModes: [.v6]
)

// The style gate (`make test` and CI: scripts/test.sh sets CAGENT_STRICT=1): every warning in the project's own
// targets is an error. Only this package's targets get the setting; dependencies are built with their own
// settings (SwiftPM silences their warnings), so a warning in GRDB or swift-log never fails the build.
if Context.environment["CAGENT_STRICT"] == "1" {
    for target in package.targets where target.type != .system {
        target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
        target.cSettings = (target.cSettings ?? []) + [.treatAllWarnings(as: .error)]
    }
}
