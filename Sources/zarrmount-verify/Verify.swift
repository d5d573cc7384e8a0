import ArgumentParser
import Foundation
import ByteSource
import HDF5Metadata
import HDF5Oracle

/// The parser held against libhdf5: a tool of its own, so the mount daemon does not link
/// libhdf5 (`zarrmount verify` runs it).
@main
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zarrmount-verify",
        abstract: "Check the native parser against libhdf5 on a local file.",
        discussion: """
            Parses the file twice, with zarrmount's own parser and with the system libhdf5, and \
            compares every dataset: shape, type size, layout, chunk shape, filters, fill value, \
            attribute bytes and every chunk's coordinates, offset, size and filter mask. Exit \
            status 0 when they agree, 1 when they differ (the differences are listed).
            """
    )

    @Argument(help: "Local HDF5 or NetCDF4 files to verify.")
    var paths: [String]

    func run() async throws {
        var failed = 0
        for path in paths {
            let (info, _) = try await parseLocalFile(path)
            let oracle: [OracleDataset]
            do {
                oracle = try LibHDF5Oracle.describe(path: path)
            } catch {
                print("\(path): SKIPPED — \(error)")
                continue
            }
            let differences = OracleComparison.differences(native: info, oracle: oracle)
            let chunkCount = info.datasets.reduce(0) { $0 + ($1.chunks?.count ?? 0) }
            let unreadable = oracle.filter { !$0.isReadable }.map(\.path)
            let skipped =
                unreadable.isEmpty
                ? ""
                : "; libhdf5 \(LibHDF5Oracle.version) could not open \(unreadable.count) (\(unreadable.prefix(3).joined(separator: ", "))\(unreadable.count > 3 ? ", …" : ""))"
            if differences.isEmpty {
                print("\(path): OK — \(oracle.count - unreadable.count) datasets, \(chunkCount) chunks agree with libhdf5\(skipped)")
            } else {
                failed += 1
                print("\(path): DIFFERENT")
                for difference in differences { print("  \(difference)") }
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

func parseLocalFile(_ path: String) async throws -> (HDF5FileInfo, ReadCounters) {
    do {
        return try await BlockCache.measuring(path: path) { try await HDF5File.parse($0) }
    } catch let error as HDF5FileError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    } catch let error as ByteSourceError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
