import ByteSource
import NetCDF3
import NetCDF3Mapping
import TestSupport
import VirtualZarr
import XCTest

/// Writes headers field by field, for files no library would write.
struct HeaderBuilder {
    var bytes: [UInt8]
    let wide: Bool

    init(version: UInt8, numrecs: UInt64 = 0) {
        bytes = Array("CDF".utf8) + [version]
        wide = version == 5
        size(numrecs)
    }

    mutating func u32(_ value: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }
    mutating func u64(_ value: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
    mutating func size(_ value: UInt64) { if wide { u64(value) } else { u32(UInt32(truncatingIfNeeded: value)) } }
    mutating func offset(_ value: UInt64) { if bytes[3] == 1 { u32(UInt32(truncatingIfNeeded: value)) } else { u64(value) } }
    mutating func name(_ text: String) {
        size(UInt64(text.utf8.count))
        bytes += Array(text.utf8)
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
    mutating func absent() {
        u32(0)
        size(0)
    }
    mutating func dimensions(_ list: [(String, UInt64)]) {
        u32(0x0A)
        size(UInt64(list.count))
        for (name, length) in list {
            self.name(name)
            size(length)
        }
    }
    /// One variable list entry; `type` 4 is NC_INT.
    mutating func variable(_ name: String, dimensionIDs: [UInt64], type: UInt32 = 4, vsize: UInt64 = 4, begin: UInt64) {
        self.name(name)
        size(UInt64(dimensionIDs.count))
        for id in dimensionIDs { size(id) }
        absent()
        u32(type)
        size(vsize)
        offset(begin)
    }
    mutating func variables(_ count: Int) {
        u32(0x0B)
        size(UInt64(count))
    }
    mutating func padFile(to count: Int) { if bytes.count < count { bytes += [UInt8](repeating: 0, count: count - bytes.count) } }
}

/// Truncated, mutated and crafted headers must end in a typed error or a result — never a
/// crash, a hang or an unbounded allocation.
final class HostileInputTests: XCTestCase {
    private func outcome(_ bytes: [UInt8], _ label: String, firstReadBytes: Int = NetCDF3File.defaultFirstReadBytes) async throws -> Bool {
        let source = InMemorySource(name: label, bytes: bytes)
        return try await withDeadline(10, label) {
            do {
                let header = try await NetCDF3File.parse(source, firstReadBytes: firstReadBytes)
                // What parses is mapped too, coordinates inlined: the mapping sees hostile
                // headers as well (it may refuse variables, never crash or hang).
                var options = MappingOptions()
                options.inlineComparedValues = true
                options.contiguousSplitThreshold = 64
                _ = try? await NetCDF3Mapping.dataset(from: header, objectID: 0, options: options, fetch: MappingTests.fetcher(bytes))
                return true
            } catch let error as NetCDF3FileError {
                XCTAssertEqual(error.file, label, "errors name the file")
                XCTAssertFalse(error.underlying.structure.isEmpty)
                return false
            }
        }
    }

    private func parseError(_ bytes: [UInt8], limits: NetCDF3Limits = NetCDF3Limits()) -> NetCDF3Error? {
        do {
            _ = try NetCDF3File.parse(bytes: bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    func testTruncationsGiveTypedErrors() async throws {
        var cases = 0
        var failures = 0
        for file in try NC3Fixtures.files() {
            let bytes = try NC3Fixtures.bytes(file)
            let header = try NetCDF3File.parse(bytes: bytes)
            var lengths = Set([0, 1, 3, 4, 5, 7, 8, 9, 12, 16, 31, 32, 33, 100, 1024, 65535, 65536, 65537])
            for step in 1..<32 { lengths.insert(header.headerSize * step / 32) }
            for step in 1..<8 { lengths.insert(bytes.count * step / 8) }
            for length in lengths.sorted() where length < bytes.count {
                cases += 1
                let truncated = Array(bytes.prefix(length))
                let parsed = try await outcome(truncated, "\(file.lastPathComponent)[..<\(length)]", firstReadBytes: 4096)
                if !parsed { failures += 1 }
                XCTAssertEqual(parsed, length >= header.headerSize, "\(file.lastPathComponent) cut at \(length): the header is \(header.headerSize) bytes")
            }
        }
        XCTAssertGreaterThan(cases, 200)
        XCTAssertGreaterThan(failures, cases / 2)
    }

    func testByteMutationsGiveTypedErrorsOrResults() async throws {
        var random = SplitMix64(state: 0x4E43_3346_555A_5A00)
        var cases = 0
        var errors = 0
        for file in try NC3Fixtures.files() {
            let original = try NC3Fixtures.bytes(file)
            let hot = try NetCDF3File.parse(bytes: original).headerSize
            for round in 0..<400 {
                var bytes = original
                for _ in 0..<(1 + random.below(4)) {
                    let position = round % 4 == 0 ? random.below(original.count) : random.below(hot)
                    switch random.below(5) {
                    case 0: bytes[position] ^= UInt8(1 << random.below(8))
                    case 1: bytes[position] = 0xff
                    case 2: bytes[position] = 0
                    case 3: bytes[position] = 0x7f
                    default: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                    }
                }
                cases += 1
                if try await !outcome(bytes, "\(file.lastPathComponent)#\(round)", firstReadBytes: 1024) { errors += 1 }
            }
        }
        XCTAssertGreaterThan(cases, 2500)
        XCTAssertGreaterThan(errors, cases / 10)
    }

    func testHugeCountsFailBeforeAllocating() {
        for version: UInt8 in [1, 2, 5] {
            var b = HeaderBuilder(version: version)
            b.u32(0x0A)
            b.size(0x7FFF_FFFF)
            b.padFile(to: 100)
            let error = parseError(b.bytes)
            XCTAssertEqual(error?.kind, .limitExceeded, "\(version): \(String(describing: error))")
            var limits = NetCDF3Limits()
            limits.maxDimensions = Int.max
            let unlimited = parseError(b.bytes, limits: limits)
            XCTAssertEqual(unlimited?.kind, .truncated, "\(version): \(String(describing: unlimited))")
            XCTAssertEqual(unlimited?.structure, "dimension list")
            XCTAssertEqual(unlimited?.offset, version == 5 ? 24 : 16, "after the count")
        }
        // 2^31 attribute values in a 100-byte file.
        var b = HeaderBuilder(version: 1)
        b.absent()
        b.u32(0x0C)
        b.size(1)
        b.name("a")
        b.u32(4)
        b.size(0x8000_0000)
        b.padFile(to: 100)
        XCTAssertEqual(parseError(b.bytes)?.kind, .limitExceeded)
        var limits = NetCDF3Limits()
        limits.maxAttributeBytes = Int.max
        let error = parseError(b.bytes, limits: limits)
        XCTAssertEqual(error?.kind, .truncated)
        XCTAssertEqual(error?.structure, "attribute a of the file (global attributes)")
    }

    func testHugeNameLength() {
        var b = HeaderBuilder(version: 1)
        b.u32(0x0A)
        b.size(1)
        b.size(0xFFFF_FFF0)
        b.padFile(to: 64)
        let error = parseError(b.bytes)
        XCTAssertEqual(error?.kind, .limitExceeded)
        XCTAssertEqual(error?.structure, "name of dimension 0")
        XCTAssertEqual(error?.offset, 16)
    }

    func testDimensionIDOutOfRange() {
        var b = HeaderBuilder(version: 1)
        b.dimensions([("x", 3)])
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [1], begin: 200)
        b.padFile(to: 300)
        let error = parseError(b.bytes)
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertEqual(error?.structure, "variable v")
        XCTAssertTrue(error?.detail.contains("dimension id 1") ?? false, "\(String(describing: error))")
    }

    func testOnlyTheFirstAxisMayBeUnlimited() {
        var b = HeaderBuilder(version: 1)
        b.dimensions([("x", 3), ("t", 0)])
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [0, 1], begin: 200)
        b.padFile(to: 300)
        XCTAssertEqual(parseError(b.bytes)?.kind, .corrupt)
        var two = HeaderBuilder(version: 1)
        two.dimensions([("t", 0), ("u", 0)])
        two.absent()
        two.absent()
        XCTAssertEqual(parseError(two.bytes)?.kind, .corrupt, "two unlimited dimensions")
    }

    func testNegativeSizesInCDF5() {
        var b = HeaderBuilder(version: 5)
        b.dimensions([("x", UInt64(bitPattern: -4))])
        b.absent()
        b.absent()
        let error = parseError(b.bytes)
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertTrue(error?.detail.contains("-4 (negative)") ?? false, "\(String(describing: error))")
        var begin = HeaderBuilder(version: 1)
        begin.absent()
        begin.absent()
        begin.variables(1)
        begin.variable("v", dimensionIDs: [], begin: 0x8000_0000)
        XCTAssertEqual(parseError(begin.bytes)?.kind, .corrupt, "a classic begin of 2^31 is negative")
    }

    func testShapeAndOffsetOverflow() {
        var shape = HeaderBuilder(version: 5)
        shape.dimensions([("a", 1 << 40), ("b", 1 << 30)])
        shape.absent()
        shape.variables(1)
        shape.variable("v", dimensionIDs: [0, 1], type: 6, begin: 200)
        shape.padFile(to: 300)
        let error = parseError(shape.bytes)
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertTrue(error?.detail.contains("overflows 64 bits") ?? false, "\(String(describing: error))")
        var begin = HeaderBuilder(version: 5)
        begin.dimensions([("a", 1 << 40)])
        begin.absent()
        begin.variables(1)
        begin.variable("v", dimensionIDs: [0], type: 6, begin: UInt64(Int64.max) - 100)
        let beginError = parseError(begin.bytes)
        XCTAssertEqual(beginError?.kind, .corrupt)
        XCTAssertTrue(beginError?.detail.contains("begin") ?? false, "\(String(describing: beginError))")
        // Records: numrecs × record size past 2^64.
        var records = HeaderBuilder(version: 5, numrecs: UInt64(Int64.max))
        records.dimensions([("t", 0), ("x", 1 << 20)])
        records.absent()
        records.variables(1)
        records.variable("v", dimensionIDs: [0, 1], type: 6, begin: 200)
        records.padFile(to: 300)
        XCTAssertEqual(parseError(records.bytes)?.kind, .corrupt)
    }

    func testCDF5TypesNeedCDF5() {
        var b = HeaderBuilder(version: 2)
        b.absent()
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [], type: 10, vsize: 8, begin: 100)
        b.padFile(to: 200)
        let error = parseError(b.bytes)
        XCTAssertEqual(error?.kind, .corrupt)
        XCTAssertTrue(error?.detail.contains("NC_INT64") ?? false, "\(String(describing: error))")
        var bad = HeaderBuilder(version: 5)
        bad.absent()
        bad.absent()
        bad.variables(1)
        bad.variable("v", dimensionIDs: [], type: 12, vsize: 8, begin: 100)
        XCTAssertEqual(parseError(bad.bytes)?.kind, .corrupt)
    }

    func testNamesMustBeUTF8AndUnique() {
        var b = HeaderBuilder(version: 1)
        b.u32(0x0A)
        b.size(1)
        b.size(2)
        b.bytes += [0xff, 0xfe, 0, 0]
        b.size(3)
        XCTAssertEqual(parseError(b.bytes)?.kind, .corrupt)
        var twice = HeaderBuilder(version: 1)
        twice.dimensions([("x", 1), ("x", 2)])
        twice.absent()
        twice.absent()
        XCTAssertEqual(parseError(twice.bytes)?.kind, .corrupt)
    }

    func testDataInsideTheHeaderIsCorrupt() {
        var b = HeaderBuilder(version: 1)
        b.absent()
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [], begin: 8)
        b.padFile(to: 100)
        XCTAssertEqual(parseError(b.bytes)?.kind, .corrupt)
    }

    func testStreamingWithoutRecordsIsZero() throws {
        var b = HeaderBuilder(version: 1, numrecs: 0xFFFF_FFFF)
        b.dimensions([("t", 0)])
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [0], begin: 200)
        b.padFile(to: 100)
        let header = try NetCDF3File.parse(bytes: b.bytes)
        XCTAssertTrue(header.numrecsIsStreaming)
        XCTAssertEqual(header.numrecs, 0, "the records would start past the end of the file")
        b.padFile(to: 212)
        XCTAssertEqual(try NetCDF3File.parse(bytes: b.bytes).numrecs, 3)
    }

    func testHeaderLimit() async throws {
        let file = try NC3Fixtures.file("netcdf3-large-header.nc")
        var limits = NetCDF3Limits()
        limits.maxHeaderBytes = 65536
        do {
            _ = try await NetCDF3File.parse(InMemorySource(name: "large", bytes: NC3Fixtures.bytes(file)), limits: limits)
            XCTFail("a header over the limit parsed")
        } catch let error as NetCDF3FileError {
            XCTAssertEqual(error.underlying.kind, .limitExceeded, error.description)
        }
    }

    func testRandomGarbageIsNotNetCDF() async throws {
        var random = SplitMix64(state: 7)
        for round in 0..<200 {
            var bytes = (0..<(4 + random.below(2000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            // Half the time a valid magic number, so the lists are what is random.
            if round % 2 == 0 { bytes.replaceSubrange(0..<4, with: Array("CDF".utf8) + [[1, 2, 5][random.below(3)]]) }
            _ = try await outcome(bytes, "garbage#\(round)")
        }
    }

    func testEnormousVariablesMapWithoutWork() async throws {
        var b = HeaderBuilder(version: 5)
        b.dimensions([("a", (1 << 46) + 1), ("b", 3)])
        b.absent()
        b.variables(1)
        b.variable("v", dimensionIDs: [0, 1], type: 1, begin: 200)
        b.padFile(to: 1000)
        let header = try NetCDF3File.parse(bytes: b.bytes)
        var settings = MappingOptions()
        settings.contiguousSplitThreshold = 1
        let options = settings
        let bytes = b.bytes
        let dataset = try await withDeadline(10, "enormous") {
            try await NetCDF3Mapping.dataset(from: header, objectID: 0, options: options, fetch: MappingTests.fetcher(bytes))
        }
        let v = try XCTUnwrap(dataset.array("v"))
        XCTAssertEqual(v.shape, [(1 << 46) + 1, 3])
        XCTAssertEqual(v.manifest.setCount, 800, "chunks of one row up to the end of the file")
        XCTAssertTrue(dataset.warnings.first?.contains("past the end of the file") ?? false, "\(dataset.warnings)")
    }
}
