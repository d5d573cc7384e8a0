// swift-tools-version:6.0
// A latency-injecting TCP proxy for the remote-scan benchmark (tools/bench scan): these machines'
// kernel has no netem, so simulated cloud latency comes from this proxy on loopback. Kept out of
// the main package so the main build does not pull in SwiftNIO. Build:
//   swift build -c release --package-path tools/latency-proxy
import PackageDescription

let package = Package(
    name: "latency-proxy",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
    ],
    targets: [
        .executableTarget(
            name: "latency-proxy",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)
