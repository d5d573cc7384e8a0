// swift-tools-version:6.0
// libFuzzer harnesses for the HDF5 and netCDF-3 parsers, the chunk decoders and imported text (kerchunk references, YAML
// configs), kept out of the main package because a
// `--sanitize=fuzzer` executable has no `main` of its own. Run it through tools/fuzz/run.
import PackageDescription

let package = Package(
    name: "zarrmount-fuzz",
    dependencies: [.package(name: "zarrmount", path: "../..")],
    targets: [
        .executableTarget(
            name: "HDF5Fuzz",
            dependencies: [.product(name: "HDF5Metadata", package: "zarrmount")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "NetCDF3Fuzz",
            dependencies: [
                .product(name: "NetCDF3", package: "zarrmount"), .product(name: "NetCDF3Mapping", package: "zarrmount"),
                .product(name: "VirtualZarr", package: "zarrmount"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "CodecFuzz",
            dependencies: [.product(name: "VirtualZarr", package: "zarrmount")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "ImportFuzz",
            dependencies: [.product(name: "Scanner", package: "zarrmount"), .product(name: "VirtualZarr", package: "zarrmount"),
                           .product(name: "ZarrFS", package: "zarrmount")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
