import ByteSource
import HDF5Metadata
import HDF5Oracle
import XCTest

/// Holds the native parser against the system libhdf5, dataset by dataset and chunk by chunk.
final class OracleTests: XCTestCase {
    func testEveryFixtureAgreesWithLibHDF5() async throws {
        var comparedDatasets = 0
        var comparedChunks = 0
        for file in try TestData.fixtureFiles() {
            let info = try await HDF5File.parse(try FileSource(path: file.path))
            let oracle = try LibHDF5Oracle.describe(path: file.path)
            let differences = OracleComparison.differences(native: info, oracle: oracle)
            XCTAssertEqual(differences, [], "\(file.lastPathComponent) differs from libhdf5")
            let readable = oracle.filter(\.isReadable)
            comparedDatasets += readable.count
            comparedChunks += readable.reduce(0) { $0 + $1.chunks.count }
        }
        XCTAssertGreaterThan(comparedDatasets, 150, "too few datasets compared for the matrix to mean anything")
        XCTAssertGreaterThan(comparedChunks, 3000)
    }

    func testNativeParserReadsEveryLayoutAndIndexOfTheMatrix() async throws {
        var indexes = Set<String>()
        var layouts = Set<String>()
        var superblocks = Set<Int>()
        for file in try TestData.fixtureFiles() {
            let info = try await HDF5File.parse(try FileSource(path: file.path))
            superblocks.insert(info.superblock.version)
            for dataset in info.datasets {
                guard let layout = dataset.layout else { continue }
                layouts.insert(layout.className)
                if case .chunked(let chunked) = layout { indexes.insert(chunked.index.name) }
            }
        }
        XCTAssertEqual(superblocks, [0, 1, 2, 3])
        XCTAssertEqual(layouts, ["compact", "contiguous", "chunked"])
        XCTAssertEqual(indexes, ["btree_v1", "single", "implicit", "fixed_array", "extensible_array", "btree_v2"])
    }
}
