// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The data path (route matching and proxying) runs without dynamic exclusivity checks in
/// release builds: they cost several percent of CPU per request and these modules are
/// single-owner by design (state is either immutable, event-loop bound or behind a lock).
/// Debug builds, which the tests run, keep the checks, so an overlapping access traps there.
let hotPathSettings: [SwiftSetting] = swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let testSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tapper",
    products: [
        .executable(name: "tapper", targets: ["tapper"]),
        .library(name: "TapperCore", targets: ["TapperCore"]),
        .library(name: "TapperRegistry", targets: ["TapperRegistry"]),
        .library(name: "TapperRegistryRedis", targets: ["TapperRegistryRedis"]),
        .library(name: "TapperRegistryEtcd", targets: ["TapperRegistryEtcd"]),
        .library(name: "TapperRegistryConsul", targets: ["TapperRegistryConsul"]),
        .library(name: "TapperClient", targets: ["TapperClient"]),
        .library(name: "TapperGateway", targets: ["TapperGateway"]),
        .library(name: "TapperCLI", targets: ["TapperCLI"]),
        .library(name: "TapperTestKit", targets: ["TapperTestKit"]),
        .library(name: "TapperTesting", targets: ["TapperTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        .target(
            name: "TapperCore",
            dependencies: [],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TapperRegistry",
            dependencies: [
                "TapperCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TapperRegistryRedis",
            dependencies: [
                "TapperCore",
                "TapperRegistry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperRegistryEtcd",
            dependencies: [
                "TapperCore",
                "TapperRegistry",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperRegistryConsul",
            dependencies: [
                "TapperCore",
                "TapperRegistry",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperClient",
            dependencies: [
                "TapperCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperGateway",
            dependencies: [
                "CEpoll",
                "CTapperAssets",
                "CTapperTLS",
                "CTapperH2",
                "TapperCore",
                "TapperRegistry",
                "TapperClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: hotPathSettings
        ),
        .systemLibrary(name: "CEpoll"),
        // Swagger UI for /docs, as C byte arrays (scripts/generate-assets writes tapper_assets.c).
        .target(name: "CTapperAssets", exclude: ["swagger-ui"]),
        // TLS termination on the system's OpenSSL (Debian's libssl-dev; README, HTTPS): glue for
        // its macros and error cases, driven from the gateway's reactors.
        .target(name: "CTapperTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // HTTP/2 towards clients on Debian's libnghttp2 (libnghttp2-dev; README, HTTP/2).
        .target(name: "CTapperH2", linkerSettings: [.linkedLibrary("nghttp2")]),
        .systemLibrary(
            name: "CReadline",
            providers: [.apt(["libreadline-dev"])]
        ),
        .target(
            name: "TapperCLI",
            dependencies: [
                "CReadline",
                "TapperCore",
                "TapperRegistry",
                "TapperRegistryRedis",
                "TapperRegistryEtcd",
                "TapperRegistryConsul",
                "TapperClient",
                "TapperGateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tapper",
            dependencies: ["TapperCLI"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperTestKit",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TapperTesting",
            dependencies: [
                "TapperTestKit",
                "TapperCore",
                "TapperRegistry",
                "TapperClient",
                "TapperGateway",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TapperCoreTests",
            dependencies: ["TapperCore", "TapperTestKit"],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "TapperRegistryTests",
            dependencies: ["TapperCore", "TapperRegistry", "TapperTesting", .product(name: "Logging", package: "swift-log"), .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "TapperBackendTests",
            dependencies: [
                "TapperCore", "TapperRegistry", "TapperRegistryRedis", "TapperRegistryEtcd", "TapperRegistryConsul", "TapperTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "TapperClientTests",
            dependencies: ["TapperClient", "TapperCore", "TapperTesting"],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "TapperGatewayTests",
            dependencies: [
                "TapperCore", "TapperGateway", "TapperClient", "TapperRegistry", "TapperTesting",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "TapperCLITests",
            dependencies: ["TapperCLI", "TapperCore", "TapperTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: testSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["TapperTesting", .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: testSettings
        ),
    ]
)
