@testable import HDF5Mapping
import JSONValue
@testable import VirtualZarr
import XCTest

final class CFTimeTests: XCTestCase {
    private func units(_ text: String, _ calendar: String? = nil) throws -> CFTimeUnits {
        try XCTUnwrap(CFTimeUnits(units: text, calendar: calendar), text)
    }

    func testReferenceInstantsDifferByCalendar() throws {
        let day = Int64(86_400_000_000)
        // 2030-02-28 to 2030-03-01: one day in every calendar but 360_day (two) and all_leap (two).
        for (calendar, days) in [("standard", 1), ("proleptic_gregorian", 1), ("julian", 1), ("noleap", 1), ("all_leap", 2), ("360_day", 3)] {
            let a = try units("days since 2030-02-28", calendar), b = try units("days since 2030-03-01", calendar)
            XCTAssertEqual(b.reference - a.reference, Int64(days) * day, calendar)
        }
        // 2000 is a leap year in the Gregorian calendars; 2100 only in the Julian one.
        XCTAssertEqual(try units("days since 2100-03-01", "julian").reference - units("days since 2100-02-28", "julian").reference, 2 * day)
        XCTAssertEqual(try units("days since 2100-03-01").reference - units("days since 2100-02-28").reference, day)
        // The standard calendar jumps from Julian 1582-10-04 to Gregorian 1582-10-15.
        XCTAssertEqual(try units("days since 1582-10-15").reference - units("days since 1582-10-04").reference, day)
        XCTAssertNil(CFTimeUnits(units: "days since 1582-10-10", calendar: "standard"))
        XCTAssertEqual(
            try units("days since 1582-10-15", "proleptic_gregorian").reference - units("days since 1582-10-04", "proleptic_gregorian").reference, 11 * day)
    }

    func testReferenceSpellings() throws {
        let plain = try units("hours since 2030-01-02 00:30:00")
        XCTAssertEqual(try units("hours since 2030-01-02T00:30:00Z").reference, plain.reference)
        XCTAssertEqual(try units("hours since 2030-1-2 0:30").reference, plain.reference)
        XCTAssertEqual(try units("hours since 2030-01-02 00:30:00 UTC").reference, plain.reference)
        XCTAssertEqual(try units("hours since 2030-01-02 05:30:00 +05:00").reference, plain.reference)
        XCTAssertEqual(try units("hours since 2030-01-02 00:30:00.5").reference, plain.reference + 500_000)
        XCTAssertEqual(try units("seconds since 2030-01-02").unit, .seconds)
        XCTAssertEqual(try units("days since 1970-01-01", "365_day").calendar, .noleap)
        XCTAssertEqual(try units("days since 1970-01-01", "gregorian").calendar, .standard)
        for bad in [
            "months since 2030-01-01", "hours after 2030-01-01", "hours since 2030-13-01", "hours since 2030-02-30",
            "hours since yesterday", "hours since 2030-01-01 25:61", "hours",
        ] {
            XCTAssertNil(CFTimeUnits(units: bad, calendar: nil), bad)
        }
        XCTAssertNil(CFTimeUnits(units: "hours since 2030-01-01", calendar: "lunar"))
    }

    func testConversionIsExactWhenShiftsAreWhole() throws {
        let first = try units("hours since 2030-01-01"), third = try units("hours since 2030-01-03")
        let conversion = CFTimeConversion(from: third, to: first)
        XCTAssertTrue(conversion.isExactForIntegers)
        XCTAssertEqual(conversion.convert(Int64(6)), 54)
        XCTAssertEqual(CFTimeConversion(from: try units("days since 2030-01-02"), to: first).convert(Int64(1)), 48)
        let halfHour = CFTimeConversion(from: try units("hours since 2030-01-02 00:30:00"), to: first)
        XCTAssertFalse(halfHour.isExactForIntegers)
        XCTAssertNil(halfHour.convert(Int64(0)))
        XCTAssertEqual(halfHour.convert(0.0), 24.5)
        XCTAssertFalse(CFTimeConversion(from: try units("minutes since 2030-01-01"), to: first).isExactForIntegers)
    }
}

final class CombineRulesTests: XCTestCase {
    private let int32 = ZarrDataType.integer(size: 4, signed: true)

    private func coordinate(_ name: String, _ values: [Int32], units: String? = nil, calendar: String? = nil) -> VirtualArray {
        var manifest = ChunkManifest(gridShape: [1])
        manifest[0] = .inline(values.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: value) >> UInt32(8 * $0)) } })
        var attributes: [(String, JSON)] = []
        if let units { attributes.append(("units", .string(units))) }
        if let calendar { attributes.append(("calendar", .string(calendar))) }
        return VirtualArray(
            path: name, dtype: int32, shape: [UInt64(values.count)], chunkShape: [UInt64(values.count)], codecs: [],
            fillValue: .null, fillBytes: nil, dimensionNames: [name], attributes: attributes, manifest: manifest, origin: name)
    }

    private func variable(
        _ name: String, _ dimensions: [String], length: UInt64 = 4, object: UInt32 = 0,
        attributes: [(String, JSON)] = []
    ) -> VirtualArray {
        var manifest = ChunkManifest(gridShape: [1, 1])
        manifest[0] = .reference(object: object, offset: 100, length: 40)
        return VirtualArray(
            path: name, dtype: int32, shape: [length, 3], chunkShape: [length, 3], codecs: [], fillValue: .null,
            fillBytes: nil, dimensionNames: dimensions, attributes: attributes, manifest: manifest, origin: name)
    }

    private func part(_ name: String, _ arrays: [VirtualArray], unlimited: [String] = []) -> (name: String, dataset: VirtualDataset) {
        var dataset = VirtualDataset(objects: [ObjectInfo(url: name, size: 1)], arrays: arrays)
        dataset.unlimitedDimensions = unlimited
        return (name, dataset)
    }

    private func values(_ array: VirtualArray) -> [Double] {
        guard case .inline(let bytes) = array.manifest[0] else { return [] }
        return NumericValues.doubles(bytes, dtype: array.dtype, count: Int(array.shape[0])) ?? []
    }

    func testTheDifferingCoordinateIsTheConcatDimension() throws {
        var parts: [(name: String, dataset: VirtualDataset)] = []
        for day in 0..<3 {
            let time = coordinate("time", [Int32(day * 4), Int32(day * 4 + 1)])
            let lat = coordinate("lat", [10, 20, 30])
            parts.append(part("d\(day).nc", [time, lat, variable("t2", ["time", "lat"], length: 2)]))
        }
        XCTAssertEqual(try CombineRules.inferConcatDimension(parts, compat: nil), ConcatInference(dimension: "time", reason: .coordinateDiffers))
    }

    func testTheSameInstantsInOtherUnitsDoNotDiffer() throws {
        let parts = [
            part("a.nc", [coordinate("time", [24], units: "hours since 2030-01-01"), variable("t2", ["time", "x"], length: 1)]),
            part("b.nc", [coordinate("time", [0], units: "hours since 2030-01-02"), variable("t2", ["time", "x"], length: 1)]),
        ]
        XCTAssertThrowsError(try CombineRules.inferConcatDimension(parts, compat: nil)) { error in
            XCTAssertTrue("\(error)".contains("cannot tell how to combine 2 files"), "\(error)")
            XCTAssertTrue("\(error)".contains("every file has the same time values"), "\(error)")
        }
    }

    func testTheUnlimitedDimensionWithoutCoordinateIsChosenWhenNoCoordinateDiffers() throws {
        let parts = (0..<2).map { part("wrf\($0).nc", [variable("T2", ["Time", "south_north"], length: 1)], unlimited: ["Time"]) }
        XCTAssertEqual(
            try CombineRules.inferConcatDimension(parts, compat: nil),
            ConcatInference(dimension: "Time", reason: .unlimitedWithoutCoordinate))
    }

    func testSharedVariablesWithoutAnythingToConcatenateAlongAreAnError() throws {
        let parts = (0..<2).map { part("m\($0).nc", [coordinate("time", [0, 6]), variable("t2", ["time", "x"], length: 2)]) }
        XCTAssertThrowsError(try CombineRules.inferConcatDimension(parts, compat: nil)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("variable t2 is in both m0.nc and m1.nc"), text)
            XCTAssertTrue(text.contains("Dimensions every file has: time, x"), text)
            XCTAssertTrue(text.contains("--concat-dim"), text)
        }
        // The user may ask for the first file's variables, and files holding different variables merge.
        XCTAssertNil(try CombineRules.inferConcatDimension(parts, compat: .override))
        let merging = [
            part("u.nc", [coordinate("time", [0]), variable("u", ["time", "x"], length: 1)]),
            part("v.nc", [coordinate("time", [0]), variable("v", ["time", "x"], length: 1)]),
        ]
        XCTAssertNil(try CombineRules.inferConcatDimension(merging, compat: nil))
    }

    func testTwoDifferingCoordinatesAreAnError() throws {
        let parts = (0..<2).map { tile in
            part("tile\(tile).nc", [coordinate("time", [Int32(tile)]), coordinate("lat", [Int32(tile * 10)]), variable("v", ["time", "lat"], length: 1)])
        }
        XCTAssertThrowsError(try CombineRules.inferConcatDimension(parts, compat: nil)) { error in
            XCTAssertTrue(
                "\(error)".contains("the coordinates of time (tile0.nc and tile1.nc differ), lat (tile0.nc and tile1.nc differ) all differ"), "\(error)")
        }
    }

    func testADimensionCoordinateOtherThanTheConcatDimensionMustAgree() throws {
        func day(_ index: Int, lat: [Int32], latUnits: String? = "degrees_north") -> (name: String, dataset: VirtualDataset) {
            part(
                "d\(index).nc",
                [
                    coordinate("time", [Int32(index)]), coordinate("lat", lat, units: latUnits),
                    variable("t2", ["time", "lat"], length: 1),
                ])
        }
        // Every time value differs (it is the concat dimension); lat agrees: nothing to say.
        XCTAssertNoThrow(try CombineRules.checkUnconcatenatedValuesAgree((0..<3).map { day($0, lat: [10, 20]) }, concatDimension: "time"))
        // The third file's grid is shifted: its values would be labelled with the first file's lat.
        let shifted = [day(0, lat: [10, 20]), day(1, lat: [10, 20]), day(2, lat: [10, 25])]
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree(shifted, concatDimension: "time")) { error in
            guard case .coordinateConflict(let coordinate, let files, let detail) = error as? CombineError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(coordinate, "lat")
            XCTAssertEqual(files, ["d0.nc", "d2.nc"])
            XCTAssertTrue(detail.contains("at index 1: 20 against 25"), detail)
            XCTAssertTrue(detail.contains("--layout per_file") && detail.contains("--compat override"), detail)
        }
        // The same values in other units are another grid too; so is another length.
        XCTAssertThrowsError(
            try CombineRules.checkUnconcatenatedValuesAgree([day(0, lat: [10, 20]), day(1, lat: [10, 20], latUnits: "radians")], concatDimension: "time")
        ) { error in XCTAssertTrue("\(error)".contains("units degrees_north against radians"), "\(error)") }
        XCTAssertThrowsError(
            try CombineRules.checkUnconcatenatedValuesAgree([day(0, lat: [10, 20]), day(1, lat: [10, 20, 30])], concatDimension: "time"))
        // The same values in another byte order (a netCDF-3 file among netCDF-4 ones) agree.
        var bigEndian = day(1, lat: [10, 20])
        for index in bigEndian.dataset.arrays.indices where bigEndian.dataset.arrays[index].path == "lat" {
            bigEndian.dataset.arrays[index].dtype.bigEndian = true
            bigEndian.dataset.arrays[index].manifest[0] = .inline([0, 0, 0, 10, 0, 0, 0, 20])
        }
        XCTAssertNoThrow(try CombineRules.checkUnconcatenatedValuesAgree([day(0, lat: [10, 20]), bigEndian], concatDimension: "time"))
        // A scalar read with the scan that differs would be one file's for all; one that was not
        // read (a reference to the file's bytes) is compared by its storage, here alike.
        func run(_ index: Int, reference: [Int32]?) -> (name: String, dataset: VirtualDataset) {
            var scalar = coordinate("reftime", reference ?? [0])
            scalar.shape = []
            scalar.chunkShape = []
            scalar.dimensionNames = []
            scalar.manifest = ChunkManifest(gridShape: [])
            scalar.manifest[0] = reference == nil ? .reference(object: 0, offset: 64, length: 4) : coordinate("x", reference!).manifest[0]
            var file = day(index, lat: [10, 20])
            file.dataset.arrays.append(scalar)
            return file
        }
        XCTAssertNoThrow(try CombineRules.checkUnconcatenatedValuesAgree([run(0, reference: [6]), run(1, reference: [6])], concatDimension: "time"))
        XCTAssertNoThrow(try CombineRules.checkUnconcatenatedValuesAgree([run(0, reference: nil), run(1, reference: nil)], concatDimension: "time"))
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree([run(0, reference: [6]), run(1, reference: [18])], concatDimension: "time")) {
            error in
            guard case .variableDisagrees(let variable, let files, let detail) = error as? CombineError else { return XCTFail("\(error)") }
            XCTAssertEqual(variable, "reftime")
            XCTAssertEqual(files, ["d0.nc", "d1.nc"])
            XCTAssertTrue(detail.contains("at index 0: 6 against 18") && detail.contains("--drop-variables reftime"), detail)
        }
        // Along a new stacking dimension, time is compared like any other coordinate.
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree((0..<2).map { day($0, lat: [10, 20]) }, concatDimension: "member")) {
            error in XCTAssertEqual((error as? CombineError).map { if case .coordinateConflict(let name, _, _) = $0 { name } else { "" } }, "time")
        }
    }

    func testAVariableWhoseValuesWereNotReadIsComparedByItsStorage() throws {
        // A 2-D latitude without time, zlib-compressed in two chunks: not read with the scan.
        func swath(
            _ index: Int, lengths: [UInt64] = [700, 650], codecs: [Codec] = [.shuffle(elementSize: 4), .zlib(level: 4)]
        )
            -> (name: String, dataset: VirtualDataset)
        {
            var manifest = ChunkManifest(gridShape: [2, 1])
            manifest[0] = .reference(object: 0, offset: 1000, length: lengths[0])
            manifest[1] = .reference(object: 0, offset: 1000 + lengths[0], length: lengths[1])
            let lat = VirtualArray(
                path: "lat2d", dtype: int32, shape: [200, 100], chunkShape: [100, 100], codecs: codecs, fillValue: .null, fillBytes: nil,
                dimensionNames: ["y", "x"], attributes: [("units", .string("degrees_north"))], manifest: manifest, origin: "lat2d")
            return part("g\(index).nc", [coordinate("time", [Int32(index)]), lat])
        }
        XCTAssertNoThrow(try CombineRules.checkUnconcatenatedValuesAgree([swath(0), swath(1)], concatDimension: "time"))
        // A chunk whose compressed length differs holds other values.
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree([swath(0), swath(1), swath(2, lengths: [700, 651])], concatDimension: "time")) {
            error in
            guard case .variableDisagrees(let variable, let files, let detail) = error as? CombineError else { return XCTFail("\(error)") }
            XCTAssertEqual(variable, "lat2d")
            XCTAssertEqual(files, ["g0.nc", "g2.nc"])
            XCTAssertTrue(detail.contains("chunk 1 holds 650 stored bytes against 651"), detail)
            for way in ["--compat equals", "--compat override", "--drop-variables lat2d", "--layout per_file"] {
                XCTAssertTrue(detail.contains(way), detail)
            }
        }
        // Another compression or another chunk written is another storage too.
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree([swath(0), swath(1, codecs: [.zlib(level: 4)])], concatDimension: "time"))
        var unwritten = swath(1)
        unwritten.dataset.arrays[1].manifest[1] = .missing
        XCTAssertThrowsError(try CombineRules.checkUnconcatenatedValuesAgree([swath(0), unwritten], concatDimension: "time")) { error in
            XCTAssertTrue("\(error)".contains("2 chunks written against 1"), "\(error)")
        }

        // Alike in length, the versions are sampled: zlib chunks by the Adler-32 ending each.
        let samples = CombineRules.storedSamples([swath(0), swath(1), swath(2)], concatDimension: "time")
        XCTAssertEqual(samples.map(\.other), [1, 2])
        XCTAssertEqual(samples.map(\.first), [0, 0])
        XCTAssertEqual(samples[0].firstRanges, [.init(object: 0, range: 1696..<1700), .init(object: 0, range: 2346..<2350)])
        // Uncompressed chunks have no checksum: the first bytes of the first and the last of the last.
        let raw = CombineRules.storedSamples(
            [swath(0, lengths: [40_000, 40_000], codecs: []), swath(1, lengths: [40_000, 40_000], codecs: [])], concatDimension: "time")
        XCTAssertEqual(raw.first?.otherRanges, [.init(object: 0, range: 1000..<5096), .init(object: 0, range: 76_904..<81_000)])
        // A small chunk is read whole, once.
        XCTAssertEqual(
            CombineRules.storedSamples([swath(0, lengths: [100, 100], codecs: []), swath(1, lengths: [100, 100], codecs: [])], concatDimension: "time")
                .first?.otherRanges, [.init(object: 0, range: 1000..<1200)])
        // Values read with the scan (the time coordinate) and the concat dimension's variables are not sampled.
        XCTAssertEqual(CombineRules.storedSamples([swath(0), swath(1)], concatDimension: "y"), [])
    }

    func testAFileWithNoStepAlongTheConcatDimensionIsLeftOut() {
        func day(_ name: String, steps: UInt64, extra: [VirtualArray] = []) -> (name: String, dataset: VirtualDataset) {
            var time = coordinate("time", (0..<Int32(steps)).map { $0 })
            time.shape = [steps]
            return part(name, [time, coordinate("lat", [10, 20]), variable("t2", ["time", "lat"], length: steps)] + extra)
        }
        let (kept, empty) = CombineRules.droppingEmptyParts([day("a.nc", steps: 2), day("b.nc", steps: 0), day("c.nc", steps: 2)], along: "time")
        XCTAssertEqual(kept.map(\.name), ["a.nc", "c.nc"])
        XCTAssertEqual(empty, ["b.nc"])
        // Not when it is the only holder of a variable, nor when every file is empty.
        let only = CombineRules.droppingEmptyParts(
            [day("a.nc", steps: 2), day("b.nc", steps: 0, extra: [coordinate("orography", [5])])], along: "time")
        XCTAssertEqual(only.parts.map(\.name), ["a.nc", "b.nc"])
        XCTAssertEqual(only.empty, [])
        XCTAssertEqual(CombineRules.droppingEmptyParts([day("a.nc", steps: 0), day("b.nc", steps: 0)], along: "time").parts.count, 2)
        // A file without the dimension at all is not empty along it (the combiner reports it).
        XCTAssertEqual(CombineRules.droppingEmptyParts([day("a.nc", steps: 2), part("b.nc", [coordinate("lat", [10, 20])])], along: "time").empty, [])
    }

    func testTimeVariablesAlongTheConcatDimensionAreReadUpToTheLimit() {
        var options = MappingOptions()
        options.timeVariablesAlong = "time"
        let f8 = ZarrDataType.float(size: 8)
        // XTIME(time) in minutes since its run's start: read; T2(time) in K: not.
        XCTAssertEqual(options.comparedValuesLimit(name: "XTIME", dimensions: ["time"], dtype: f8, shape: [24], units: "minutes since 2030-01-01"), 1 << 20)
        XCTAssertNil(options.comparedValuesLimit(name: "T2", dimensions: ["time"], dtype: f8, shape: [24], units: "K"))
        // The coordinate's bounds, with the coordinate's units: read when they fit the limit,
        // counted over both axes (65,536 x 2 values of 8 bytes are 1 MiB; one row more is not).
        let coordinate: [(String, JSON)] = [("units", .string("hours since 2030-01-01")), ("bounds", .string("time_bnds"))]
        let time = options.timeUnits(name: "time_bnds", own: [], coordinate: coordinate)
        XCTAssertEqual(time.units, "hours since 2030-01-01")
        XCTAssertTrue(time.isConcatBounds)
        for (rows, limit) in [(UInt64(65_536), 1 << 20 as Int?), (65_537, nil)] {
            XCTAssertEqual(
                options.comparedValuesLimit(
                    name: "time_bnds", dimensions: ["time", "nv"], dtype: f8, shape: [rows, 2], units: time.units, isConcatBounds: true), limit)
        }
        // A 2-D variable that is not the bounds is not read; nor anything without a named concat dimension.
        XCTAssertNil(options.comparedValuesLimit(name: "XTIME", dimensions: ["time", "x"], dtype: f8, shape: [2, 3], units: "minutes since 2030-01-01"))
        XCTAssertFalse(options.timeUnits(name: "lat_bnds", own: [], coordinate: coordinate).isConcatBounds)
        options.timeVariablesAlong = nil
        XCTAssertNil(options.comparedValuesLimit(name: "XTIME", dimensions: ["time"], dtype: f8, shape: [24], units: "minutes since 2030-01-01"))
    }

    func testAFileChunkedOtherwiseAlongTheConcatDimensionIsRefused() throws {
        // Two steps in one chunk, then one step in a chunk of one: the second file's chunk would
        // be put in a slot of two steps.
        let parts = [
            part("a.nc", [coordinate("time", [0, 1]), variable("t2", ["time", "x"], length: 2)]),
            part("b.nc", [coordinate("time", [2]), variable("t2", ["time", "x"], length: 1, object: 0)]),
        ]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue("\(error)".contains("cannot concatenate variable t2 along time: chunks do not line up"), "\(error)")
            XCTAssertTrue("\(error)".contains("--decoded"), "\(error)")
        }
    }

    func testVariableLengthStringChunksJoinAndRefuseACountThatIsNotTheirs() {
        let first = VLenUTF8.encode(["a", "évening"]), second = VLenUTF8.encode(["", "z"])
        XCTAssertEqual(VLenUTF8.concatenated([first, second], counts: [2, 2]), VLenUTF8.encode(["a", "évening", "", "z"]))
        XCTAssertNil(VLenUTF8.concatenated([first, second], counts: [2, 3]))
        XCTAssertNil(VLenUTF8.concatenated([first, [1, 0]], counts: [2, 1]), "a chunk too short to hold its count")
    }

    func testAMisspelledConcatDimensionSuggestsTheRealOne() throws {
        let parts = [part("a.nc", [coordinate("Time", [0]), variable("T2", ["Time", "south_north"], length: 1)])]
        XCTAssertThrowsError(try CombineRules.checkConcatDimension("time", parts: parts)) { error in
            XCTAssertEqual("\(error)", "--concat-dim time: no file has a dimension time; did you mean Time? The files' dimensions: Time, south_north")
        }
        XCTAssertThrowsError(try CombineRules.checkConcatDimension("Tiem", parts: parts)) { error in
            XCTAssertTrue("\(error)".contains("did you mean Time?"), "\(error)")
        }
        XCTAssertThrowsError(try CombineRules.checkConcatDimension("member", parts: parts)) { error in
            XCTAssertFalse("\(error)".contains("did you mean"), "\(error)")
        }
        XCTAssertNoThrow(try CombineRules.checkConcatDimension("Time", parts: parts))
        XCTAssertThrowsError(try CombineRules.checkStackDimension("Time", parts: parts))
        XCTAssertNoThrow(try CombineRules.checkStackDimension("member", parts: parts))
    }

    func testTimeCoordinatesAreReencodedInTheFirstFilesUnits() throws {
        let parts = (0..<3).map { day in
            part("d\(day).nc", [coordinate("time", [0, 6, 12, 18], units: "hours since 2030-01-0\(day + 1)")])
        }
        let combined = try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))
        let time = try XCTUnwrap(combined.array("time"))
        XCTAssertEqual(time.dtype, int32)
        XCTAssertEqual(values(time), [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60, 66])
        XCTAssertEqual(time.attributes.first { $0.0 == "units" }?.1, .string("hours since 2030-01-01"))
        XCTAssertTrue(combined.notes.contains { $0.contains("re-encoded") }, "\(combined.notes)")
    }

    func testACoordinateStoredAsOtherNumbersIsServedInOneExactType() throws {
        func stored(_ dtype: ZarrDataType, _ bytes: [UInt8], count: UInt64) -> VirtualArray {
            var array = coordinate("time", [0], units: "hours since 2030-01-01")
            array.dtype = dtype
            array.shape = [count]
            array.chunkShape = [count]
            array.manifest[0] = .inline(bytes)
            return array
        }
        let float64 = stored(.float(size: 8), NumericValues.encode([24, 36.5]), count: 2)
        let int64 = stored(.integer(size: 8, signed: true), NumericValues.encode([48, 60], as: .integer(size: 8, signed: true))!, count: 2)
        let first = part("a.nc", [coordinate("time", [0, 12], units: "hours since 2030-01-01")])
        let floats = try Combiner.combine([first, part("b.nc", [float64])], options: CombineOptions(concatDimension: "time"))
        XCTAssertEqual(floats.arrays[0].dtype, .float(size: 8))
        XCTAssertEqual(values(floats.arrays[0]), [0, 12, 24, 36.5])
        XCTAssertTrue(floats.notes.contains { $0.contains("stored as <i4 in a.nc but <f8 in b.nc; served as <f8") }, "\(floats.notes)")
        let integers = try Combiner.combine([first, part("c.nc", [int64])], options: CombineOptions(concatDimension: "time"))
        XCTAssertEqual(integers.arrays[0].dtype, .integer(size: 8, signed: true))
        XCTAssertEqual(values(integers.arrays[0]), [0, 12, 48, 60])
        // An int64 that float64 would round is refused, not served as a neighbouring instant.
        let huge = stored(
            .integer(size: 8, signed: true), NumericValues.encode([1 << 53 + 1], as: .integer(size: 8, signed: true))!, count: 1)
        XCTAssertThrowsError(try Combiner.combine([part("b.nc", [float64]), part("d.nc", [huge])], options: CombineOptions(concatDimension: "time"))) {
            XCTAssertTrue("\($0)".contains("9007199254740993 in d.nc has no exact float64"), "\($0)")
        }
    }

    func testShiftsThatAreNotWholeBecomeFloat64() throws {
        let parts = [
            part("a.nc", [coordinate("time", [0, 1], units: "hours since 2030-01-01")]),
            part("b.nc", [coordinate("time", [0, 1], units: "hours since 2030-01-01 02:30")]),
        ]
        let combined = try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))
        let time = try XCTUnwrap(combined.array("time"))
        XCTAssertEqual(time.dtype.v2String, "<f8")
        XCTAssertEqual(values(time), [0, 1, 2.5, 3.5])
        XCTAssertTrue(combined.notes.contains { $0.contains("float64") }, "\(combined.notes)")
    }

    func testDifferentCalendarsAreAnError() throws {
        let parts = [
            part("a.nc", [coordinate("time", [0], units: "days since 2030-01-01")]),
            part("b.nc", [coordinate("time", [0], units: "days since 2030-01-02", calendar: "noleap")]),
        ]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue("\(error)".contains("standard calendar in a.nc but the noleap calendar in b.nc"), "\(error)")
        }
        // Standard and proleptic Gregorian agree from 1582-10-15 on, and differ before.
        let reformed = [
            part("a.nc", [coordinate("time", [0], units: "days since 2030-01-01")]),
            part("b.nc", [coordinate("time", [0], units: "days since 2030-01-02", calendar: "proleptic_gregorian")]),
        ]
        let combined = try Combiner.combine(reformed, options: CombineOptions(concatDimension: "time"))
        XCTAssertEqual(values(combined.arrays[0]), [0, 1])
        let early = [
            part("a.nc", [coordinate("time", [0], units: "days since 1500-01-01", calendar: "proleptic_gregorian")]),
            part("b.nc", [coordinate("time", [0], units: "days since 2030-01-02")]),
        ]
        XCTAssertThrowsError(try Combiner.combine(early, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue("\(error)".contains("a.nc holds instants before 1582-10-15"), "\(error)")
        }
    }

    func testRepeatedInstantsAreAnErrorWhenOrderedByCoordinate() throws {
        let parts = [part("a.nc", [coordinate("time", [0, 6])]), part("b.nc", [coordinate("time", [6, 12])])]
        var options = CombineOptions(concatDimension: "time")
        options.orderedByCoordinate = true
        XCTAssertThrowsError(try Combiner.combine(parts, options: options)) { error in
            XCTAssertTrue("\(error)".contains("time does not increase from a.nc to b.nc (6 then 6)"), "\(error)")
        }
        // In name order an instant held by two files is an error too; files that only do not
        // increase get a note. A fill value (an instant never written) repeats harmlessly.
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue("\(error)".contains("time 6 is in both a.nc and b.nc"), "\(error)")
        }
        let backwards = [part("a.nc", [coordinate("time", [12, 18])]), part("b.nc", [coordinate("time", [0, 6])])]
        let inNameOrder = try Combiner.combine(backwards, options: CombineOptions(concatDimension: "time"))
        XCTAssertTrue(inNameOrder.notes.contains { $0.contains("--order coordinate") }, "\(inNameOrder.notes)")
        var gappy = [part("a.nc", [coordinate("time", [0, -1])]), part("b.nc", [coordinate("time", [6, -1])])]
        for index in gappy.indices { gappy[index].dataset.arrays[0].fillValue = .int(-1) }
        XCTAssertNoThrow(try Combiner.combine(gappy, options: CombineOptions(concatDimension: "time")))
    }

    func testFilesPackingAVariableDifferentlyAreAnError() throws {
        let parts = [
            part("a.nc", [coordinate("time", [0]), variable("t2", ["time", "x"], length: 1, attributes: [("scale_factor", .double(0.01))])]),
            part("b.nc", [coordinate("time", [1]), variable("t2", ["time", "x"], length: 1, attributes: [("scale_factor", .double(0.02))])]),
        ]
        XCTAssertThrowsError(try Combiner.combine(parts, options: CombineOptions(concatDimension: "time"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("variable t2 is encoded differently in a.nc and b.nc: scale_factor is 0.01 in a.nc but 0.02 in b.nc"), text)
            XCTAssertTrue(text.contains("--drop-variables t2"), text)
        }
    }

    func testFilesStoringAVariableWithOtherFiltersOrByteOrderAreServedDecodedThroughTheirOwn() throws {
        var plain = variable("v", ["time", "x"], length: 1, object: 0)
        plain.fillBytes = [1, 0, 0, 0]
        var compressed = variable("v", ["time", "x"], length: 1, object: 0)
        compressed.codecs = [.shuffle(elementSize: 4), .zlib(level: 4)]
        var bigEndian = variable("v", ["time", "x"], length: 1, object: 0)
        bigEndian.dtype = .integer(size: 4, signed: true, bigEndian: true)
        bigEndian.fillBytes = [0, 0, 0, 1]
        let parts = [
            part("a.nc", [coordinate("time", [0]), plain]), part("b.nc", [coordinate("time", [1]), compressed]),
            part("c.nc", [coordinate("time", [2]), bigEndian]),
        ]
        // Stored, one pipeline and one dtype per array: refused, in words, with the way out.
        XCTAssertThrowsError(try Combiner.combine(Array(parts.prefix(2)), options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue(
                "\(error)".contains("compressed differently in a.nc (no compression or filters) and b.nc (shuffle, zlib level 4)"), "\(error)")
            XCTAssertTrue("\(error)".contains("Mount with --decoded"), "\(error)")
        }
        XCTAssertThrowsError(try Combiner.combine([parts[0], parts[2]], options: CombineOptions(concatDimension: "time"))) { error in
            XCTAssertTrue("\(error)".contains("<i4 in a.nc but >i4 in c.nc. Mount with --decoded"), "\(error)")
        }
        var options = CombineOptions(concatDimension: "time")
        options.regrid = true
        let combined = try Combiner.combine(parts, options: options)
        let served = try XCTUnwrap(combined.arrays.first { $0.path == "v" })
        XCTAssertEqual(served.dtype, int32)
        XCTAssertEqual(served.codecs, [])
        XCTAssertEqual(served.fillBytes, [1, 0, 0, 0])
        let regridding = try XCTUnwrap(served.regridding)
        XCTAssertEqual(regridding.sources.map(\.codecs), [[], [.shuffle(elementSize: 4), .zlib(level: 4)], []])
        XCTAssertEqual(regridding.sources.map { $0.byteSwap != nil }, [false, false, true])
        // The big-endian file's fill is held in the served order, and its chunk is swapped when read.
        XCTAssertEqual(regridding.sources[2].fillBytes, [1, 0, 0, 0])
        let piece = try XCTUnwrap(regridding.pieces(coordinates: [2, 0], servedChunkShape: [1, 3], shape: [3, 3]).first)
        var chunk: [UInt8] = [0, 0, 0, 7, 0, 0, 1, 0]
        piece.byteSwap?.apply(&chunk)
        XCTAssertEqual(chunk, [7, 0, 0, 0, 0, 1, 0, 0])
        XCTAssertTrue(
            combined.notes.contains { $0.contains("v: compressed differently by the files") && $0.contains("big-endian in c.nc") }, "\(combined.notes)")
    }

    func testUnpackKeepsEachFilesPackingByObject() throws {
        let parts = [
            part("a.nc", [coordinate("time", [0]), variable("t2", ["time", "x"], length: 1, attributes: [("scale_factor", .double(0.5))])]),
            part(
                "b.nc",
                [
                    coordinate("time", [1]),
                    variable(
                        "t2", ["time", "x"], length: 1,
                        attributes: [("scale_factor", .double(2)), ("add_offset", .int(10)), ("missing_value", .int(-1))]),
                ]),
        ]
        var options = CombineOptions(concatDimension: "time")
        options.unpack = true
        let combined = try Combiner.combine(parts, options: options)
        let t2 = try XCTUnwrap(combined.array("t2"))
        let unpacking = try XCTUnwrap(t2.unpacking)
        XCTAssertEqual(unpacking.byObject[0], Packing(scale: 0.5, offset: 0, masked: []))
        XCTAssertEqual(unpacking.byObject[1], Packing(scale: 2, offset: 10, masked: [-1]))
        XCTAssertFalse(t2.attributes.contains { $0.0 == "scale_factor" }, "\(t2.attributes)")
        // int32 little-endian 4, -1, 7 from object 1: 18, NaN, 24.
        let stored: [UInt8] = [4, 0, 0, 0, 255, 255, 255, 255, 7, 0, 0, 0]
        let values = NumericValues.doubles(try unpacking.unpack(stored, object: 1), dtype: Unpacking.unpackedType, count: 3) ?? []
        XCTAssertEqual(values[0], 18)
        XCTAssertTrue(values[1].isNaN)
        XCTAssertEqual(values[2], 24)
        XCTAssertEqual(NumericValues.doubles(try unpacking.unpack(stored, object: 0), dtype: Unpacking.unpackedType, count: 3), [2, -0.5, 3.5])
        XCTAssertThrowsError(try unpacking.unpack(stored, object: 7))
        // Units that differ are not packing: still an error.
        let units = [
            part("a.nc", [coordinate("time", [0]), variable("t2", ["time", "x"], length: 1, attributes: [("units", .string("K"))])]),
            part("b.nc", [coordinate("time", [1]), variable("t2", ["time", "x"], length: 1, attributes: [("units", .string("degC"))])]),
        ]
        XCTAssertThrowsError(try Combiner.combine(units, options: options))
    }
}

final class RegriddingTests: XCTestCase {
    /// A source whose chunk at grid position c holds, for each element, its index in the
    /// served array (so any misplaced copy shows).
    private func source(origin: [UInt64], shape: [UInt64], chunks: [UInt64], total: [UInt64], object: UInt32) -> (Regridding.Source, [Int: [UInt8]]) {
        var manifest = ChunkManifest(gridShape: zip(shape, chunks).map { Int(($0 + $1 - 1) / $1) })
        var decoded: [Int: [UInt8]] = [:]
        for linear in 0..<manifest.count {
            let c = manifest.coordinates(linear)
            var bytes: [UInt8] = []
            for i in 0..<chunks[0] {
                for j in 0..<chunks[1] {
                    let row = origin[0] + UInt64(c[0]) * chunks[0] + i, column = origin[1] + UInt64(c[1]) * chunks[1] + j
                    let value = row < origin[0] + shape[0] && column < shape[1] ? UInt16(row * total[1] + column) : 0xFFFF
                    bytes += [UInt8(value & 0xFF), UInt8(value >> 8)]
                }
            }
            let offset = UInt64(1000 * Int(object) + linear)
            manifest[linear] = .reference(object: object, offset: offset, length: UInt64(bytes.count))
            decoded[Int(offset)] = bytes
        }
        return (Regridding.Source(origin: origin, shape: shape, chunkShape: chunks, codecs: [], manifest: manifest, fillBytes: [0, 0]), decoded)
    }

    func testServedChunksAreAssembledFromTheSourceChunksTheyOverlap() throws {
        let total: [UInt64] = [7, 5]
        let (a, decodedA) = source(origin: [0, 0], shape: [3, 5], chunks: [1, 5], total: total, object: 0)
        let (b, decodedB) = source(origin: [3, 0], shape: [4, 5], chunks: [3, 2], total: total, object: 1)
        let decoded = decodedA.merging(decodedB) { x, _ in x }
        let regridding = Regridding(sources: [a, b], itemSize: 2)
        let served: [UInt64] = [4, 3]
        for c0 in 0..<2 {
            for c1 in 0..<2 {
                var out = [UInt8](repeating: 0xEE, count: 4 * 3 * 2)
                for piece in regridding.pieces(coordinates: [c0, c1], servedChunkShape: served, shape: total) {
                    guard case .stored(_, let offset, _) = piece.content else { return XCTFail("\(piece)") }
                    Regridding.copy(piece, from: decoded[Int(offset)]!, into: &out, servedChunkShape: served, itemSize: 2)
                }
                for i in 0..<4 {
                    for j in 0..<3 {
                        let row = c0 * 4 + i, column = c1 * 3 + j
                        guard row < 7, column < 5 else { continue }
                        let value = UInt16(out[(i * 3 + j) * 2]) | UInt16(out[(i * 3 + j) * 2 + 1]) << 8
                        XCTAssertEqual(Int(value), row * 5 + column, "served chunk \(c0).\(c1) element (\(i), \(j))")
                    }
                }
            }
        }
        // Served chunk 0.0 (rows 0-3, columns 0-2) overlaps rows 0, 1, 2 of a and rows 3-5 in b's
        // column chunks 0 and 1.
        XCTAssertEqual(regridding.pieces(coordinates: [0, 0], servedChunkShape: served, shape: total).count, 5)
    }

    func testUnpackedGridsServeNaNForUnwrittenAndMaskedInlineChunksAndRefuseOthers() throws {
        let int16 = ZarrDataType.integer(size: 2, signed: true)
        let unpacking = Unpacking(
            packed: int16,
            byObject: [
                0: Packing(scale: 0.5, offset: 0, masked: [-1]),
                1: Packing(scale: 2, offset: 10, masked: [-1]),
            ])
        var manifest = ChunkManifest(gridShape: [3])
        manifest[0] = .reference(object: 0, offset: 0, length: 4)
        manifest[1] = .inline([0xFF, 0xFF, 0xFF, 0xFF])  // -1, -1: masked in every file
        let masked = Regridding.Source(origin: [0], shape: [6], chunkShape: [2], codecs: [], manifest: manifest, fillBytes: [0xFF, 0xFF])
        let unpacked = try Regridding(sources: [masked], itemSize: 2).unpacked(unpacking, path: "t2")
        XCTAssertEqual(unpacked.itemSize, 8)
        XCTAssertEqual(unpacked.sourceItemSize, 2)
        XCTAssertEqual(unpacked.sources[0].manifest[1], .missing)
        XCTAssertEqual(unpacked.sources[0].manifest[0], .reference(object: 0, offset: 0, length: 4))
        XCTAssertTrue(NumericValues.doubles(unpacked.sources[0].fillBytes, dtype: Unpacking.unpackedType, count: 1)![0].isNaN)
        // An inline chunk with a real value has no file to unpack it with.
        manifest[1] = .inline([0x02, 0x00, 0xFF, 0xFF])
        let real = Regridding.Source(origin: [0], shape: [6], chunkShape: [2], codecs: [], manifest: manifest, fillBytes: [0xFF, 0xFF])
        XCTAssertThrowsError(try Regridding(sources: [real], itemSize: 2).unpacked(unpacking, path: "t2")) { error in
            XCTAssertTrue("\(error)".contains("--drop-variables t2"), "\(error)")
        }
    }
}
