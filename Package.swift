// swift-tools-version:6.0
import PackageDescription

let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "zarrmount",
    // Linux only: the code uses Glibc, epoll (libcurl's socket loop) and libfuse3; no
    // platforms are declared because SwiftPM has no way to say "Linux".
    products: [
        .executable(name: "zarrmount", targets: ["zarrmount"]),
        .executable(name: "zarrmount-verify", targets: ["zarrmount-verify"]),
        .library(name: "HDF5Metadata", targets: ["HDF5Metadata"]),
        // For tools/fuzz's harnesses.
        .library(name: "VirtualZarr", targets: ["VirtualZarr"]),
        .library(name: "HDF5Mapping", targets: ["HDF5Mapping"]),
        .library(name: "NetCDF3", targets: ["NetCDF3"]),
        .library(name: "NetCDF3Mapping", targets: ["NetCDF3Mapping"]),
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
        // The decoders of HDF5's plugin filters (docs/semantics.md, "Filters"), one library each.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBzip2", providers: [.apt(["libbz2-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSzip", providers: [.apt(["libaec-dev"])]),
        .systemLibrary(name: "CBlosc", pkgConfig: "blosc", providers: [.apt(["libblosc-dev"])]),
        // The Zarr model: arrays, codecs, manifests, combine, Zarr v2/v3 and kerchunk; no parser.
        .target(
            name: "VirtualZarr", dependencies: ["ByteSource", "JSONValue", "CZlib", "CZstd", "CBzip2", "CLZ4", "CSzip", "CBlosc"],
            swiftSettings: strictness),
        // HDF5 (netCDF-4) files as virtual datasets: the parser's results in the model's terms.
        .target(name: "HDF5Mapping", dependencies: ["HDF5Metadata", "VirtualZarr", "JSONValue"], swiftSettings: strictness),
        // Icechunk repositories (refs, snapshots, manifests: FlatBuffers behind a binary header),
        // read natively; no icechunk library.
        .target(name: "Icechunk", dependencies: ["VirtualZarr", "JSONValue"], swiftSettings: strictness),
        // netCDF-3 (classic, 64-bit offset, 64-bit data) headers: a parser of its own, no HDF5.
        .target(name: "NetCDF3", dependencies: ["ByteSource", "JSONValue"], swiftSettings: strictness),
        // netCDF-3 files as virtual datasets, beside the HDF5 mapping (neither knows the other).
        .target(
            name: "NetCDF3Mapping", dependencies: ["NetCDF3", "VirtualZarr", "JSONValue"],
            swiftSettings: strictness),
        .target(
            name: "ObjectStore",
            dependencies: [
                "ByteSource", "CCurl", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "Scanner",
            dependencies: [
                "ByteSource", "HDF5Metadata", "HDF5Mapping", "NetCDF3", "NetCDF3Mapping", "JSONValue", "ObjectStore", "VirtualZarr",
                "Icechunk", .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "ZarrFS",
            dependencies: ["ByteSource", "VirtualZarr", "JSONValue", "CFuse", .product(name: "Logging", package: "swift-log")],
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
                "ByteSource", "HDF5Metadata", "JSONValue", "VirtualZarr", "Scanner", "ObjectStore", "ZarrFS",
                "StoreAdapter", "CJemalloc", "Icechunk",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),

        // The parser's oracle (libhdf5) in a tool of its own: the mount daemon does not link it.
        .executableTarget(
            name: "zarrmount-verify",
            dependencies: ["ByteSource", "HDF5Metadata", "HDF5Oracle", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "zarrmount-bench",
            dependencies: [
                "ByteSource", "HDF5Metadata", "ObjectStore", "Scanner", "VirtualZarr", "CJemalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),

        // What several test targets share (a seeded random generator).
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strictness),
        .testTarget(
            name: "ScannerTests",
            dependencies: [
                "Scanner", "TestSupport", "VirtualZarr", "HDF5Mapping", "ObjectStore", "HDF5Metadata", "JSONValue", "ByteSource",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "VirtualZarrTests",
            dependencies: [
                "VirtualZarr", "HDF5Mapping", "Scanner", "ObjectStore", "HDF5Metadata", "JSONValue", "ByteSource",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ObjectStoreTests",
            dependencies: ["ObjectStore", "ByteSource", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ZarrFSTests",
            dependencies: [
                "ZarrFS", "StoreAdapter", "TestSupport", "VirtualZarr", "JSONValue", "ObjectStore",
                .product(name: "Logging", package: "swift-log"),
            ], swiftSettings: strictness),
        .testTarget(name: "ByteSourceTests", dependencies: ["ByteSource"], swiftSettings: strictness),
        .testTarget(name: "IcechunkTests", dependencies: ["Icechunk"], swiftSettings: strictness),
        .testTarget(name: "JSONValueTests", dependencies: ["JSONValue"], swiftSettings: strictness),
        .testTarget(
            name: "NetCDF3Tests",
            dependencies: ["NetCDF3", "NetCDF3Mapping", "VirtualZarr", "JSONValue", "ByteSource", "TestSupport"],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "HDF5MetadataTests",
            dependencies: ["HDF5Metadata", "HDF5Oracle", "JSONValue", "ByteSource", "TestSupport"],
            swiftSettings: strictness
        ),
    ]
)
