// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "KVScope",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kvscope", targets: ["kvscope"]),
        .library(name: "KVTrace", targets: ["KVTrace"]),
        .library(name: "KVPolicies", targets: ["KVPolicies"]),
        .library(name: "KVPlot", targets: ["KVPlot"]),
        .library(name: "KVCairo", targets: ["KVCairo"]),
        .library(name: "KVReport", targets: ["KVReport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
    ],
    targets: [
        // Trace model, readers (npy, npz, safetensors, attn-trace v1), validation, writer.
        // Zip members of .npz are parsed in KVTrace; inflating is zlib's, the CRC-32 Intel ISA-L's
        // (`crc32_gzip_refl`: PCLMULQDQ, VPCLMULQDQ with AVX-512, chosen at run time) with zlib's crc32_combine.
        .target(name: "KVTrace", dependencies: ["CZlib", "CIsal", "CKernels", "CFileIO"]),
        // sync_file_range(2), which Swift's Glibc module does not declare (AtomicFile's early writeback).
        .systemLibrary(name: "CFileIO"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(name: "CIsal", pkgConfig: "libisal", providers: [.apt(["libisal-dev"]), .brew(["isa-l"])]),
        // Cache policies: LOOK-M family and baselines; decisions are values.
        .target(name: "KVPolicies", dependencies: ["KVTrace", "CKernels"]),
        // C inner loops for KVPolicies and the .npz reader's column sums (AVX2+FMA chosen at run time, portable fallback).
        .target(name: "CKernels"),
        // Replay engine, metrics, sweeps and result tables.
        .target(name: "KVSimulator", dependencies: ["KVTrace", "KVPolicies", "CKernels"]),
        // Backend-free charts (no Cairo here).
        .target(name: "KVPlot"),
        // Cairo bindings: only KVCairo imports it.
        .systemLibrary(
            name: "CCairo",
            pkgConfig: "cairo",
            providers: [.apt(["libcairo2-dev"]), .brew(["cairo"])]
        ),
        .target(name: "KVCairo", dependencies: ["KVPlot", "CCairo", "KVTrace"]),
        // The study report: one self-contained HTML page from a sweep or explore folder.
        .target(name: "KVReport", dependencies: ["KVSimulator", "KVPolicies", "KVPlot", "KVCairo", .product(name: "SwiftCSV", package: "SwiftCSV")]),
        .executableTarget(
            name: "kvscope",
            dependencies: [
                "KVTrace", "KVPolicies", "KVSimulator", "KVPlot", "KVCairo", "KVReport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Release on Linux: the Swift runtime and Foundation linked in (-static-stdlib), so a start
            // does not load and bind a dozen Swift shared libraries (`kvscope --version` 15 → 9 ms).
            swiftSettings: [.unsafeFlags(["-static-stdlib"], .when(platforms: [.linux], configuration: .release))],
            // lld: GNU ld would print glibc's link-time warning about the static Foundation's use of mktemp.
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-use-ld=lld"], .when(platforms: [.linux], configuration: .release))]
        ),
        // Examples: small readable programs that write into Output/; each is run by ExamplesTests.
        .executableTarget(name: "QuickStart", dependencies: ["KVTrace", "KVPolicies", "KVSimulator", "KVPlot", "KVCairo"], path: "Examples/QuickStart"),
        .executableTarget(name: "BudgetSweep", dependencies: ["KVTrace", "KVPolicies", "KVSimulator", "KVPlot", "KVCairo"], path: "Examples/BudgetSweep"),
        .executableTarget(name: "ModalityRetention", dependencies: ["KVTrace", "KVPolicies", "KVSimulator", "KVPlot", "KVCairo"], path: "Examples/ModalityRetention"),
        .executableTarget(name: "policybench", dependencies: ["KVTrace", "KVPolicies"], path: "Benchmarks/PolicyBench"),
        .executableTarget(name: "plotbench", dependencies: ["KVPlot", "KVCairo"], path: "Benchmarks/PlotBench"),
        // Test support: the one in-memory trace builder and the one binary runner every test target uses.
        .target(name: "KVTestSupport", dependencies: ["KVTrace"], path: "Tests/KVTestSupport"),
        .testTarget(name: "KVTraceTests", dependencies: ["KVTrace", "KVTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "KVPoliciesTests", dependencies: ["KVPolicies", "KVTrace", "KVTestSupport", "KVPlot"], exclude: ["Fixtures"]),
        .testTarget(name: "KVPlotTests", dependencies: ["KVPlot"]),
        .testTarget(name: "KVCairoTests", dependencies: ["KVCairo", "KVPlot"]),
        .testTarget(name: "KVSimulatorTests", dependencies: ["KVSimulator", "KVPolicies", "KVTrace", "KVTestSupport"]),
        .testTarget(name: "KVReportTests", dependencies: ["KVReport", "KVSimulator", "KVPolicies", "KVPlot"]),
        .testTarget(name: "kvscopeTests", dependencies: ["KVTrace", "KVTestSupport", "KVCairo", "KVPolicies"], exclude: ["Fixtures"]),
        .testTarget(name: "ExamplesTests", dependencies: ["KVTrace", "KVTestSupport"]),
    ]
)
