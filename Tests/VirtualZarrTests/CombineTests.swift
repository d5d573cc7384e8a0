@testable import VirtualZarr
import XCTest
import JSONValue

final class CombineTests: XCTestCase {
    private func array(_ name: String, length: UInt64, chunk: UInt64, codecs: [Codec] = [], object: UInt32 = 0) -> VirtualArray {
        var manifest = ChunkManifest(gridShape: [Int((length + chunk - 1) / chunk), 1])
        for i in 0..<manifest.count { manifest[i] = .reference(object: object, offset: 1000 + UInt64(i) * 100, length: 100) }
        return VirtualArray(
            path: name, dtype: ZarrDataType.float(size: 4),
            shape: [length, 10], chunkShape: [chunk, 10], codecs: codecs, fillValue: .null, fillBytes: [0, 0, 0, 0],
            dimensionNames: ["time", "x"], attributes: [], manifest: manifest, origin: name)
    }

    private func part(_ name: String, _ arrays: [VirtualArray], attributes: [(String, JSON)] = []) -> (name: String, dataset: VirtualDataset) {
        (name, VirtualDataset(objects: [ObjectInfo(url: name, size: 1)], groups: [VirtualGroup(path: "", attributes: attributes)], arrays: arrays))
    }

    func testAlignedChunksAreOffsetAndObjectsRemapped() throws {
        let combined = try Combiner.combine(
            [part("a.nc", [array("v", length: 6, chunk: 3)]), part("b.nc", [array("v", length: 4, chunk: 3)])],
            options: CombineOptions(concatDimension: "time"))
        let v = try XCTUnwrap(combined.array("v"))
        XCTAssertEqual(v.shape, [10, 10])
        XCTAssertEqual(v.manifest.gridShape, [4, 1])
        XCTAssertEqual(v.manifest[2], .reference(object: 1, offset: 1000, length: 100))
        XCTAssertEqual(v.manifest[3], .reference(object: 1, offset: 1100, length: 100))
    }

    func testPerFileLayoutPutsEachFileInAGroupNamedAfterIt() throws {
        var options = CombineOptions()
        options.layout = .perFile
        let nested = try Combiner.combine(
            [
                part("/x/day.nc", [array("v", length: 6, chunk: 3)], attributes: [("title", .string("x"))]),
                part("s3://b/y/day.nc", [array("v", length: 4, chunk: 3)]),
                part("http://h/z.h5", [array("w", length: 3, chunk: 3)]),
            ], options: options)
        // Two files named day: each group is named by the file's path, which its attribute gives.
        XCTAssertEqual(nested.groups.map(\.path), ["", "x_day", "b_y_day", "z"])
        XCTAssertEqual(nested.groups[1].attributes.map(\.0), ["title", "zarrmount_source"])
        XCTAssertEqual(nested.groups.map { $0.attributes.first { $0.0 == "zarrmount_source" }?.1.stringValue }, [nil, "x/day.nc", "b/y/day.nc", "h/z.h5"])
        XCTAssertEqual(nested.arrays.map(\.path), ["x_day/v", "b_y_day/v", "z/w"])
        XCTAssertEqual(nested.objects.map(\.url), ["/x/day.nc", "s3://b/y/day.nc", "http://h/z.h5"])
        XCTAssertEqual(nested.arrays[1].manifest[0], .reference(object: 1, offset: 1000, length: 100))
        XCTAssertEqual(nested.arrays[2].manifest[0], .reference(object: 2, offset: 1000, length: 100))
        XCTAssertEqual(nested.arrays[0].shape, [6, 10], "nothing is concatenated")
    }

    func testPerFileGroupsOfFilesSharingAStemAreNamedByTheirPaths() throws {
        var options = CombineOptions()
        options.layout = .perFile
        let nested = try Combiner.combine(
            [
                part("/data/2020/01/out.nc", [array("v", length: 1, chunk: 1)]),
                part("/data/2020/02/../02/out.nc", [array("v", length: 1, chunk: 1)]),
                part("/data/2020/02/out.h5", [array("v", length: 1, chunk: 1)]),
                part("/data/2020/03/other.nc", [array("v", length: 1, chunk: 1)]),
            ], options: options)
        // out.nc twice: by path; 02/out.nc beside 02/out.h5: by path with the extension.
        XCTAssertEqual(nested.groups.map(\.path), ["", "01_out", "02_out.nc", "02_out.h5", "other"])
        XCTAssertEqual(
            nested.groups.dropFirst().map { $0.attributes.first { $0.0 == "zarrmount_source" }?.1.stringValue },
            ["01/out.nc", "02/out.nc", "02/out.h5", "03/other.nc"])
        XCTAssertEqual(Combiner.relativePaths(["/data/x.nc"]), ["x.nc"])
    }

    func testAVariableWithoutTheConcatDimensionStoredOtherwiseIsTheFirstFilesUnderAnExplicitCompat() throws {
        // "x" is not the concat dimension: one file's version of v is served.
        var bigEndian = array("v", length: 2, chunk: 2)
        bigEndian.dtype = ZarrDataType(v2: ">f4")!
        let parts = [
            part("a.nc", [array("v", length: 2, chunk: 2, codecs: [.zlib(level: 4)])]),
            part("b.nc", [array("v", length: 2, chunk: 1, object: 0)]), part("c.nc", [bigEndian]),
        ]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "y")))
        XCTAssertThrowsError(try Combiner.combine([parts[0], parts[2]], options: CombineOptions(concatDimension: "y"))) { error in
            XCTAssertTrue("\(error)".contains("<f4 in a.nc but >f4 in c.nc. If the files hold the same values in both byte orders"), "\(error)")
        }
        for compat in [CompatPolicy.override, .equals] {
            var options = CombineOptions(concatDimension: "y")
            options.compat = compat
            let combined = try Combiner.combine(parts, options: options)
            XCTAssertEqual(combined.array("v")?.codecs, [.zlib(level: 4)], "\(compat)")
            XCTAssertEqual(combined.array("v")?.chunkShape, [2, 10], "\(compat)")
        }
    }

    func testAFileWithNothingAlongTheConcatDimensionIsNamedAsSuch() {
        var lon = array("lon", length: 2, chunk: 2)
        lon.dimensionNames = ["x", "y"]
        let parts = [part("day_1.nc", [array("v", length: 2, chunk: 1)]), part("grid.nc", [lon]), part("day_2.nc", [array("v", length: 2, chunk: 1)])]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertEqual(error as? CombineError, .fileWithoutDimension(file: "grid.nc", dimension: "time", holder: "day_1.nc"))
            XCTAssertTrue("\(error)".contains("Leave it out of the sources"), "\(error)")
        }
    }

    func testOversizedUnfilteredChunksUseTheLeadingBytes() throws {
        let combined = try Combiner.combine(
            [part("a.nc", [array("v", length: 1, chunk: 1024)]), part("b.nc", [array("v", length: 1, chunk: 1024)])],
            options: CombineOptions(concatDimension: "time"))
        let v = try XCTUnwrap(combined.array("v"))
        XCTAssertEqual(v.chunkShape, [1, 10])
        XCTAssertEqual(v.manifest[1], .reference(object: 1, offset: 1000, length: 40), "one row of 10 float32 values")
    }

    func testMisalignedOrCompressedChunksAreErrorsNamingVariableAndFiles() {
        XCTAssertThrowsError(
            try Combiner.combine(
                [part("a.nc", [array("v", length: 4, chunk: 3)]), part("b.nc", [array("v", length: 4, chunk: 3)])],
                options: CombineOptions(concatDimension: "time"))
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("variable v") && text.contains("a.nc") && text.contains("[3, 10]"), text)
        }
        XCTAssertThrowsError(
            try Combiner.combine(
                [
                    part("a.nc", [array("v", length: 1, chunk: 8, codecs: [.zlib(level: 4)])]),
                    part("b.nc", [array("v", length: 1, chunk: 8, codecs: [.zlib(level: 4)])]),
                ],
                options: CombineOptions(concatDimension: "time"))
        ) { error in
            XCTAssertTrue("\(error)".contains("compressed chunks cannot be cut"), "\(error)")
        }
        XCTAssertThrowsError(
            try Combiner.combine(
                [
                    part("a.nc", [array("v", length: 3, chunk: 3, codecs: [.zlib(level: 4)])]),
                    part("b.nc", [array("v", length: 3, chunk: 3)]),
                ],
                options: CombineOptions(concatDimension: "time"))
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("variable v is compressed differently in a.nc (zlib level 4) and b.nc (no compression or filters)"), text)
            guard case .variableDisagrees(let variable, let files, _)? = error as? CombineError else {
                return XCTFail("expected CombineError.variableDisagrees, got \(error)")
            }
            XCTAssertEqual(variable, "v")
            XCTAssertEqual(files, ["a.nc", "b.nc"])
        }
    }

    func testConcatenationAlongATrailingAxisPlacesEachFilesChunksAndObjects() throws {
        func trailing(_ length: UInt64) -> VirtualArray {
            var manifest = ChunkManifest(gridShape: [2, Int(length / 2)])
            for i in 0..<manifest.count { manifest[i] = .reference(object: 0, offset: UInt64(i) * 100, length: 100) }
            return VirtualArray(
                path: "v", dtype: ZarrDataType.float(size: 4),
                shape: [4, length], chunkShape: [2, 2], codecs: [], fillValue: .null, fillBytes: [0, 0, 0, 0],
                dimensionNames: ["x", "time"], attributes: [], manifest: manifest, origin: "v")
        }
        let combined = try Combiner.combine(
            [part("a.nc", [trailing(4)]), part("b.nc", [trailing(2)]), part("c.nc", [trailing(4)])],
            options: CombineOptions(concatDimension: "time"))
        let v = try XCTUnwrap(combined.array("v"))
        XCTAssertEqual(v.shape, [4, 10])
        XCTAssertEqual(v.manifest.gridShape, [2, 5])
        // Row 0 of the grid: a's two chunks, b's one, c's two; row 1 likewise, each file's second row.
        XCTAssertEqual(
            (0..<10).map { v.manifest[$0] },
            [
                .reference(object: 0, offset: 0, length: 100), .reference(object: 0, offset: 100, length: 100),
                .reference(object: 1, offset: 0, length: 100),
                .reference(object: 2, offset: 0, length: 100), .reference(object: 2, offset: 100, length: 100),
                .reference(object: 0, offset: 200, length: 100), .reference(object: 0, offset: 300, length: 100),
                .reference(object: 1, offset: 100, length: 100),
                .reference(object: 2, offset: 200, length: 100), .reference(object: 2, offset: 300, length: 100),
            ])
    }

    func testAVariableMissingFromSomeFilesIsAnErrorNamingThem() {
        let parts = [
            part("a.nc", [array("v", length: 3, chunk: 3), array("w", length: 3, chunk: 3)]),
            part("b.nc", [array("w", length: 3, chunk: 3)]),
            part("c.nc", [array("v", length: 3, chunk: 3), array("w", length: 3, chunk: 3)]),
            part("d.nc", [array("w", length: 3, chunk: 3)]),
        ]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertEqual("\(error)", "variable v has dimension time but is missing from b.nc, d.nc")
            XCTAssertEqual(
                error as? CombineError,
                .variableDisagrees(variable: "v", files: ["b.nc", "d.nc"], detail: "variable v has dimension time but is missing from b.nc, d.nc"))
        }
    }

    func testAttributePolicies() throws {
        let parts = [
            part("a.nc", [], attributes: [("title", .string("A")), ("source", .string("model"))]),
            part("b.nc", [], attributes: [("title", .string("B")), ("source", .string("model"))]),
        ]
        let first = try Combiner.combine(parts, options: CombineOptions(attributes: .first))
        XCTAssertEqual(first.groups[0].attributes.map(\.0), ["title", "source"])
        let dropped = try Combiner.combine(parts, options: CombineOptions(attributes: .dropConflicts))
        XCTAssertEqual(dropped.groups[0].attributes.map(\.0), ["source"])
    }
}
