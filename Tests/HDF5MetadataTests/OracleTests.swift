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

/// Committed datatypes as HDF5 1.6 references them (version 1 shared messages).
final class SharedMessageVersion1Tests: XCTestCase {
    func testDatasetsOfA16EraFileResolveTheirCommittedTypes() async throws {
        let file = try TestData.fixtureDirectory().appendingPathComponent("committed-datatypes-shared-v1.h5")
        let info = try await HDF5File.parse(try FileSource(path: file.path))
        let byPath = Dictionary(uniqueKeysWithValues: info.datasets.map { ($0.path, $0) })
        for path in ["/points", "/temperature", "/group/temperature2"] {
            XCTAssertNil(byPath[path]?.error, "\(path): \(String(describing: byPath[path]?.error))")
        }
        XCTAssertEqual(byPath["/temperature"]?.datatype?.numpyDtype, ">f4")
        XCTAssertEqual(byPath["/group/temperature2"]?.datatype?.numpyDtype, ">f4")
        XCTAssertEqual(byPath["/points"]?.dataspace?.dimensions, [3])
        guard case .compound(let size, let members)? = byPath["/points"]?.datatype else {
            return XCTFail("/points is not compound: \(String(describing: byPath["/points"]?.datatype))")
        }
        XCTAssertEqual(size, 16)
        XCTAssertEqual(members.map(\.name), ["x", "y"])
        let oracle = try LibHDF5Oracle.describe(path: file.path)
        XCTAssertEqual(oracle.filter(\.isReadable).count, 3)
        XCTAssertEqual(OracleComparison.differences(native: info, oracle: oracle), [])
    }
}

/// Old-style groups whose local heap holds link names longer than 64 KiB.
final class LongLinkNameTests: XCTestCase {
    func testNamesLongerThan64KiBResolveAsLibHDF5Does() async throws {
        let file = try TestData.fixtureDirectory().appendingPathComponent("links-long-names-earliest.h5")
        let info = try await HDF5File.parse(try FileSource(path: file.path))
        let longDataset = "/" + String(repeating: "d", count: 70_000) + "_end"
        let longGroup = "/" + String(repeating: "g", count: 100_000)
        let paths = Set(info.datasets.map(\.path))
        XCTAssertEqual(paths, [longDataset, longGroup + "/inner", "/short"])
        XCTAssertTrue(info.datasets.allSatisfy { $0.error == nil })
        XCTAssertEqual(info.datasets.first { $0.path == longDataset }?.dataspace?.dimensions, [6])
        let root = try XCTUnwrap(info.groups.first { $0.path == "/" })
        XCTAssertEqual(root.links.first { $0.name == "soft_to_long" }?.target, .soft(path: longDataset))
        let oracle = try LibHDF5Oracle.describe(path: file.path)
        XCTAssertEqual(oracle.filter(\.isReadable).count, 3)
        XCTAssertEqual(OracleComparison.differences(native: info, oracle: oracle), [])
    }
}

/// Raw data in external files (External Data Files message): the segments as h5py lists them.
final class ExternalDataFilesTests: XCTestCase {
    func testSegmentsAndTheirNamesAreReadFromTheMessageAndItsHeap() async throws {
        let file = try TestData.fixtureDirectory().appendingPathComponent("external/external-raw-data.h5")
        let info = try await HDF5File.parse(try FileSource(path: file.path))
        let byPath = Dictionary(uniqueKeysWithValues: info.datasets.map { ($0.path, $0) })
        XCTAssertTrue(info.datasets.allSatisfy { $0.error == nil }, "\(info.datasets.compactMap(\.error))")
        XCTAssertEqual(byPath["/single"]?.externalFiles, [ExternalFileSegment(name: "single.bin", offset: 16, size: 96)])
        XCTAssertEqual(
            byPath["/multi"]?.externalFiles,
            [
                ExternalFileSegment(name: "multi-a.bin", offset: 0, size: 40), ExternalFileSegment(name: "multi-b.bin", offset: 100, size: 60),
                ExternalFileSegment(name: "multi-a.bin", offset: 500, size: 20),
            ])
        XCTAssertEqual(byPath["/unlimited"]?.externalFiles, [ExternalFileSegment(name: "unlimited.bin", offset: 8, size: nil)])
        XCTAssertEqual(byPath["/inside"]?.externalFiles, [])
        XCTAssertEqual(byPath["/single"]?.attributes.first?.name, "units")
        XCTAssertEqual(byPath["/multi"]?.dataspace?.dimensions, [12, 5])
        let hostile = try await HDF5File.parse(
            try FileSource(path: try TestData.fixtureDirectory().appendingPathComponent("external/external-raw-data-hostile.h5").path))
        XCTAssertEqual(
            hostile.datasets.first { $0.path == "/absolute" }?.externalFiles, [ExternalFileSegment(name: "/etc/passwd", offset: 0, size: 16)])
        XCTAssertEqual(
            hostile.datasets.first { $0.path == "/dotdot" }?.externalFiles, [ExternalFileSegment(name: "../outside.bin", offset: 0, size: 16)])
    }
}
