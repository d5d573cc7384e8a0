import ByteSource
import JSONValue
import NetCDF3
import NetCDF3Mapping
import VirtualZarr
import XCTest

/// The mapping against netCDF4-python: every array's values, read through its manifest from the
/// file's bytes, equal what netCDF4-python reads.
final class MappingTests: XCTestCase {
    private func map(_ file: URL, options: MappingOptions = MappingOptions()) async throws -> (VirtualDataset, NetCDF3Header, [UInt8]) {
        let bytes = try NC3Fixtures.bytes(file)
        let header = try NetCDF3File.parse(bytes: bytes, name: file.lastPathComponent)
        let dataset = try await NetCDF3Mapping.dataset(from: header, objectID: 3, options: options, fetch: Self.fetcher(bytes))
        return (dataset, header, bytes)
    }

    static func fetcher(_ bytes: [UInt8]) -> ByteFetcher {
        { offset, length in
            guard offset + UInt64(length) <= UInt64(bytes.count) else { throw ByteSourceError(.outOfRange, source: "fixture", offset: offset, length: length) }
            return Array(bytes[Int(offset)..<(Int(offset) + length)])
        }
    }

    static let dtypes: [String: String] = [
        "NC_BYTE": "|i1", "NC_CHAR": "|S1", "NC_SHORT": ">i2", "NC_INT": ">i4", "NC_FLOAT": ">f4", "NC_DOUBLE": ">f8",
        "NC_UBYTE": "|u1", "NC_USHORT": ">u2", "NC_UINT": ">u4", "NC_INT64": ">i8", "NC_UINT64": ">u8",
    ]

    /// Returns how many arrays' values were compared.
    @discardableResult
    private func assertValuesMatch(
        _ dataset: VirtualDataset, _ header: NetCDF3Header, _ bytes: [UInt8], _ expected: JSON, _ label: String
    ) async throws
        -> Int
    {
        var compared = 0
        for want in expected["variables"]?.arrayValue ?? [] {
            let name = want["name"]?.stringValue ?? "?"
            let context = "\(label): \(name)"
            guard let array = dataset.array(name), let variable = header.variable(name) else {
                XCTFail("\(context) is missing; warnings: \(dataset.warnings)")
                continue
            }
            XCTAssertEqual(array.shape.map { JSON.uint($0) }, want["shape"]?.arrayValue, context)
            XCTAssertEqual(array.dimensionNames.map { JSON.string($0) }, want["dimensions"]?.arrayValue, context)
            XCTAssertEqual(array.dtype.v2String, Self.dtypes[want["type"]?.stringValue ?? ""], context)
            XCTAssertEqual(array.codecs, [], context)
            // Attributes: one value as a scalar, text as a string, _FillValue as the fill value.
            for attribute in want["attributes"]?.arrayValue ?? [] {
                let attributeName = attribute["name"]?.stringValue ?? "?"
                let found = array.attributes.first { $0.0 == attributeName }?.1
                if attributeName == "_FillValue" {
                    XCTAssertNil(found, "\(context): _FillValue is the fill value, not an attribute")
                    let value = attribute["values"]?.arrayValue?.first
                    XCTAssertEqual(array.fillValue, value, context)
                    continue
                }
                if let text = attribute["text"]?.stringValue {
                    XCTAssertEqual(found, .string(text), "\(context): \(attributeName)")
                } else if let values = attribute["values"]?.arrayValue {
                    XCTAssertEqual(found, values.count == 1 ? values[0] : .array(values), "\(context): \(attributeName)")
                }
            }
            guard let data = want["data"]?.arrayValue else { continue }
            let raw = try await ArrayValues.decoded(array, fetch: Self.fetcher(bytes), maxBytes: 1 << 24)
            XCTAssertEqual(decodeValues(raw, type: variable.type), data, context)
            XCTAssertEqual(raw.count, data.count * variable.type.size, context)
            compared += 1
        }
        return compared
    }

    func testEveryFixtureReadsAsNetCDF4PythonReadsIt() async throws {
        for file in try NC3Fixtures.files() {
            let (dataset, header, bytes) = try await map(file)
            let expected = try NC3Fixtures.expected(file)
            XCTAssertEqual(dataset.warnings, [], file.lastPathComponent)
            XCTAssertEqual(dataset.arrays.count, header.variables.count)
            XCTAssertEqual(dataset.unlimitedDimensions, header.unlimitedDimension.map { [$0.name] } ?? [])
            let root = try XCTUnwrap(dataset.groups.first { $0.path.isEmpty })
            XCTAssertEqual(root.attributes.map(\.0), header.attributes.map(\.name))
            let compared = try await assertValuesMatch(dataset, header, bytes, expected, file.lastPathComponent)
            XCTAssertEqual(compared, header.variables.count, "\(file.lastPathComponent): every variable's values compared")
        }
    }

    func testRecordChunksAreOneRecordApart() async throws {
        let (dataset, header, _) = try await map(try NC3Fixtures.file("netcdf3-64bit-offset.nc"))
        let temp = try XCTUnwrap(dataset.array("temp"))
        let variable = try XCTUnwrap(header.variable("temp"))
        XCTAssertEqual(temp.shape, [40, 5, 7])
        XCTAssertEqual(temp.chunkShape, [1, 5, 7])
        XCTAssertEqual(temp.manifest.count, 40)
        for record in [0, 1, 39] {
            XCTAssertEqual(
                temp.manifest[record], .reference(object: 3, offset: variable.begin + UInt64(record) * header.recordSize, length: 140))
        }
        XCTAssertEqual(temp.fillValue, .double(-9999))
        XCTAssertEqual(temp.fillBytes, [0xc6, 0x1c, 0x3c, 0x00], "-9999 as a big-endian float")
        XCTAssertEqual(dataset.array("flag")?.fillValue, .int(-1))
        // No _FillValue: Zarr's fill value is null, as for netCDF-4, and the bytes netCDF's default.
        let counts = try XCTUnwrap(dataset.array("counts"))
        XCTAssertEqual(counts.fillValue, .null)
        XCTAssertEqual(counts.fillBytes, [0x80, 0x00, 0x00, 0x01])
        let station = try XCTUnwrap(dataset.array("station"))
        XCTAssertEqual(station.shape, [5, 5])
        XCTAssertEqual(station.dtype.v2String, "|S1")
        XCTAssertEqual(station.dimensionNames, ["lat", "nchar"])
    }

    func testOneRecordVariableChunksArePacked() async throws {
        let (dataset, header, _) = try await map(try NC3Fixtures.file("netcdf3-one-record-variable.nc"))
        let v = try XCTUnwrap(dataset.array("v"))
        let begin = try XCTUnwrap(header.variable("v")?.begin)
        XCTAssertEqual(v.manifest.count, 5)
        for record in 0..<5 { XCTAssertEqual(v.manifest[record], .reference(object: 3, offset: begin + UInt64(record) * 6, length: 6)) }
    }

    func testZeroRecordsGiveNoChunks() async throws {
        let (dataset, _, _) = try await map(try NC3Fixtures.file("netcdf3-zero-records.nc"))
        let temp = try XCTUnwrap(dataset.array("temp"))
        XCTAssertEqual(temp.shape, [0, 5, 7])
        XCTAssertEqual(temp.manifest.count, 0)
        XCTAssertEqual(dataset.array("pres")?.manifest.setCount, 1)
        XCTAssertEqual(dataset.unlimitedDimensions, ["time"])
    }

    func testLargeFixedVariablesSplitAlongLeadingAxes() async throws {
        var options = MappingOptions()
        options.contiguousSplitThreshold = 40
        let file = try NC3Fixtures.file("netcdf3-classic.nc")
        let (dataset, header, bytes) = try await map(file, options: options)
        let pres = try XCTUnwrap(dataset.array("pres"))
        XCTAssertEqual(pres.chunkShape, [1, 7], "70 bytes in rows of 14")
        XCTAssertEqual(pres.manifest.count, 5)
        let begin = try XCTUnwrap(header.variable("pres")?.begin)
        XCTAssertEqual(pres.manifest[4], .reference(object: 3, offset: begin + 56, length: 14))
        try await assertValuesMatch(dataset, header, bytes, try NC3Fixtures.expected(file), "split")
    }

    func testDimensionCoordinatesInline() async throws {
        var options = MappingOptions()
        options.inlineComparedValues = true
        let file = try NC3Fixtures.file("netcdf3-classic.nc")
        let (dataset, header, bytes) = try await map(file, options: options)
        let lat = try XCTUnwrap(dataset.array("lat"))
        let begin = Int(try XCTUnwrap(header.variable("lat")?.begin))
        XCTAssertEqual(lat.manifest[0], .inline(Array(bytes[begin..<(begin + 20)])))
        XCTAssertEqual(lat.dtype.v2String, ">f4", "inlined values keep the file's byte order")
        guard case .reference = dataset.array("temp")?.manifest[0] else { return XCTFail("temp is not a coordinate") }
        try await assertValuesMatch(dataset, header, bytes, try NC3Fixtures.expected(file), "inline")
    }

    func testRecordsPastTheEndStayMissing() async throws {
        var bytes = try NC3Fixtures.bytes(try NC3Fixtures.file("netcdf3-one-record-variable.nc"))
        bytes[7] = 200  // numrecs 5 → 200
        let header = try NetCDF3File.parse(bytes: bytes, name: "claims-200")
        let dataset = try await NetCDF3Mapping.dataset(from: header, objectID: 0, fetch: Self.fetcher(bytes))
        let v = try XCTUnwrap(dataset.array("v"))
        XCTAssertEqual(v.shape, [200, 3])
        XCTAssertEqual(v.manifest.setCount, 5)
        XCTAssertEqual(dataset.warnings.count, 1)
        XCTAssertTrue(dataset.warnings[0].contains("records 5 to 199 lie past the end of the file"), dataset.warnings[0])
    }

    func testDefaultFillValues() {
        XCTAssertEqual(NetCDF3Mapping.defaultFillBytes(.float), Array(withUnsafeBytes(of: Float(9.9692099683868690e+36).bitPattern.bigEndian, Array.init)))
        XCTAssertEqual(NetCDF3Mapping.defaultFillBytes(.double), Array(withUnsafeBytes(of: (9.9692099683868690e+36).bitPattern.bigEndian, Array.init)))
        XCTAssertEqual(NetCDF3Mapping.defaultFillBytes(.int64), Array(withUnsafeBytes(of: Int64(-9_223_372_036_854_775_806).bigEndian, Array.init)))
        for type in NetCDF3Type.allCases { XCTAssertEqual(NetCDF3Mapping.defaultFillBytes(type).count, type.size) }
    }
}
