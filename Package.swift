// swift-tools-version:6.1
// cagent: a Linux sandbox for AI coding agents that learns what the agent needs, then enforces exactly that.
// Module map and data flow: docs/architecture.md.
import PackageDescription

let package = Package(
    name: "cagent",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cagent", targets: ["cagent"]),
        .executable(name: "cagent-init", targets: ["cagent-init"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C: the syscalls and macros Swift cannot reach (one header per concern), and system libraries.
        .target(name: "CShim"),
        .target(name: "CEbpf", exclude: ["bpf"], linkerSettings: [.linkedLibrary("bpf")]),  // learn mode's eBPF tracer: docs/tracing.md
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev", "libmnl-dev"])]),

        // Swift libraries, one job each.
        .target(name: "CagentCore", dependencies: [
            "CShim", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "CagentProfile", dependencies: ["CagentCore", "Yams"]),
        .target(name: "CagentSandbox", dependencies: ["CagentCore", "CagentProfile", "CShim"]),
        .target(name: "CagentNetwork", dependencies: ["CagentCore", "CShim", "CNftnl"]),
        .target(name: "CagentDNS", dependencies: ["CagentCore", "CagentNetwork", "CShim"]),
        .target(name: "CagentCapture", dependencies: ["CagentCore", "CagentNetwork", "CagentDNS", "CPcap"]),
        .target(name: "CagentStore", dependencies: ["CagentCore", .product(name: "GRDB", package: "GRDB.swift"),
                                                  .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        .target(name: "CagentTrace", dependencies: ["CagentCore", "CagentStore", "CShim", "CEbpf"],
                linkerSettings: [.linkedLibrary("z")]),  // gzip traces: CShim/include/cg_gzip.h
        .target(name: "CagentCLI", dependencies: [
            "CagentCore", "CagentProfile", "CagentSandbox", "CagentNetwork", "CagentDNS",
            "CagentCapture", "CagentStore", "CagentTrace", "CShim", "CPcap", "CNftnl",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Executables: a tiny @main, the in-sandbox init (synchronous, no Foundation), the benchmark harness.
        .executableTarget(name: "cagent", dependencies: ["CagentCLI"]),
        // cagent-init is C; linked statically so that no dynamic loading (SwiftPM would add libswiftCore) slows
        // every sandbox start (~2 ms, docs/benchmarks.md "Sandbox start").
        .executableTarget(name: "cagent-init", dependencies: ["CShim"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        .executableTarget(name: "cagent-bench", dependencies: []),
        .executableTarget(name: "cagent-dns-bench", dependencies: ["CagentDNS", "CagentNetwork", "CagentCore", "CNftnl"]),

        // Test support: the hermetic test network every network test uses.
        .target(name: "Netlab", dependencies: ["CagentCore", "CShim"], path: "Tests/Netlab"),

        .testTarget(name: "CoreTests", dependencies: ["CagentCore", "CagentCLI", "Netlab"]),
        .testTarget(name: "NetlabTests", dependencies: ["Netlab", "CagentCore"]),
        .testTarget(name: "ProfileTests", dependencies: ["CagentProfile", "Netlab"]),
        .testTarget(name: "SandboxTests", dependencies: ["CagentSandbox", "Netlab"]),
        .testTarget(name: "NetworkTests", dependencies: ["CagentNetwork", "Netlab"]),
        .testTarget(name: "DNSTests", dependencies: ["CagentDNS", "CagentCapture", "CagentNetwork", "Netlab"], exclude: ["Corpus"]),
        .testTarget(name: "StoreTests", dependencies: ["Netlab", "CagentCore", "CagentStore", "CagentTrace"], exclude: ["Fixtures"]),
        .testTarget(name: "TraceTests", dependencies: ["CagentTrace", "CagentStore", "CagentCore", "CShim", "Netlab"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
