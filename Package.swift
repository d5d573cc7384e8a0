// swift-tools-version:6.0
import PackageDescription

let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "zarrmount",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "zarrmount", targets: ["zarrmount"]),
        .library(name: "HDF5Metadata", targets: ["HDF5Metadata"]),
        // For tools/fuzz's harnesses.
        .library(name: "VirtualZarr", targets: ["VirtualZarr"]),
        .library(name: "Scanner", targets: ["Scanner"]),
        .library(name: "ZarrFS", targets: ["ZarrFS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
    ],
    targets: [
        // System-library shims: one header each, prefixed wrappers for what Swift cannot call directly.
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The executables' malloc: see README, "Memory allocator".
        .systemLibrary(name: "CJemalloc", pkgConfig: "jemalloc", providers: [.apt(["libjemalloc-dev"])]),

        .target(
            name: "ByteSource",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness
        ),
        // The JSON value type shared by reports, Zarr metadata, references and caches.
        .target(name: "JSONValue", swiftSettings: strictness),
        .target(name: "HDF5Metadata", dependencies: ["ByteSource", "JSONValue"], swiftSettings: strictness),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "VirtualZarr", dependencies: ["HDF5Metadata", "JSONValue", "CZlib"], swiftSettings: strictness),
        .target(
            name: "ObjectStore",
            dependencies: ["ByteSource", "CCurl", .product(name: "Logging", package: "swift-log"),
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictness
        ),
        .target(
            name: "Scanner",
            dependencies: [
                "ByteSource", "HDF5Metadata", "JSONValue", "ObjectStore", "VirtualZarr",
                .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "ZarrFS",
            dependencies: ["VirtualZarr", "JSONValue", "CFuse", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness
        ),
        // The object store behind the filesystem's chunk fetcher: the filesystem knows no transport.
        .target(
            name: "StoreAdapter",
            dependencies: ["ZarrFS", "ObjectStore", "VirtualZarr"],
            swiftSettings: strictness
        ),
        .target(
            name: "HDF5Oracle",
            dependencies: ["CHDF5", "HDF5Metadata"],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "zarrmount",
            dependencies: [
                "ByteSource", "HDF5Metadata", "HDF5Oracle", "JSONValue", "VirtualZarr", "Scanner", "ObjectStore", "ZarrFS",
                "StoreAdapter", "CJemalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),

        .executableTarget(
            name: "zarrmount-bench",
            dependencies: [
                "ByteSource", "HDF5Metadata", "ObjectStore", "CJemalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),

        .testTarget(
            name: "VirtualZarrTests",
            dependencies: ["VirtualZarr", "Scanner", "ObjectStore", "HDF5Metadata", "JSONValue", "ByteSource",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ObjectStoreTests",
            dependencies: ["ObjectStore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness
        ),
        .testTarget(name: "ZarrFSTests", dependencies: ["ZarrFS", "StoreAdapter", "VirtualZarr", "JSONValue", "ObjectStore",
                                                     .product(name: "Logging", package: "swift-log")], swiftSettings: strictness),
        .testTarget(name: "ByteSourceTests", dependencies: ["ByteSource"], swiftSettings: strictness),
        .testTarget(
            name: "HDF5MetadataTests",
            dependencies: ["HDF5Metadata", "HDF5Oracle", "JSONValue", "ByteSource"],
            swiftSettings: strictness
        ),
    ]
)
