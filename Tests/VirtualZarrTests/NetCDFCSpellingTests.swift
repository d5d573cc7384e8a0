import JSONValue
@testable import VirtualZarr
import XCTest

/// `NetCDFCSpelling` without a mount or ncdump: what each kind of array becomes, and what is
/// left out and why (`test_readers.py` holds the result against ncdump).
final class NetCDFCSpellingTests: XCTestCase {
    private func array(
        _ path: String, dtype: ZarrDataType = .float(size: 4), shape: [UInt64], chunks: [UInt64], codecs: [Codec] = [],
        entries: [ChunkEntry]? = nil, fill: [UInt8]? = nil
    ) -> VirtualArray {
        let grid = zip(shape, chunks).map { Int(($0 + $1 - 1) / $1) }
        var manifest = ChunkManifest(gridShape: grid)
        for (index, entry) in (entries ?? (0..<manifest.count).map { .reference(object: 0, offset: 1000 * UInt64($0), length: 1000) }).enumerated() {
            manifest[index] = entry
        }
        return VirtualArray(
            path: path, dtype: dtype, shape: shape, chunkShape: chunks, codecs: codecs, fillValue: .null,
            fillBytes: fill ?? [UInt8](repeating: 0, count: dtype.itemSize), dimensionNames: shape.indices.map { "d\($0)" },
            attributes: [], manifest: manifest, origin: path)
    }

    private func spelled(_ arrays: [VirtualArray]) throws -> (VirtualDataset, [String]) {
        let dataset = VirtualDataset(objects: [ObjectInfo(url: "a.nc", size: 1 << 20)], groups: [VirtualGroup(path: "", attributes: [])], arrays: arrays)
        return try NetCDFCSpelling.apply(dataset)
    }

    func testCharactersScalarsAndStringsTakeNetCDFCsSpelling() throws {
        let (dataset, warnings) = try spelled([
            array("Times", dtype: .fixedBytes(1), shape: [3, 19], chunks: [1, 19]),
            array("names", dtype: .fixedBytes(5), shape: [4], chunks: [2]),
            array("crs", dtype: .integer(size: 4, signed: true), shape: [], chunks: [], entries: [.inline([7, 0, 0, 0])]),
            array(
                "station", dtype: ZarrDataType(kind: .variableString, itemSize: 0, bigEndian: false, v2: .string("|O"), v3: .string("string")), shape: [4],
                chunks: [4]),
        ])
        let times = try XCTUnwrap(dataset.array("Times"))
        XCTAssertEqual(times.dtype.v2, .string("<U1"))
        XCTAssertEqual(times.dtype.itemSize, 1)
        XCTAssertEqual(times.shape, [3, 19])
        let names = try XCTUnwrap(dataset.array("names"))
        XCTAssertEqual(names.shape, [4, 5])
        XCTAssertEqual(names.chunkShape, [2, 5])
        XCTAssertEqual(names.dimensionNames, ["d0", "string5"])
        XCTAssertEqual(names.manifest.gridShape, [2, 1])
        XCTAssertEqual(names.manifest[1], .reference(object: 0, offset: 1000, length: 1000), "no chunk moves")
        let crs = try XCTUnwrap(dataset.array("crs"))
        XCTAssertEqual(crs.shape, [1])
        XCTAssertEqual(crs.chunkShape, [1])
        XCTAssertEqual(crs.dimensionNames, [])
        XCTAssertEqual(crs.manifest[0], .inline([7, 0, 0, 0]))
        XCTAssertNil(dataset.array("station"))
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].hasPrefix("station left out") && warnings[0].contains("variable-length strings"), warnings[0])
    }

    func testAChunkLargerThanItsArrayIsCutWhenTheArrayIsItsFirstBytes() throws {
        let (dataset, warnings) = try spelled(
            [
                // 3 records of a 512-record chunk: the first 12 bytes.
                array("time", shape: [3], chunks: [512], entries: [.reference(object: 0, offset: 4096, length: 2048)]),
                // [1, 3] of [1, 8]: the first 3 elements, after an axis of one.
                array("row", shape: [1, 3], chunks: [1, 8], entries: [.inline(Array(0..<32))]),
                // [3, 4] of [512, 4]: trailing axes agree.
                array("t2", shape: [3, 4], chunks: [512, 4], entries: [.reference(object: 0, offset: 0, length: 8192)]),
            ])
        XCTAssertEqual(warnings, [])
        let time = try XCTUnwrap(dataset.array("time"))
        XCTAssertEqual(time.chunkShape, [3])
        XCTAssertEqual(time.manifest[0], .reference(object: 0, offset: 4096, length: 12))
        XCTAssertEqual(try XCTUnwrap(dataset.array("row")).manifest[0], .inline(Array(0..<12)))
        XCTAssertEqual(try XCTUnwrap(dataset.array("t2")).manifest[0], .reference(object: 0, offset: 0, length: 48))
    }

    func testOtherOversizedChunksAreServedOnTheArraysGridOrLeftOutSayingWhy() throws {
        let compressed = array("level", dtype: .integer(size: 2, signed: true), shape: [3], chunks: [512], codecs: [.zlib(level: 4)])
        // [3, 4] of [512, 8]: the array is not the chunk's first bytes.
        let strided = array("u", shape: [3, 4], chunks: [512, 8])
        let (regridded, none) = try spelled([compressed, strided])
        XCTAssertEqual(none, [])
        for name in ["level", "u"] {
            let served = try XCTUnwrap(regridded.array(name))
            XCTAssertEqual(served.chunkShape, served.shape, name)
            XCTAssertNotNil(served.regridding, "\(name) is assembled from its stored chunk")
            XCTAssertEqual(served.codecs, [])
        }
        // A codec zarrmount cannot decode leaves no way to another grid.
        let foreign = array("sz", shape: [3], chunks: [512], codecs: [.other(.object([("id", .string("sz3"))]))])
        let (dataset, warnings) = try spelled([foreign])
        XCTAssertTrue(dataset.arrays.isEmpty)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(
            warnings[0].hasPrefix("sz left out: its chunk (512) is larger than the array (3)") && warnings[0].contains("cannot decode its codec"),
            warnings[0])
    }

    func testTheDecodedViewServesBigEndianNumbersLittleEndian() throws {
        let bigEndian = array("crs", dtype: .integer(size: 4, signed: true, bigEndian: true), shape: [], chunks: [], entries: [.inline([0, 0, 0, 7])])
        let dataset = VirtualDataset(objects: [ObjectInfo(url: "a.nc", size: 1 << 20)], groups: [VirtualGroup(path: "", attributes: [])], arrays: [bigEndian])
        let (view, warnings) = try NetCDFCSpelling.decodedView(dataset)
        XCTAssertEqual(warnings, [])
        let crs = try XCTUnwrap(view.dataset.array("crs"))
        XCTAssertEqual(crs.dtype.v2, .string("<i4"))
        XCTAssertEqual(crs.manifest[0], .inline([7, 0, 0, 0]))
    }
}
