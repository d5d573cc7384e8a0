import ByteSource
import Foundation
import JSONValue
import NetCDF3
import TestSupport
import XCTest

/// The netCDF-3 fixtures of `tools/make-fixtures.py` (netcdf3-*.nc) and their sidecars
/// (netcdf3-*.nc.expected.json: what netCDF4-python reads from each file).
enum NC3Fixtures {
    static func directory() throws -> URL {
        guard let directory = FixtureLocation.directory() else {
            if FixtureLocation.isCI { XCTFail(FixtureLocation.missing + " (CI must not skip)") }
            throw XCTSkip(FixtureLocation.missing)
        }
        return directory
    }

    static func files() throws -> [URL] {
        let directory = try directory()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        let files = names.filter { $0.hasPrefix("netcdf3-") && $0.hasSuffix(".nc") }.sorted().map { directory.appendingPathComponent($0) }
        if files.isEmpty { throw XCTSkip("no netcdf3-*.nc in \(directory.path): regenerate the fixtures with tools/make-fixtures.py") }
        XCTAssertGreaterThanOrEqual(files.count, 7, "the netCDF-3 fixtures look incomplete in \(directory.path)")
        return files
    }

    static func file(_ name: String) throws -> URL {
        let url = try directory().appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(name) is missing: regenerate the fixtures") }
        return url
    }

    static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    static func expected(_ url: URL) throws -> JSON {
        let text = try String(contentsOf: URL(fileURLWithPath: url.path + ".expected.json"), encoding: .utf8)
        return try JSON.parse(text)
    }
}

/// Counts the reads a parse issues (the header should take one, a long one two).
final class CountingSource: RandomAccessSource, @unchecked Sendable {
    let inner: InMemorySource
    private let lock = NSLock()
    private var _reads: [ByteRange] = []

    init(name: String, bytes: [UInt8]) { inner = InMemorySource(name: name, bytes: bytes) }

    var name: String { inner.name }
    var reads: [ByteRange] { lock.withLock { _reads } }

    func size() async throws -> UInt64 { try await inner.size() }

    func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        lock.withLock { _reads.append(ByteRange(offset: offset, length: length)) }
        return try await inner.read(offset: offset, length: length)
    }
}

/// Attribute values as the sidecar spells them: a list of numbers.
func valuesJSON(_ values: NetCDF3Values) -> [JSON] {
    switch values {
    case .text(let text): return [.string(text)]
    case .bytes(let v): return v.map { .int(Int64($0)) }
    case .shorts(let v): return v.map { .int(Int64($0)) }
    case .ints(let v): return v.map { .int(Int64($0)) }
    case .int64s(let v): return v.map { .int($0) }
    case .ubytes(let v): return v.map { .uint(UInt64($0)) }
    case .ushorts(let v): return v.map { .uint(UInt64($0)) }
    case .uints(let v): return v.map { .uint(UInt64($0)) }
    case .uint64s(let v): return v.map { .uint($0) }
    case .floats(let v): return v.map { .double(Double($0)) }
    case .doubles(let v): return v.map { .double($0) }
    }
}

/// Big-endian values of `type` as JSON numbers (chars as their byte values), for comparing
/// array data with the sidecar's.
func decodeValues(_ raw: [UInt8], type: NetCDF3Type) -> [JSON] {
    stride(from: 0, to: raw.count - type.size + 1, by: type.size).map { start in
        let bits = raw[start..<(start + type.size)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        switch type {
        case .byte: return .int(Int64(Int8(truncatingIfNeeded: bits)))
        case .short: return .int(Int64(Int16(truncatingIfNeeded: bits)))
        case .int: return .int(Int64(Int32(truncatingIfNeeded: bits)))
        case .int64: return .int(Int64(bitPattern: bits))
        case .char, .ubyte, .ushort, .uint, .uint64: return .uint(bits)
        case .float:
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: bits))
            return value.isNaN ? .null : .double(Double(value))
        case .double:
            let value = Double(bitPattern: bits)
            return value.isNaN ? .null : .double(value)
        }
    }
}
