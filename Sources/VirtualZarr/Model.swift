import HDF5Metadata
import JSONValue

/// One source object (a file, an S3 object, a URL) that chunks point into.
public struct ObjectInfo: Sendable, Equatable {
    public var url: String
    public var size: UInt64
    /// The identity checked before every ranged read: ETag, or size + mtime for local files.
    public var etag: String?
    /// Last modification in seconds since 1970, when the listing said.
    public var lastModified: Int64?

    public init(url: String, size: UInt64, etag: String? = nil, lastModified: Int64? = nil) {
        self.url = url
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// Where one chunk's stored bytes are.
public enum ChunkEntry: Sendable, Equatable {
    /// Never written: readers use the fill value.
    case missing
    /// Small enough (or synthesised, like a fill chunk) to be kept in the manifest.
    case inline([UInt8])
    case reference(object: UInt32, offset: UInt64, length: UInt64)

    /// The entry with its object id shifted by `offset` (a file's position among combined objects).
    func shiftingObject(by offset: UInt32) -> ChunkEntry {
        guard case .reference(let object, let start, let length) = self else { return self }
        return .reference(object: object + offset, offset: start, length: length)
    }
}

/// The chunk table of one array as compact columns in chunk-grid (row-major) order: 20 bytes
/// per chunk, so ten million chunks take 200 MB.
public struct ChunkManifest: Sendable, Equatable {
    static let missingMarker = UInt32.max
    static let inlineMarker = UInt32.max - 1
    /// Object ids below the markers.
    public static let maxObjects = inlineMarker

    public private(set) var gridShape: [Int]
    private var objects: [UInt32]
    private var offsets: [UInt64]
    private var lengths: [UInt64]
    private var inlineChunks: [[UInt8]] = []

    public init(gridShape: [Int]) {
        self.gridShape = gridShape
        let count = gridShape.reduce(1) { $0 * max($1, 0) }
        objects = [UInt32](repeating: Self.missingMarker, count: count)
        offsets = [UInt64](repeating: 0, count: count)
        lengths = [UInt64](repeating: 0, count: count)
    }

    public var count: Int { objects.count }

    /// Bytes held by the columns and inline chunks (for the README's memory figure).
    public var memoryFootprint: Int {
        objects.capacity * 4 + offsets.capacity * 8 + lengths.capacity * 8 + inlineChunks.reduce(0) { $0 + $1.count }
    }

    public var storedChunkCount: Int { objects.reduce(0) { $0 + ($1 == Self.missingMarker ? 0 : 1) } }

    /// The row-major index of grid `coordinates` (any integer type: an HDF5 chunk table's
    /// `UInt64` slices go in without an array per chunk), or nil outside the grid.
    @inlinable
    public func linearIndex<Coordinates: Collection>(_ coordinates: Coordinates) -> Int? where Coordinates.Element: BinaryInteger {
        guard coordinates.count == gridShape.count else { return nil }
        var index = 0
        for (coordinate, extent) in zip(coordinates, gridShape) {
            guard let position = Int(exactly: coordinate), position >= 0, position < extent else { return nil }
            index = index * extent + position
        }
        return index
    }

    public func coordinates(_ linear: Int) -> [Int] {
        var rest = linear
        var coordinates = [Int](repeating: 0, count: gridShape.count)
        for axis in stride(from: gridShape.count - 1, through: 0, by: -1) {
            let extent = max(gridShape[axis], 1)
            coordinates[axis] = rest % extent
            rest /= extent
        }
        return coordinates
    }

    public subscript(linear: Int) -> ChunkEntry {
        get {
            switch objects[linear] {
            case Self.missingMarker: return .missing
            case Self.inlineMarker: return .inline(inlineChunks[Int(offsets[linear])])
            case let object: return .reference(object: object, offset: offsets[linear], length: lengths[linear])
            }
        }
        set {
            switch newValue {
            case .missing:
                objects[linear] = Self.missingMarker
            case .inline(let bytes):
                objects[linear] = Self.inlineMarker
                offsets[linear] = UInt64(inlineChunks.count)
                lengths[linear] = UInt64(bytes.count)
                inlineChunks.append(bytes)
            case .reference(let object, let offset, let length):
                precondition(object < Self.inlineMarker, "object id out of range")
                objects[linear] = object
                offsets[linear] = offset
                lengths[linear] = length
            }
        }
    }

    func inlineIndex(_ linear: Int) -> Int? {
        objects[linear] == Self.inlineMarker ? Int(offsets[linear]) : nil
    }

    /// Makes `linear` share an inline chunk already stored for another index.
    mutating func setInlineIndex(_ linear: Int, _ index: Int) {
        objects[linear] = Self.inlineMarker
        offsets[linear] = UInt64(index)
        lengths[linear] = UInt64(inlineChunks[index].count)
    }

    /// The same manifest with every inline chunk passed through `transform` once (inline chunks
    /// shared between indexes stay shared).
    public func mappingInlineChunks(_ transform: ([UInt8]) throws -> [UInt8]) rethrows -> ChunkManifest {
        var copy = self
        copy.inlineChunks = try inlineChunks.map(transform)
        for i in 0..<copy.objects.count where copy.objects[i] == Self.inlineMarker {
            copy.lengths[i] = UInt64(copy.inlineChunks[Int(copy.offsets[i])].count)
        }
        return copy
    }

    /// Copies every entry of `source` to indices `start..<start + source.count`, object ids
    /// shifted by `objectOffset` (the source file's position among combined objects).
    mutating func copyEntries(of source: ChunkManifest, to start: Int, objectOffset: UInt32) {
        precondition(start >= 0 && start + source.count <= count, "entries beyond the manifest")
        for index in 0..<source.count {
            switch source.objects[index] {
            case Self.missingMarker:
                objects[start + index] = Self.missingMarker
            case Self.inlineMarker:
                self[start + index] = .inline(source.inlineChunks[Int(source.offsets[index])])
            case let object:
                objects[start + index] = object + objectOffset
                offsets[start + index] = source.offsets[index]
                lengths[start + index] = source.lengths[index]
            }
        }
    }

    /// The same manifest with every object id passed through `map` (when tables are merged).
    func remappingObjects(_ map: (UInt32) -> UInt32) -> ChunkManifest {
        var copy = self
        for i in 0..<copy.objects.count where copy.objects[i] < Self.inlineMarker {
            copy.objects[i] = map(copy.objects[i])
        }
        return copy
    }
}

/// A Zarr data type with both spellings: numpy's (Zarr v2) and Zarr v3's.
public struct ZarrDataType: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case bool, signed, unsigned, float, fixedBytes, variableString, structured, opaque

        public static func named(_ name: String) -> Kind? { Kind(rawValue: name) }
    }

    public var kind: Kind
    /// Bytes per element in the stored chunks (variable-length strings: not applicable).
    public var itemSize: Int
    public var bigEndian: Bool
    /// `"<f4"`, `"|S8"`, `"|O"` or a structured list.
    public var v2: JSON
    /// `"float32"`, `"int16"`, `"bool"`, `"string"`, or an object with a configuration
    /// (`null_terminated_bytes`); `nil` when Zarr v3 has no spelling.
    public var v3: JSON?

    public init(kind: Kind, itemSize: Int, bigEndian: Bool, v2: JSON, v3: JSON?) {
        self.kind = kind
        self.itemSize = itemSize
        self.bigEndian = bigEndian
        self.v2 = v2
        self.v3 = v3
    }

    public var v2String: String {
        if case .string(let text) = v2 { return text }
        return v2.rendered()
    }
}

public struct VirtualArray: Sendable {
    /// Slash-separated path without the leading slash (`T2`, `group/var`).
    public var path: String
    public var dtype: ZarrDataType
    public var shape: [UInt64]
    public var chunkShape: [UInt64]
    /// The stored chunks' encoding, in the order the writer applied it.
    public var codecs: [Codec]
    /// Zarr's `fill_value` (v2: what xarray takes as `_FillValue`; null for none).
    public var fillValue: JSON
    /// The fill value in the element's stored encoding, for fill chunks and v3.
    public var fillBytes: [UInt8]?
    public var dimensionNames: [String]
    public var attributes: [(String, JSON)]
    public var manifest: ChunkManifest
    /// The object whose layout this array came from, for error messages.
    public var origin: String

    public init(path: String, dtype: ZarrDataType, shape: [UInt64], chunkShape: [UInt64], codecs: [Codec], fillValue: JSON,
                fillBytes: [UInt8]?, dimensionNames: [String], attributes: [(String, JSON)], manifest: ChunkManifest, origin: String) {
        self.path = path
        self.dtype = dtype
        self.shape = shape
        self.chunkShape = chunkShape
        self.codecs = codecs
        self.fillValue = fillValue
        self.fillBytes = fillBytes
        self.dimensionNames = dimensionNames
        self.attributes = attributes
        self.manifest = manifest
        self.origin = origin
    }

    public var name: String { String(path.split(separator: "/").last ?? "") }
}

public struct VirtualGroup: Sendable {
    /// Slash-separated path without leading slash; "" is the root.
    public var path: String
    public var attributes: [(String, JSON)]

    public init(path: String, attributes: [(String, JSON)]) {
        self.path = path
        self.attributes = attributes
    }
}

/// Zarr groups and arrays whose chunks are references into source objects.
public struct VirtualDataset: Sendable {
    public var objects: [ObjectInfo]
    public var groups: [VirtualGroup]
    public var arrays: [VirtualArray]
    /// Variables left out, each with the reason (unsupported filter, unwritable string...).
    public var warnings: [String]

    public init(objects: [ObjectInfo] = [], groups: [VirtualGroup] = [VirtualGroup(path: "", attributes: [])],
                arrays: [VirtualArray] = [], warnings: [String] = []) {
        self.objects = objects
        self.groups = groups
        self.arrays = arrays
        self.warnings = warnings
    }

    public func array(_ path: String) -> VirtualArray? { arrays.first { $0.path == path } }
}

extension ChunkManifest {
    /// The same chunks under a grid with a new leading axis of extent one (row-major order is
    /// unchanged, so no entry moves).
    func prependingAxis() -> ChunkManifest {
        var copy = self
        copy.gridShape.insert(1, at: 0)
        return copy
    }
}

extension VirtualArray {
    public func prependingAxis(named dimension: String) -> VirtualArray {
        var copy = self
        copy.shape.insert(1, at: 0)
        copy.chunkShape.insert(1, at: 0)
        copy.dimensionNames.insert(dimension, at: 0)
        copy.manifest = manifest.prependingAxis()
        return copy
    }

    /// A one-chunk inline coordinate of 64-bit integers.
    public static func inlineCoordinate(name: String, int64 values: [Int64]) -> VirtualArray {
        var bytes: [UInt8] = []
        for value in values { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: UInt64(bitPattern: value) >> UInt64(8 * i))) } }
        var manifest = ChunkManifest(gridShape: [1])
        manifest[0] = .inline(bytes)
        return VirtualArray(path: name, dtype: ZarrDataType(kind: .signed, itemSize: 8, bigEndian: false, v2: .string("<i8"), v3: .string("int64")),
                            shape: [UInt64(values.count)], chunkShape: [UInt64(max(values.count, 1))], codecs: [], fillValue: .null,
                            fillBytes: [UInt8](repeating: 0, count: 8), dimensionNames: [name], attributes: [], manifest: manifest,
                            origin: "file names")
    }

    /// A one-chunk inline coordinate of fixed-width byte strings.
    public static func inlineCoordinate(name: String, strings values: [String], width: Int) -> VirtualArray {
        var bytes: [UInt8] = []
        for value in values {
            let utf8 = Array(value.utf8.prefix(width))
            bytes += utf8 + [UInt8](repeating: 0, count: width - utf8.count)
        }
        var manifest = ChunkManifest(gridShape: [1])
        manifest[0] = .inline(bytes)
        return VirtualArray(path: name, dtype: ZarrDataType(kind: .fixedBytes, itemSize: width, bigEndian: false, v2: .string("|S\(width)"), v3: .object([("name", .string("null_terminated_bytes")), ("configuration", .object([("length_bytes", .int(Int64(width)))]))])),
                            shape: [UInt64(values.count)], chunkShape: [UInt64(max(values.count, 1))], codecs: [], fillValue: .null,
                            fillBytes: [UInt8](repeating: 0, count: width), dimensionNames: [name], attributes: [], manifest: manifest,
                            origin: "file names")
    }
}
