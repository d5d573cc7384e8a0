import Foundation
import JSONValue

public enum ZarrFormat: Int, Sendable, CaseIterable {
    case v2 = 2
    case v3 = 3
}

/// The Zarr rendering of a virtual dataset: metadata documents by key, and chunk keys mapped to
/// manifest entries. Used by `export`, the kerchunk writer and (later) the FUSE tree.
public struct ZarrStore: Sendable {
    public let dataset: VirtualDataset
    public let format: ZarrFormat

    /// Arrays the format cannot express, each with the reason; they are left out of the store.
    public let omitted: [String]

    /// The longest name, in bytes, a file system gives a directory entry (Linux's NAME_MAX): a
    /// mounted or exported store's paths are directories and files.
    public static let fileNameLimit = 255

    /// `nameLimit`: leave out arrays and groups with a path component longer than this many bytes
    /// (`fileNameLimit` for a mount or an export; none for references, whose keys are strings).
    public init(_ dataset: VirtualDataset, format: ZarrFormat, nameLimit: Int? = nil) {
        var dataset = dataset
        var omitted: [String] = []
        if let nameLimit {
            func longest(_ path: String) -> Int { path.split(separator: "/").map(\.utf8.count).max() ?? 0 }
            let tooLong = { (path: String) in longest(path) > nameLimit }
            dataset.arrays = dataset.arrays.filter { array in
                guard tooLong(array.path) else { return true }
                omitted.append(
                    "\(array.path.prefix(60))… left out: a name in its path has \(longest(array.path)) bytes, and a file system's names hold at most \(nameLimit); `zarrmount scan --refs` keeps it"
                )
                return false
            }
            dataset.groups.removeAll { tooLong($0.path) }
        }
        dataset.arrays = dataset.arrays.filter { array in
            guard let filter = Codec.decodedOnly(in: array.codecs) else { return true }
            omitted.append(
                "\(array.path) left out: its HDF5 filter \(filter.label) has no Zarr codec that readers decode; mount or export with --decoded to serve it decoded"
            )
            return false
        }
        if format == .v3 {
            dataset.arrays = dataset.arrays.filter { array in
                if array.dtype.v3 != nil { return true }
                omitted.append("\(array.path) left out of the Zarr v3 store: \(array.dtype.v2String) has no Zarr v3 data type (use Zarr v2)")
                return false
            }
            // v3's fill_value is the HDF5 fill value, so unwritten chunks need no fill chunk.
            for index in dataset.arrays.indices { dataset.arrays[index].manifest.dropFillChunk() }
        }
        self.dataset = dataset
        self.format = format
        self.omitted = omitted
    }

    /// Every metadata document, keyed by store path (`.zgroup`, `T2/.zarray`, `zarr.json`...).
    public func metadataDocuments() throws -> [(key: String, document: JSON)] {
        switch format {
        case .v2: return try v2Documents()
        case .v3: return try v3Documents()
        }
    }

    /// The chunk key of grid position `coordinates` of `array`.
    public func chunkKey(_ array: VirtualArray, _ coordinates: [Int]) -> String {
        let prefix = array.path.isEmpty ? "" : array.path + "/"
        return prefix + Self.chunkKeyComponents(format, coordinates).joined(separator: "/")
    }

    /// The path components of a chunk's key below its array, the one spelling the written
    /// store and the mounted tree share: v2 `1.0.3` (`0` for a scalar), v3 `c/1/0/3` (`c`).
    public static func chunkKeyComponents(_ format: ZarrFormat, _ coordinates: [Int]) -> [String] {
        switch format {
        case .v2: return [coordinates.isEmpty ? "0" : coordinates.map(String.init).joined(separator: ".")]
        case .v3: return ["c"] + coordinates.map(String.init)
        }
    }

    private static func join(_ path: String, _ name: String) -> String { path.isEmpty ? name : path + "/" + name }

    // MARK: Zarr v2

    private func v2Documents() throws -> [(key: String, document: JSON)] {
        var documents: [(String, JSON)] = []
        for group in dataset.groups {
            documents.append((Self.join(group.path, ".zgroup"), .object([("zarr_format", .int(2))])))
            documents.append((Self.join(group.path, ".zattrs"), .object(group.attributes)))
        }
        for array in dataset.arrays {
            documents.append((Self.join(array.path, ".zarray"), try v2ArrayDocument(array)))
            documents.append(
                (
                    Self.join(array.path, ".zattrs"),
                    .object([("_ARRAY_DIMENSIONS", .array(array.dimensionNames.map(JSON.string)))] + array.attributes)
                ))
        }
        var consolidated = documents
        consolidated.sort { $0.0 < $1.0 }
        documents.append(
            (
                ".zmetadata",
                .object([
                    ("metadata", .object(consolidated)),
                    ("zarr_consolidated_format", .int(1)),
                ])
            ))
        return documents
    }

    func v2ArrayDocument(_ array: VirtualArray) throws -> JSON {
        var compressor: JSON = .null
        var filters: [Codec] = array.codecs
        switch filters.last {
        case .zlib, .zstd, .bz2, .blosc: compressor = filters.removeLast().numcodecsJSON
        default: break
        }
        var filterList = filters.map(\.numcodecsJSON)
        var dtype = array.dtype.v2
        if array.dtype.kind == .variableString {
            dtype = .string("|O")
            filterList.insert(.object([("id", .string("vlen-utf8"))]), at: 0)
        }
        return .object([
            ("chunks", .array(array.chunkShape.map(JSON.uint))),
            ("compressor", compressor),
            ("dimension_separator", .string(".")),
            ("dtype", dtype),
            ("fill_value", array.fillValue),
            ("filters", filterList.isEmpty ? .null : .array(filterList)),
            ("order", .string("C")),
            ("shape", .array(array.shape.map(JSON.uint))),
            ("zarr_format", .int(2)),
        ])
    }

    // MARK: Zarr v3

    private func v3Documents() throws -> [(key: String, document: JSON)] {
        var nodes: [(String, JSON)] = []
        for group in dataset.groups where !group.path.isEmpty {
            nodes.append(
                (
                    group.path,
                    .object([
                        ("zarr_format", .int(3)), ("node_type", .string("group")),
                        ("attributes", .object(group.attributes)),
                    ])
                ))
        }
        for array in dataset.arrays {
            nodes.append((array.path, try v3ArrayDocument(array)))
        }
        let rootAttributes = dataset.groups.first { $0.path.isEmpty }?.attributes ?? []
        var documents: [(String, JSON)] = [
            (
                "zarr.json",
                .object([
                    ("zarr_format", .int(3)),
                    ("node_type", .string("group")),
                    ("attributes", .object(rootAttributes)),
                    (
                        "consolidated_metadata",
                        .object([
                            ("kind", .string("inline")),
                            ("must_understand", .bool(false)),
                            ("metadata", .object(nodes.sorted { $0.0 < $1.0 })),
                        ])
                    ),
                ])
            )
        ]
        for (path, document) in nodes { documents.append((Self.join(path, "zarr.json"), document)) }
        return documents
    }

    func v3ArrayDocument(_ array: VirtualArray) throws -> JSON {
        guard let dataType = array.dtype.v3 else {
            throw MappingError.noV3DataType(path: array.path, dtype: array.dtype.v2String)
        }
        var codecs: [JSON] = []
        if array.dtype.kind == .variableString {
            codecs.append(.object([("name", .string("vlen-utf8")), ("configuration", .object([]))]))
        } else if array.dtype.itemSize > 1 {
            codecs.append(
                .object([
                    ("name", .string("bytes")),
                    ("configuration", .object([("endian", .string(array.dtype.bigEndian ? "big" : "little"))])),
                ]))
        } else {
            codecs.append(.object([("name", .string("bytes"))]))
        }
        codecs += array.codecs.map(\.zarr3JSON)
        return .object([
            ("zarr_format", .int(3)),
            ("node_type", .string("array")),
            ("shape", .array(array.shape.map(JSON.uint))),
            ("data_type", dataType),
            (
                "chunk_grid",
                .object([
                    ("name", .string("regular")),
                    ("configuration", .object([("chunk_shape", .array(array.chunkShape.map(JSON.uint)))])),
                ])
            ),
            (
                "chunk_key_encoding",
                .object([
                    ("name", .string("default")),
                    ("configuration", .object([("separator", .string("/"))])),
                ])
            ),
            ("fill_value", v3FillValue(array)),
            ("codecs", .array(codecs)),
            ("attributes", .object(v3Attributes(array))),
            ("dimension_names", .array(array.dimensionNames.map(JSON.string))),
        ])
    }

    /// Zarr v3 requires a fill value: the HDF5 one, decoded.
    func v3FillValue(_ array: VirtualArray) -> JSON {
        switch array.dtype.kind {
        case .variableString, .fixedBytes: return .string("")
        case .opaque, .structured:
            return .string(Data(array.fillBytes ?? [UInt8](repeating: 0, count: array.dtype.itemSize)).base64EncodedString())
        default: break
        }
        guard let bytes = array.fillBytes, bytes.count == array.dtype.itemSize else { return .int(0) }
        return array.dtype.fillValueJSON(bytes) ?? .int(0)
    }

    /// xarray keeps a Zarr v3 variable's CF `_FillValue` in the attributes, floats as the
    /// base64 of a little-endian double (its `FillValueCoder`), integers and booleans as numbers,
    /// fixed-length bytes as base64.
    /// An enum's names (`VirtualArray.enumNamesAttribute`) are kept in v2, whose readers hide
    /// `_nc` attributes; v3 readers hide none, so there they are left out.
    func v3Attributes(_ array: VirtualArray) -> [(String, JSON)] {
        let attributes = array.attributes.filter { $0.0 != VirtualArray.enumNamesAttribute }
        let encoded: JSON
        switch (array.dtype.kind, array.fillValue) {
        case (_, .null): return attributes
        case (.float, .double(let value)): encoded = .string(Self.base64Double(value))
        case (.float, .int(let value)): encoded = .string(Self.base64Double(Double(value)))
        case (.float, .string(let text)):
            encoded = .string(Self.base64Double(text == "NaN" ? .nan : text == "Infinity" ? .infinity : -.infinity))
        case (.signed, _), (.unsigned, _), (.bool, _): encoded = array.fillValue
        case (.fixedBytes, .string(let base64)): encoded = .string(base64)  // xarray's FillValueCoder: base64 for bytes
        default: return attributes
        }
        return [("_FillValue", encoded)] + attributes
    }

    static func base64Double(_ value: Double) -> String {
        let bits = value.bitPattern
        return Data((0..<8).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }).base64EncodedString()
    }

    /// Fill chunks (Zarr v2's way to read unwritten chunks as the HDF5 fill) one array may
    /// repeat in written references or an exported store; the mount serves one shared copy.
    public static let maxFillKeys = 1 << 20
    /// The bytes of those copies, at most.
    public static let maxFillBytes = 1 << 30

    /// Every (key, entry) of stored or inline chunks; missing chunks are absent. An array whose
    /// unwritten chunks would repeat its fill chunk more than `maxFillKeys` times is an error
    /// naming it, before anything is written.
    public func forEachChunk(_ body: (String, ChunkEntry) throws -> Void) throws {
        try forEachArrayChunk { _, key, entry in try body(key, entry) }
    }

    /// `forEachChunk`, with the array each chunk belongs to.
    public func forEachArrayChunk(_ body: (VirtualArray, String, ChunkEntry) throws -> Void) throws {
        for array in dataset.arrays {
            guard let fill = array.manifest.fillChunk else { continue }
            let fillKeys = array.manifest.count - array.manifest.setCount
            guard fillKeys <= Self.maxFillKeys, fillKeys * fill.count <= Self.maxFillBytes else {
                throw MappingError.tooManyFillCopies(
                    path: array.path, origin: array.origin, count: fillKeys, fillBytes: fill.count, maxCopies: Self.maxFillKeys,
                    maxBytes: Self.maxFillBytes)
            }
        }
        for array in dataset.arrays {
            try array.manifest.forEachStored { linear, entry in
                try body(array, chunkKey(array, array.manifest.coordinates(linear)), entry)
            }
        }
    }
}
