import JSONValue
@testable import VirtualZarr
import XCTest

/// `SharedDescriptions`: files that describe a variable alike hold one description, and no
/// value changes by sharing or by changing a shared one later.
final class SharedDescriptionsTests: XCTestCase {
    private func file(_ day: Int, units: String = "K", offset: UInt64 = 4096) -> VirtualDataset {
        var manifest = ChunkManifest(gridShape: [1, 1, 1])
        manifest[0] = .reference(object: 0, offset: offset + UInt64(day), length: 100)
        let t2 = VirtualArray(
            path: "T2", dtype: .float(size: 4), shape: [1, 250, 320], chunkShape: [1, 250, 320],
            codecs: [.shuffle(elementSize: 4), .zlib(level: 4)], fillValue: .double(9.96921e36), fillBytes: [0, 0, 0, 0],
            dimensionNames: ["Time", "south_north", "west_east"],
            attributes: [("units", .string(units)), ("description", .string("TEMP at 2 M"))], manifest: manifest,
            origin: "day-\(day).nc")
        var dataset = VirtualDataset(
            objects: [ObjectInfo(url: "/archive/day-\(day).nc", size: 1 << 20)],
            groups: [VirtualGroup(path: "", attributes: [("TITLE", .string("WRF"))])], arrays: [t2])
        dataset.unlimitedDimensions = ["Time"]
        return dataset
    }

    func testEqualDescriptionsAreHeldOnceAndKeepEveryValue() {
        var shared = SharedDescriptions()
        var first = file(0), second = file(1)
        let before = second
        shared.compact(&first)
        shared.compact(&second)
        XCTAssertTrue(first.arrays[0].described === second.arrays[0].described, "one description for both files")
        XCTAssertEqual(second.arrays[0].attributes.map(\.0), before.arrays[0].attributes.map(\.0))
        XCTAssertEqual(second.arrays[0].attributes.map(\.1), before.arrays[0].attributes.map(\.1))
        XCTAssertEqual(second.arrays[0].codecs, before.arrays[0].codecs)
        XCTAssertEqual(second.arrays[0].shape, [1, 250, 320])
        XCTAssertEqual(second.arrays[0].manifest, before.arrays[0].manifest, "the chunks stay the file's own")
        XCTAssertEqual(second.arrays[0].origin, "day-1.nc")
        XCTAssertEqual(second.groups[0].attributes.map(\.1), [.string("WRF")])
        XCTAssertEqual(second.unlimitedDimensions, ["Time"])
    }

    func testChangingASharedDescriptionCopiesItFirst() {
        var shared = SharedDescriptions()
        var first = file(0), second = file(1)
        shared.compact(&first)
        shared.compact(&second)
        second.arrays[0].attributes.append(("coordinates", .string("XLONG XLAT")))
        second.arrays[0].path = "T2m"
        XCTAssertFalse(first.arrays[0].described === second.arrays[0].described)
        XCTAssertEqual(first.arrays[0].attributes.count, 2, "the other file's description is untouched")
        XCTAssertEqual(first.arrays[0].path, "T2")
        XCTAssertEqual(second.arrays[0].attributes.count, 3)
        XCTAssertEqual(second.arrays[0].path, "T2m")
    }

    func testADifferentDescriptionIsKeptAndSharedByTheFilesAfterIt() {
        var shared = SharedDescriptions()
        var days = [file(0), file(1, units: "degC"), file(2, units: "degC"), file(3)]
        for index in days.indices { shared.compact(&days[index]) }
        XCTAssertFalse(days[0].arrays[0].described === days[1].arrays[0].described)
        XCTAssertTrue(days[1].arrays[0].described === days[2].arrays[0].described, "changed files share the change")
        XCTAssertEqual(days.map { $0.arrays[0].attributes[0].1 }, [.string("K"), .string("degC"), .string("degC"), .string("K")])
    }

    func testARegriddedArrayIsNeverShared() {
        var shared = SharedDescriptions()
        var first = file(0), second = file(1)
        let source = Regridding.Source(
            origin: [0, 0, 0], shape: [1, 250, 320], chunkShape: [1, 250, 320], codecs: [], manifest: first.arrays[0].manifest,
            fillBytes: [0, 0, 0, 0])
        first.arrays[0].regridding = Regridding(sources: [source], itemSize: 4)
        second.arrays[0].regridding = Regridding(sources: [source], itemSize: 4)
        shared.compact(&first)
        shared.compact(&second)
        XCTAssertFalse(first.arrays[0].described === second.arrays[0].described)
    }
}
