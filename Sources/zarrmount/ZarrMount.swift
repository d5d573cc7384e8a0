import ArgumentParser
import ByteSource
import HDF5Metadata
#if canImport(Glibc)
import Glibc
#endif

@main
struct ZarrMount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zarrmount",
        abstract: "Mount archives of NetCDF4/HDF5 files as read-only Zarr stores.",
        subcommands: [Inspect.self]
    )
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the structure of an HDF5/NetCDF4 file as the native parser sees it."
    )

    @Argument(help: "The HDF5 or NetCDF4 file to inspect.")
    var path: String

    @Flag(help: "Print one machine-readable JSON document instead of a tree.")
    var json = false

    @Flag(help: "Include every chunk's grid coordinates, file offset, stored size and filter mask.")
    var chunks = false

    func run() async throws {
        let source = try FileSource(path: path)
        let info = try await HDF5File.parse(source)
        let report = InspectionReport.json(info, file: path, includeChunks: chunks)
        print(report.rendered(pretty: !json))
    }
}

