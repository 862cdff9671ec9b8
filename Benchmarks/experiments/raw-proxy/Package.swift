// swift-tools-version: 6.1
// Feasibility experiment for the gateway's next data path: the smallest possible HTTP/1.1
// keep-alive proxy on SwiftNIO that moves raw bytes (no NIOHTTP1 decoder/encoder, no
// HTTPHeaders), to measure the floor of NIO's per-request CPU cost on this machine.
// NOT a product: no validation, Content-Length responses only. See README of the gateway issue.
import PackageDescription

let package = Package(
    name: "raw-proxy",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3")],
    targets: [
        .executableTarget(
            name: "RawProxy",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        )
    ]
)
