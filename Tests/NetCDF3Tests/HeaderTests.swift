import ByteSource
import JSONValue
import NetCDF3
import XCTest

/// The parser against what netCDF4-python reads from the same files (the fixtures' sidecars).
final class HeaderTests: XCTestCase {
    static let formats: [String: NetCDF3Format] = [
        "NETCDF3_CLASSIC": .classic, "NETCDF3_64BIT_OFFSET": .offset64, "NETCDF3_64BIT_DATA": .data64,
    ]

    private func assertAttributes(_ attributes: [NetCDF3Attribute], _ expected: JSON?, _ label: String) {
        let expected = expected?.arrayValue ?? []
        XCTAssertEqual(attributes.map(\.name), expected.map { $0["name"]?.stringValue ?? "?" }, "\(label): attribute names")
        for (attribute, want) in zip(attributes, expected) {
            let context = "\(label): attribute \(attribute.name)"
            XCTAssertEqual(attribute.type.description, want["type"]?.stringValue, context)
            if let text = want["text"]?.stringValue {
                XCTAssertEqual(attribute.values, .text(text), context)
            } else {
                XCTAssertEqual(valuesJSON(attribute.values), want["values"]?.arrayValue ?? [], context)
            }
        }
    }

    func testFixturesMatchNetCDF4Python() async throws {
        for file in try NC3Fixtures.files() {
            let expected = try NC3Fixtures.expected(file)
            let label = file.lastPathComponent
            let header = try await NetCDF3File.parse(InMemorySource(name: label, bytes: NC3Fixtures.bytes(file)))
            XCTAssertEqual(header.name, label)
            XCTAssertEqual(header.format, Self.formats[expected["format"]?.stringValue ?? ""], label)
            XCTAssertEqual(JSON.uint(header.numrecs), expected["numrecs"], label)
            XCTAssertFalse(header.numrecsIsStreaming, label)
            let dimensions = expected["dimensions"]?.arrayValue ?? []
            XCTAssertEqual(header.dimensions.map(\.name), dimensions.map { $0["name"]?.stringValue ?? "?" }, label)
            for (dimension, want) in zip(header.dimensions, dimensions) {
                XCTAssertEqual(JSON.uint(dimension.length), want["length"], "\(label): \(dimension.name)")
                XCTAssertEqual(JSON.bool(dimension.isUnlimited), want["unlimited"], "\(label): \(dimension.name)")
            }
            assertAttributes(header.attributes, expected["attributes"], label)
            let variables = expected["variables"]?.arrayValue ?? []
            XCTAssertEqual(header.variables.map(\.name), variables.map { $0["name"]?.stringValue ?? "?" }, label)
            for (variable, want) in zip(header.variables, variables) {
                let context = "\(label): \(variable.name)"
                XCTAssertEqual(variable.type.description, want["type"]?.stringValue, context)
                XCTAssertEqual(header.dimensionNames(of: variable).map { JSON.string($0) }, want["dimensions"]?.arrayValue, context)
                XCTAssertEqual(variable.shape.map { JSON.uint($0) }, want["shape"]?.arrayValue, context)
                XCTAssertEqual(variable.isRecord, header.dimensionNames(of: variable).first == header.unlimitedDimension?.name, context)
                XCTAssertGreaterThanOrEqual(variable.begin, UInt64(header.headerSize), context)
                assertAttributes(variable.attributes, want["attributes"], context)
            }
            // Every byte of data lies in the file: the last fixed variable ends within it, and
            // the last record ends exactly at its end (netCDF-C writes whole records).
            for variable in header.variables where !variable.isRecord {
                XCTAssertLessThanOrEqual(variable.begin + variable.dataSize, header.fileSize, "\(label): \(variable.name)")
            }
            if let begin = header.firstRecordBegin, header.numrecs > 0 {
                XCTAssertEqual(begin + header.numrecs * header.recordSize, header.fileSize, "\(label): records fill the file")
            }
        }
    }

    func testOneRecordVariableIsNotPadded() async throws {
        let file = try NC3Fixtures.file("netcdf3-one-record-variable.nc")
        let header = try NetCDF3File.parse(bytes: NC3Fixtures.bytes(file))
        let v = try XCTUnwrap(header.variable("v"))
        XCTAssertTrue(v.isRecord)
        XCTAssertEqual(v.dataSize, 6)
        XCTAssertEqual(v.paddedSize, 8)
        XCTAssertEqual(v.storedSize, 8, "netCDF-C stores the padded size")
        XCTAssertEqual(header.recordSize, 6, "one record variable alone is packed")
        XCTAssertEqual(header.numrecs, 5)
        XCTAssertEqual(header.firstRecordBegin, v.begin)
    }

    func testRecordSizeSumsPaddedRecordVariables() async throws {
        let file = try NC3Fixtures.file("netcdf3-classic.nc")
        let header = try NetCDF3File.parse(bytes: NC3Fixtures.bytes(file))
        let records = header.variables.filter(\.isRecord)
        XCTAssertEqual(Set(records.map(\.name)), ["time", "temp", "flag", "counts", "odd", "label"])
        // time 8, temp 140, flag 1→4, counts 20, odd 14→16, label 4.
        XCTAssertEqual(header.recordSize, 8 + 140 + 4 + 20 + 16 + 4)
        XCTAssertEqual(header.variable("odd")?.paddedSize, 16)
        XCTAssertEqual(header.unlimitedDimension?.name, "time")
        XCTAssertEqual(header.unlimitedDimension?.length, 3)
    }

    func testShortHeaderTakesOneRead() async throws {
        let file = try NC3Fixtures.file("netcdf3-64bit-offset.nc")
        let source = CountingSource(name: "x", bytes: try NC3Fixtures.bytes(file))
        _ = try await NetCDF3File.parse(source)
        let size = try await source.size()
        XCTAssertEqual(source.reads, [ByteRange(offset: 0, length: Int(size))], "the whole (small) file in one read")
    }

    func testLongHeaderTakesASecondRead() async throws {
        let file = try NC3Fixtures.file("netcdf3-large-header.nc")
        let bytes = try NC3Fixtures.bytes(file)
        let source = CountingSource(name: "large", bytes: bytes)
        let header = try await NetCDF3File.parse(source)
        XCTAssertGreaterThan(header.headerSize, 64 << 10)
        XCTAssertEqual(header.attributes.count, 400)
        XCTAssertEqual(source.reads.count, 2, "\(source.reads)")
        XCTAssertEqual(source.reads.first, ByteRange(offset: 0, length: 64 << 10))
        XCTAssertEqual(source.reads.last?.offset, 64 << 10, "the second read continues the first")
        // A smaller first read grows fourfold per round, so still a few reads.
        let small = CountingSource(name: "large", bytes: bytes)
        let again = try await NetCDF3File.parse(small, firstReadBytes: 1024)
        XCTAssertEqual(again, header)
        XCTAssertLessThanOrEqual(small.reads.count, 6, "\(small.reads)")
    }

    func testStreamingRecordCountComesFromTheFileSize() async throws {
        for name in ["netcdf3-classic.nc", "netcdf3-64bit-data.nc", "netcdf3-one-record-variable.nc"] {
            var bytes = try NC3Fixtures.bytes(try NC3Fixtures.file(name))
            let original = try NetCDF3File.parse(bytes: bytes)
            let width = original.format == .data64 ? 8 : 4
            for i in 4..<(4 + width) { bytes[i] = 0xff }
            let streaming = try NetCDF3File.parse(bytes: bytes)
            XCTAssertTrue(streaming.numrecsIsStreaming, name)
            XCTAssertEqual(streaming.numrecs, original.numrecs, name)
            XCTAssertEqual(streaming.unlimitedDimension?.length, original.numrecs, name)
            // Half a record more counts as no record more.
            let longer = bytes + [UInt8](repeating: 0, count: Int(original.recordSize / 2))
            XCTAssertEqual(try NetCDF3File.parse(bytes: longer).numrecs, original.numrecs, name)
        }
    }

    func testFileSignatures() {
        XCTAssertEqual(FileSignature.classify(Array("CDF".utf8) + [1, 0]), .netCDF3Classic)
        XCTAssertEqual(FileSignature.classify(Array("CDF".utf8) + [2]), .netCDF3Offset64)
        XCTAssertEqual(FileSignature.classify(Array("CDF".utf8) + [5]), .netCDF3Data64)
        XCTAssertEqual(FileSignature.classify(Array("CDF".utf8) + [3]), .netCDF3UnknownVersion(3))
        XCTAssertEqual(FileSignature.classify([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0]), .hdf5)
        XCTAssertEqual(FileSignature.classify(Array("GRIB".utf8) + [0, 0, 0, 2]), .grib)
        XCTAssertEqual(FileSignature.classify([0x0e, 0x03, 0x13, 0x01]), .hdf4)
        XCTAssertEqual(FileSignature.classify([0x1f, 0x8b, 8]), .gzip)
        XCTAssertEqual(FileSignature.classify(Array("PK".utf8) + [3, 4]), .zip)
        XCTAssertEqual(FileSignature.classify(Array("BZh9".utf8)), .bzip2)
        XCTAssertEqual(FileSignature.classify([0x28, 0xb5, 0x2f, 0xfd]), .zstd)
        XCTAssertEqual(FileSignature.classify([0xef, 0xbb, 0xbf] + Array("\n  <!DOCTYPE html>".utf8)), .markup)
        XCTAssertEqual(FileSignature.classify(Array(" {\"error\": 1}".utf8)), .json)
        XCTAssertEqual(FileSignature.classify([]), .empty)
        let other = FileSignature.classify([0x00, 0x41, 0x42, 0x7f, 0xff, 0x20, 0x43, 0x44, 0x45])
        XCTAssertEqual(other, .other([0x00, 0x41, 0x42, 0x7f, 0xff, 0x20, 0x43, 0x44]))
        XCTAssertEqual(other.description, "an unrecognised file starting with 00 41 42 7f ff 20 43 44 (\".AB.. CD\")")
        XCTAssertEqual(FileSignature.grib.description, "a GRIB file, not netCDF")
        XCTAssertEqual(FileSignature.markup.description, "an HTML page (often a server's error page) or an XML document, not netCDF")
    }

    func testOtherFilesAreNamedInTheError() async throws {
        let cases: [([UInt8], String)] = [
            (Array("GRIB".utf8) + [UInt8](repeating: 0, count: 100), "a GRIB file, not netCDF"),
            (Array("<html><body>403 Forbidden</body></html>".utf8), "an HTML page"),
            ([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 0, count: 100), "an HDF5 file"),
            ([], "an empty file"),
        ]
        for (bytes, phrase) in cases {
            do {
                _ = try await NetCDF3File.parse(InMemorySource(name: "f.nc", bytes: bytes))
                XCTFail("\(phrase) parsed")
            } catch {
                XCTAssertEqual(error.underlying.kind, .notNetCDF3)
                XCTAssertTrue(error.description.hasPrefix("f.nc: not a netCDF-3 file in magic number at offset 0: this is \(phrase)"), error.description)
            }
        }
        do {
            _ = try NetCDF3File.parse(bytes: Array("CDF".utf8) + [3, 0, 0, 0, 0])
            XCTFail("CDF version 3 parsed")
        } catch {
            XCTAssertEqual(error.kind, .unsupported)
        }
    }
}
