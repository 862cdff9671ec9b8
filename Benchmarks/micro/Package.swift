// swift-tools-version: 6.1
// Microbenchmarks (ordo-one/benchmark). Kept in their own package so the main build does not
// resolve or compile the benchmark framework. Run: Benchmarks/micro/run.sh
import PackageDescription

let package = Package(
    name: "tapper-micro-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // A symlink to the repository root, so the dependency has the same identity wherever
        // the repository is checked out.
        .package(path: "tapper-root"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "RouteMatching",
            dependencies: [
                .product(name: "TapperCore", package: "tapper-root"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RouteMatching",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
