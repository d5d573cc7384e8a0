import Foundation
import ByteSource
import JSONValue

/// One source object (a file, an S3 object, a URL) that chunks point into.
public struct ObjectInfo: Sendable, Equatable {
    public var url: String { didSet { location = try? Location(url) } }
    /// `url` parsed once (nil if it names no location), so reads need not parse it again.
    public private(set) var location: Location?
    public var size: UInt64
    /// The identity checked before every ranged read: ETag, or size + mtime for local files.
    public var identity: ObjectIdentity?
    /// Last modification in seconds since 1970, when the listing said.
    public var lastModified: Int64?
    /// A local file's owner and permission bits, which its chunk files carry under
    /// `--allow-other` (nil for remote objects).
    public var access: FileAccess?

    public init(url: String, size: UInt64, identity: ObjectIdentity? = nil, lastModified: Int64? = nil, access: FileAccess? = nil) {
        self.url = url
        self.location = try? Location(url)
        self.size = size
        self.identity = identity
        self.lastModified = lastModified
        self.access = access
    }
}

/// Owner, group and permission bits of a local file.
public struct FileAccess: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32

    public init(uid: UInt32, gid: UInt32, mode: UInt32) {
        self.uid = uid
        self.gid = gid
        self.mode = mode
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

/// The chunk table of one array in chunk-grid (row-major) order. Memory follows what is stored,
/// not what the grid declares: a table starts sparse (only set entries, in a dictionary) and
/// becomes compact columns, 20 bytes a chunk (ten million chunks in 200 MB), once a third of its
/// grid is set. A never-written array of 4 billion chunks costs a few hundred bytes. Chunks that
/// no one set read as `.missing`, or as the shared fill chunk once `fillMissing` gave one.
public struct ChunkManifest: Sendable, Equatable {
    static let missingMarker = UInt32.max
    static let inlineMarker = UInt32.max - 1
    /// Object ids below the markers.
    public static let maxObjects = inlineMarker
    /// The largest grid a manifest takes (2^48 chunks): linear indices stay far from overflow.
    public static let maxChunks = 1 << 48
    /// Grids up to this many chunks start as columns (small arrays: no dictionary at all).
    static let denseFromStart = 1 << 16

    struct Slot: Sendable, Equatable {
        var object: UInt32
        var offset: UInt64
        var length: UInt64
    }

    public private(set) var gridShape: [Int]
    public let count: Int
    private var objects: [UInt32] = []
    private var offsets: [UInt64] = []
    private var lengths: [UInt64] = []
    private var sparse: [Int: Slot] = [:]
    private var inlineChunks: [[UInt8]] = []
    /// Index in `inlineChunks` of the chunk unset entries read as, if any.
    private var fillIndex: Int?
    // After the optional's tag byte, so a manifest takes 72 bytes, not 80: every file of a
    // scan holds one per variable until the combine.
    private var isDense = false

    /// The number of chunks of `gridShape`, or nil when it is above `maxChunks` (or negative).
    public static func chunkCount(_ gridShape: [Int]) -> Int? {
        var count = 1
        for extent in gridShape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= maxChunks else { return nil }
            count = product
        }
        return count
    }

    public static func == (a: ChunkManifest, b: ChunkManifest) -> Bool {
        guard a.gridShape == b.gridShape, a.fillChunk == b.fillChunk, a.setIndices == b.setIndices else { return false }
        return a.setIndices.allSatisfy { a[$0] == b[$0] }
    }

    /// A manifest of `gridShape`; callers with untrusted shapes check `chunkCount` first.
    public init(gridShape: [Int]) {
        guard let count = Self.chunkCount(gridShape) else {
            preconditionFailure("a chunk grid of \(gridShape) is beyond \(Self.maxChunks) chunks; check chunkCount first")
        }
        self.gridShape = gridShape
        self.count = count
        if count <= Self.denseFromStart { makeDense() }
    }

    /// Takes `gridShape` when it is equal to this grid's own, so both holders share one copy.
    mutating func shareGridShape(_ gridShape: [Int]) -> Bool {
        guard self.gridShape == gridShape else { return false }
        self.gridShape = gridShape
        return true
    }

    /// Prepares for `entries` entries to be set: when so many would turn the manifest dense
    /// anyway, it turns dense now, and the entries never pass through the dictionary (which
    /// holds about 40 bytes an entry, twice that while it grows).
    public mutating func reserve(setEntries entries: Int) {
        if !isDense, entries * 3 >= count { makeDense() }
    }

    private mutating func makeDense() {
        objects = [UInt32](repeating: Self.missingMarker, count: count)
        offsets = [UInt64](repeating: 0, count: count)
        lengths = [UInt64](repeating: 0, count: count)
        for (linear, slot) in sparse {
            objects[linear] = slot.object
            offsets[linear] = slot.offset
            lengths[linear] = slot.length
        }
        sparse = [:]
        isDense = true
    }

    /// Bytes held by the table and inline chunks (for the README's memory figure).
    public var memoryFootprint: Int {
        objects.capacity * 4 + offsets.capacity * 8 + lengths.capacity * 8 + sparse.capacity * 40
            + inlineChunks.reduce(0) { $0 + $1.count }
    }

    /// Entries set to a reference or inline chunk.
    public var setCount: Int {
        isDense ? objects.reduce(0) { $0 + ($1 == Self.missingMarker ? 0 : 1) } : sparse.count
    }

    /// Whether set entries are kept in a dictionary (few of a large grid) rather than columns.
    public var isSparse: Bool { !isDense }

    /// Chunks that read as something (set, or the fill chunk).
    public var storedChunkCount: Int { fillIndex == nil ? setCount : count }

    /// The fill chunk unset entries read as, if any.
    public var fillChunk: [UInt8]? { fillIndex.map { inlineChunks[$0] } }

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

    private func slot(_ linear: Int) -> Slot? {
        if isDense {
            let object = objects[linear]
            return object == Self.missingMarker ? nil : Slot(object: object, offset: offsets[linear], length: lengths[linear])
        }
        return sparse[linear]
    }

    private func entry(_ slot: Slot?) -> ChunkEntry {
        guard let slot else { return fillIndex.map { .inline(inlineChunks[$0]) } ?? .missing }
        switch slot.object {
        case Self.inlineMarker: return .inline(inlineChunks[Int(slot.offset)])
        case let object: return .reference(object: object, offset: slot.offset, length: slot.length)
        }
    }

    private mutating func store(_ slot: Slot?, at linear: Int) {
        if isDense {
            objects[linear] = slot?.object ?? Self.missingMarker
            offsets[linear] = slot?.offset ?? 0
            lengths[linear] = slot?.length ?? 0
            return
        }
        sparse[linear] = slot
        if sparse.count * 3 >= count { makeDense() }
    }

    /// Setting `.missing` unsets an entry: it then reads as the fill chunk when there is one.
    public subscript(linear: Int) -> ChunkEntry {
        get { entry(slot(linear)) }
        set {
            switch newValue {
            case .missing:
                store(nil, at: linear)
            case .inline(let bytes):
                inlineChunks.append(bytes)
                store(Slot(object: Self.inlineMarker, offset: UInt64(inlineChunks.count - 1), length: UInt64(bytes.count)), at: linear)
            case .reference(let object, let offset, let length):
                precondition(object < Self.inlineMarker, "object id out of range")
                store(Slot(object: object, offset: offset, length: length), at: linear)
            }
        }
    }

    /// The linear indices of set entries in ascending order (unset entries, which read as
    /// missing or as the fill chunk, are not visited): cost follows what is stored.
    public var setIndices: [Int] {
        if isDense { return objects.indices.filter { objects[$0] != Self.missingMarker } }
        return sparse.keys.sorted()
    }

    /// Calls `body` with every index that reads as a chunk, in ascending order: the set
    /// entries, and with a fill chunk every index.
    public func forEachStored(_ body: (Int, ChunkEntry) throws -> Void) rethrows {
        if fillIndex != nil {
            for linear in 0..<count { try body(linear, self[linear]) }
        } else {
            try forEachSet(body)
        }
    }

    /// Calls `body` with every set entry in ascending order (not the indices that read as the
    /// fill chunk), without building a list of ten million indices for a dense grid.
    public func forEachSet(_ body: (Int, ChunkEntry) throws -> Void) rethrows {
        if isDense {
            for linear in objects.indices where objects[linear] != Self.missingMarker { try body(linear, self[linear]) }
        } else {
            for linear in sparse.keys.sorted() { try body(linear, self[linear]) }
        }
    }

    /// The first index at or after `start` and before `end` that reads as a chunk.
    public func nextStored(from start: Int, before end: Int) -> Int? {
        guard start < end else { return nil }
        if fillIndex != nil { return start }
        if isDense {
            var linear = start
            while linear < end {
                if objects[linear] != Self.missingMarker { return linear }
                linear += 1
            }
            return nil
        }
        var best: Int?
        for key in sparse.keys where key >= start && key < end && key < (best ?? Int.max) { best = key }
        return best
    }

    /// Every unset entry reads as `bytes` from now on (stored once, however many there are).
    public mutating func fillMissing(with bytes: [UInt8]) {
        inlineChunks.append(bytes)
        fillIndex = inlineChunks.count - 1
    }

    /// Unset entries read as missing again (Zarr v3, whose `fill_value` is the HDF5 fill).
    public mutating func dropFillChunk() {
        fillIndex = nil
    }

    /// The same manifest with every inline chunk passed through `transform` once (inline chunks
    /// shared between indexes stay shared).
    public func mappingInlineChunks(_ transform: ([UInt8]) throws -> [UInt8]) rethrows -> ChunkManifest {
        var copy = self
        copy.inlineChunks = try inlineChunks.map(transform)
        for linear in setIndices {
            guard var slot = copy.slot(linear), slot.object == Self.inlineMarker else { continue }
            slot.length = UInt64(copy.inlineChunks[Int(slot.offset)].count)
            copy.store(slot, at: linear)
        }
        return copy
    }

    /// Copies every entry of `source` to indices `start..<start + source.count`, object ids
    /// shifted by `objectOffset` (the source file's position among combined objects). The
    /// source's unset entries stay unset when both have the same fill chunk (or neither has one)
    /// and are set to the source's fill chunk otherwise.
    mutating func copyEntries(of source: ChunkManifest, to start: Int, objectOffset: UInt32) {
        precondition(start >= 0 && start + source.count <= count, "entries beyond the manifest")
        if let fill = source.fillChunk, fill != fillChunk {
            let shared = inlineChunks.count
            inlineChunks.append(fill)
            for linear in 0..<source.count where source.slot(linear) == nil {
                store(Slot(object: Self.inlineMarker, offset: UInt64(shared), length: UInt64(fill.count)), at: start + linear)
            }
        }
        for linear in source.setIndices {
            self[start + linear] = source[linear].shiftingObject(by: objectOffset)
        }
    }

    // MARK: Columns (the binary manifest file)

    /// The object id a column entry carries for an inline chunk; its offset is the chunk's index
    /// in `Columns.inlineChunks`.
    public static let inlineObject = inlineMarker

    /// The set entries as columns: what a manifest file stores. `indices` is nil when every
    /// entry of the grid is set (the columns are then the table itself, not a copy).
    public struct Columns: Sendable, Equatable {
        public var indices: [Int]?
        public var objects: [UInt32]
        public var offsets: [UInt64]
        public var lengths: [UInt64]
        public var inlineChunks: [[UInt8]]
        public var fillIndex: Int?

        public init(indices: [Int]?, objects: [UInt32], offsets: [UInt64], lengths: [UInt64], inlineChunks: [[UInt8]], fillIndex: Int?) {
            self.indices = indices
            self.objects = objects
            self.offsets = offsets
            self.lengths = lengths
            self.inlineChunks = inlineChunks
            self.fillIndex = fillIndex
        }
    }

    public var columns: Columns {
        if isDense, !objects.contains(Self.missingMarker) {
            return Columns(indices: nil, objects: objects, offsets: offsets, lengths: lengths, inlineChunks: inlineChunks, fillIndex: fillIndex)
        }
        let indices = setIndices
        var columns = Columns(indices: indices, objects: [], offsets: [], lengths: [], inlineChunks: inlineChunks, fillIndex: fillIndex)
        columns.objects.reserveCapacity(indices.count)
        columns.offsets.reserveCapacity(indices.count)
        columns.lengths.reserveCapacity(indices.count)
        for linear in indices {
            let entry = slot(linear)!
            columns.objects.append(entry.object)
            columns.offsets.append(entry.offset)
            columns.lengths.append(entry.length)
        }
        return columns
    }

    /// Why columns read from a file cannot be a manifest of their grid.
    public enum ColumnsError: Error, Equatable, CustomStringConvertible {
        case countMismatch(expected: Int, got: Int)
        case indexOutOfOrder(position: Int)
        case objectOutOfRange(chunk: [Int], object: UInt32, objectCount: Int)
        case inlineOutOfRange(chunk: [Int], index: UInt64, inlineCount: Int)
        case fillOutOfRange(index: Int, inlineCount: Int)

        public var description: String {
            switch self {
            case .countMismatch(let expected, let got): "the columns hold \(got) entries where \(expected) were declared"
            case .indexOutOfOrder(let position): "chunk index \(position) is outside the grid or not after the one before it"
            case .objectOutOfRange(let chunk, let object, let count): "chunk \(chunk) names object \(object), but there are \(count) objects"
            case .inlineOutOfRange(let chunk, let index, let count): "chunk \(chunk) names inline chunk \(index), but there are \(count)"
            case .fillOutOfRange(let index, let count): "the fill chunk is inline chunk \(index), but there are \(count)"
            }
        }
    }

    /// The manifest of `gridShape` holding `columns`, every entry checked: object ids below
    /// `objectCount`, inline indices within the inline chunks, indices ascending within the
    /// grid. Full grids take the columns as the table without copying them.
    public init(gridShape: [Int], columns: Columns, objectCount: Int) throws {
        guard let count = Self.chunkCount(gridShape) else { throw ColumnsError.countMismatch(expected: 0, got: columns.objects.count) }
        let entries = columns.indices?.count ?? count
        for column in [columns.objects.count, columns.offsets.count, columns.lengths.count] where column != entries {
            throw ColumnsError.countMismatch(expected: entries, got: column)
        }
        if let fill = columns.fillIndex, fill < 0 || fill >= columns.inlineChunks.count {
            throw ColumnsError.fillOutOfRange(index: fill, inlineCount: columns.inlineChunks.count)
        }
        self.init(gridShape: gridShape)
        inlineChunks = columns.inlineChunks
        fillIndex = columns.fillIndex
        var previous = -1
        for position in 0..<entries {
            let linear = columns.indices?[position] ?? position
            guard linear > previous, linear < count else { throw ColumnsError.indexOutOfOrder(position: position) }
            previous = linear
            let object = columns.objects[position]
            if object == Self.inlineMarker {
                let index = columns.offsets[position]
                guard index < UInt64(inlineChunks.count), UInt64(inlineChunks[Int(index)].count) == columns.lengths[position] else {
                    throw ColumnsError.inlineOutOfRange(chunk: coordinates(linear), index: index, inlineCount: inlineChunks.count)
                }
            } else if object >= UInt32(clamping: objectCount) || object == Self.missingMarker {
                throw ColumnsError.objectOutOfRange(chunk: coordinates(linear), object: object, objectCount: objectCount)
            }
        }
        if columns.indices == nil {
            objects = columns.objects
            offsets = columns.offsets
            lengths = columns.lengths
            sparse = [:]
            isDense = true
        } else if let indices = columns.indices {
            for (position, linear) in indices.enumerated() {
                store(Slot(object: columns.objects[position], offset: columns.offsets[position], length: columns.lengths[position]), at: linear)
            }
        }
    }

    /// The same manifest with every object id passed through `map` (when tables are merged).
    func remappingObjects(_ map: (UInt32) -> UInt32) -> ChunkManifest {
        var copy = self
        for linear in setIndices {
            guard var slot = copy.slot(linear), slot.object < Self.inlineMarker else { continue }
            slot.object = map(slot.object)
            copy.store(slot, at: linear)
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

    // The one place each type's v2 and v3 spellings are made: the HDF5 mapping, imported
    // references, inline coordinates and unpacked variables all build their types here.

    /// Integers of 1, 2, 4 or 8 bytes (`|i1`, `<u2`, `>i8`; `int8` ... `uint64`).
    public static func integer(size: Int, signed: Bool, bigEndian: Bool = false) -> ZarrDataType {
        let order = size == 1 ? "|" : bigEndian ? ">" : "<"
        return ZarrDataType(
            kind: signed ? .signed : .unsigned, itemSize: size, bigEndian: bigEndian && size > 1,
            v2: .string(order + (signed ? "i" : "u") + "\(size)"), v3: .string((signed ? "int" : "uint") + "\(size * 8)"))
    }

    /// Floats of 2, 4 or 8 bytes (`<f4`; `float32`).
    public static func float(size: Int, bigEndian: Bool = false) -> ZarrDataType {
        ZarrDataType(
            kind: .float, itemSize: size, bigEndian: bigEndian, v2: .string((bigEndian ? ">" : "<") + "f\(size)"),
            v3: .string("float\(size * 8)"))
    }

    public static let bool = ZarrDataType(kind: .bool, itemSize: 1, bigEndian: false, v2: .string("|b1"), v3: .string("bool"))

    /// Fixed-width byte strings (`|S8`; v3 `null_terminated_bytes`).
    public static func fixedBytes(_ width: Int) -> ZarrDataType {
        ZarrDataType(
            kind: .fixedBytes, itemSize: width, bigEndian: false, v2: .string("|S\(width)"),
            v3: .object([("name", .string("null_terminated_bytes")), ("configuration", .object([("length_bytes", .int(Int64(width)))]))]))
    }

    /// Variable-length strings, held inline (`|O`; v3 `string`).
    public static let variableString = ZarrDataType(kind: .variableString, itemSize: 0, bigEndian: false, v2: .string("|O"), v3: .string("string"))

    /// Raw bytes (`|V8`; v3 `raw_bytes`).
    public static func opaque(_ size: Int) -> ZarrDataType {
        ZarrDataType(
            kind: .opaque, itemSize: size, bigEndian: false, v2: .string("|V\(size)"),
            v3: .object([("name", .string("raw_bytes")), ("configuration", .object([("length_bytes", .int(Int64(size)))]))]))
    }

    /// A numpy structured type (Zarr v2 only), `fields` as numpy lists them.
    public static func structured(_ fields: JSON, size: Int) -> ZarrDataType {
        ZarrDataType(kind: .structured, itemSize: size, bigEndian: false, v2: fields, v3: nil)
    }

    /// A numpy spelling as Zarr v2 metadata gives it (`<f4`, `|S8`, `|O`...), or nil.
    public init?(v2 text: String) {
        let order = text.first ?? "|"
        let kind = text.dropFirst().first ?? "?"
        guard "<>|=".contains(order), let size = Int(text.dropFirst(2)) ?? (kind == "O" ? 0 : nil) else { return nil }
        let big = order == ">"
        switch kind {
        case "f" where [2, 4, 8].contains(size): self = .float(size: size, bigEndian: big)
        case "i" where [1, 2, 4, 8].contains(size): self = .integer(size: size, signed: true, bigEndian: big)
        case "u" where [1, 2, 4, 8].contains(size): self = .integer(size: size, signed: false, bigEndian: big)
        case "b" where size == 1: self = .bool
        case "S" where size > 0: self = .fixedBytes(size)
        case "O": self = .variableString
        case "V" where size > 0: self = .opaque(size)
        default: return nil
        }
    }
}

public struct VirtualArray: Sendable {
    /// What the files of an archive usually share (name, type, encoding, attributes), in one
    /// copy-on-write box: a year of files holds one copy of each variable's description rather
    /// than one per file (`SharedDescriptions`), and the struct a file holds per variable stays
    /// small.
    final class Description: @unchecked Sendable {
        // Unchecked: a description is changed only through `VirtualArray`'s accessors, which
        // copy it first unless this array is its only holder, so a shared one is never written.
        var path: String
        var dtype: ZarrDataType
        var chunkShape: [UInt64]
        var codecs: [Codec]
        var fillValue: JSON
        var fillBytes: [UInt8]?
        var dimensionNames: [String]
        var attributes: [(String, JSON)]
        var unpacking: Unpacking?
        var regridding: Regridding?

        init(
            path: String, dtype: ZarrDataType, chunkShape: [UInt64], codecs: [Codec], fillValue: JSON, fillBytes: [UInt8]?,
            dimensionNames: [String], attributes: [(String, JSON)], unpacking: Unpacking?, regridding: Regridding?
        ) {
            self.path = path
            self.dtype = dtype
            self.chunkShape = chunkShape
            self.codecs = codecs
            self.fillValue = fillValue
            self.fillBytes = fillBytes
            self.dimensionNames = dimensionNames
            self.attributes = attributes
            self.unpacking = unpacking
            self.regridding = regridding
        }

        func copy() -> Description {
            Description(
                path: path, dtype: dtype, chunkShape: chunkShape, codecs: codecs, fillValue: fillValue, fillBytes: fillBytes,
                dimensionNames: dimensionNames, attributes: attributes, unpacking: unpacking, regridding: regridding)
        }

        /// Equal in everything; a regridded array is never shared (its sources are per file).
        func isEqual(to other: Description) -> Bool {
            regridding == nil && other.regridding == nil && path == other.path && dtype == other.dtype
                && chunkShape == other.chunkShape && codecs == other.codecs && fillValue == other.fillValue
                && fillBytes == other.fillBytes && dimensionNames == other.dimensionNames && unpacking == other.unpacking
                && attributes.elementsEqual(other.attributes) { $0.0 == $1.0 && $0.1 == $1.1 }
        }
    }

    private(set) var described: Description
    public var shape: [UInt64]
    public var manifest: ChunkManifest
    /// The object whose layout this array came from, for error messages.
    public var origin: String

    private mutating func uniqueDescription() {
        if !isKnownUniquelyReferenced(&described) { described = described.copy() }
    }

    /// Slash-separated path without the leading slash (`T2`, `group/var`).
    public var path: String {
        get { described.path }
        _modify {
            uniqueDescription()
            yield &described.path
        }
    }
    public var dtype: ZarrDataType {
        get { described.dtype }
        _modify {
            uniqueDescription()
            yield &described.dtype
        }
    }
    public var chunkShape: [UInt64] {
        get { described.chunkShape }
        _modify {
            uniqueDescription()
            yield &described.chunkShape
        }
    }
    /// The stored chunks' encoding, in the order the writer applied it.
    public var codecs: [Codec] {
        get { described.codecs }
        _modify {
            uniqueDescription()
            yield &described.codecs
        }
    }
    /// Zarr's `fill_value` (v2: what xarray takes as `_FillValue`; null for none).
    public var fillValue: JSON {
        get { described.fillValue }
        _modify {
            uniqueDescription()
            yield &described.fillValue
        }
    }
    /// The fill value in the element's stored encoding, for fill chunks and v3.
    public var fillBytes: [UInt8]? {
        get { described.fillBytes }
        _modify {
            uniqueDescription()
            yield &described.fillBytes
        }
    }
    public var dimensionNames: [String] {
        get { described.dimensionNames }
        _modify {
            uniqueDescription()
            yield &described.dimensionNames
        }
    }
    public var attributes: [(String, JSON)] {
        get { described.attributes }
        _modify {
            uniqueDescription()
            yield &described.attributes
        }
    }
    /// Files that pack this variable differently, to be unpacked per file when served decoded.
    public var unpacking: Unpacking? {
        get { described.unpacking }
        _modify {
            uniqueDescription()
            yield &described.unpacking
        }
    }
    /// Served on a chunk grid of its own, assembled from these sources' decoded chunks.
    public var regridding: Regridding? {
        get { described.regridding }
        _modify {
            uniqueDescription()
            yield &described.regridding
        }
    }

    public init(
        path: String, dtype: ZarrDataType, shape: [UInt64], chunkShape: [UInt64], codecs: [Codec], fillValue: JSON,
        fillBytes: [UInt8]?, dimensionNames: [String], attributes: [(String, JSON)], manifest: ChunkManifest, origin: String
    ) {
        self.described = Description(
            path: path, dtype: dtype, chunkShape: chunkShape, codecs: codecs, fillValue: fillValue, fillBytes: fillBytes,
            dimensionNames: dimensionNames, attributes: attributes, unpacking: nil, regridding: nil)
        self.shape = shape
        self.manifest = manifest
        self.origin = origin
    }

    /// Takes `description` when it is equal to this array's own, so both holders share one copy.
    mutating func shareDescription(_ description: Description) -> Bool {
        if described === description { return true }
        guard described.isEqual(to: description) else { return false }
        described = description
        return true
    }

    public var name: String { String(path.split(separator: "/").last ?? "") }

    /// The attribute that keeps an enum variable's names and values (`{name: value}`); xarray's
    /// Zarr v2 reader hides it, as it hides every `_nc` attribute.
    public static let enumNamesAttribute = "_nc_enum"
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
    /// Names of the root group's unlimited dimensions (netCDF's record dimensions).
    public var unlimitedDimensions: [String] = []
    /// What combining the files changed that a user should know (re-encoded time values).
    public var notes: [String] = []

    public init(
        objects: [ObjectInfo] = [], groups: [VirtualGroup] = [VirtualGroup(path: "", attributes: [])],
        arrays: [VirtualArray] = [], warnings: [String] = []
    ) {
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

    /// The same chunks under a grid with a new trailing axis of extent one (no entry moves).
    func appendingAxis() -> ChunkManifest {
        var copy = self
        copy.gridShape.append(1)
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
        return VirtualArray(
            path: name, dtype: .integer(size: 8, signed: true),
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
        return VirtualArray(
            path: name,
            dtype: .fixedBytes(width),
            shape: [UInt64(values.count)], chunkShape: [UInt64(max(values.count, 1))], codecs: [], fillValue: .null,
            fillBytes: [UInt8](repeating: 0, count: width), dimensionNames: [name], attributes: [], manifest: manifest,
            origin: "file names")
    }
}

extension ZarrDataType {
    /// One element (`bytes`, in this type's byte order) as Zarr spells a fill value: a number,
    /// `"NaN"`, `"Infinity"` or `"-Infinity"` for a non-finite float, a boolean, base64 for fixed
    /// bytes (as Zarr v2 and xarray spell a bytes fill value); nil for the other kinds, or too
    /// few bytes. Every format's mapping and the Zarr v3 writer share it.
    public func fillValueJSON(_ bytes: [UInt8]) -> JSON? {
        guard bytes.count >= itemSize, itemSize > 0 else { return nil }
        if kind == .fixedBytes { return .string(Data(bytes.prefix(itemSize)).base64EncodedString()) }
        guard [.bool, .signed, .unsigned, .float].contains(kind), itemSize <= 8 else { return nil }
        var element = Array(bytes.prefix(itemSize))
        if bigEndian { element.reverse() }
        var bits: UInt64 = 0
        for (i, byte) in element.enumerated() { bits |= UInt64(byte) << UInt64(8 * i) }
        switch kind {
        case .bool: return .bool(bits != 0)
        case .signed:
            let shift = UInt64(64 - 8 * itemSize)
            return .int(Int64(bitPattern: bits << shift) >> Int64(shift))
        case .unsigned: return .uint(bits)
        default:
            let value: Double =
                itemSize == 4
                ? Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
                : itemSize == 2 ? Double(Float16(bitPattern: UInt16(truncatingIfNeeded: bits))) : Double(bitPattern: bits)
            if value.isNaN { return .string("NaN") }
            if value.isInfinite { return .string(value > 0 ? "Infinity" : "-Infinity") }
            return .double(value)
        }
    }
}

/// A dataset (or one of its arrays) that cannot be expressed as asked: a grid beyond what a
/// manifest indexes, a format that cannot hold a value, a variable left out with its reason.
public enum MappingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file's metadata of a variable is damaged: the scan stops rather than serve a dataset
    /// without it.
    case damagedVariable(file: String, path: String, reason: String)
    /// A datatype with no Zarr equivalent (what it is, in words: "12-byte integers").
    case unsupportedType(String)
    /// A storage layout or dataspace that has no chunk manifest (virtual datasets, null
    /// dataspaces, metadata the parser could not complete).
    case unsupportedLayout(String)
    /// Compact data shorter than the shape it claims.
    case shortCompactData(bytes: Int, shape: [UInt64], itemSize: Int)
    /// An HDF5 filter with no Zarr codec.
    case unsupportedFilter(name: String, id: UInt16)
    /// Fletcher-32 before shuffle: Zarr's shuffle codec cannot undo a buffer that is not a
    /// whole number of elements.
    case checksumBeforeShuffle
    /// Some chunks skipped filters and the array is too large to keep decoded and inline.
    case mixedFilterMasks(chunks: Int, mask: UInt32, decodedBytes: UInt64)
    /// A dimension list that names an object the file does not hold, or no dimension names.
    case dimensionNames(String)
    /// Never-written chunks read as a fill value that only a fill chunk can show, and the
    /// chunk is too large to hold one.
    case fillChunkTooLarge(chunkShape: [UInt64], limit: Int)
    /// A chunk grid beyond what a manifest indexes.
    case gridTooLarge(gridShape: [Int], shape: [UInt64], chunks: [UInt64], maxChunks: Int)
    /// An array asked to be inline whose values exceed the limit.
    case tooLargeToInline(path: String, what: String, limit: Int)
    /// A chunk that decodes to fewer bytes than its shape holds.
    case chunkDecodedSize(path: String, chunk: [Int], bytes: Int, expected: Int)
    /// A data type Zarr v3 cannot spell.
    case noV3DataType(path: String, dtype: String)
    /// Zarr v2 would need this many copies of an array's fill chunk.
    case tooManyFillCopies(path: String, origin: String, count: Int, fillBytes: Int, maxCopies: Int, maxBytes: Int)
    /// A Zarr v3 chunk grid that needs more prefix directories than a mount lists.
    case tooManyPrefixDirectories(path: String, gridShape: [Int], count: Int, max: Int)
    /// The variable-length data of a variable could not be read (the parser's reason).
    case variableLengthData(String)
    /// Raw data in external files that no chunk grid serves, or whose files cannot be used.
    case externalData(String)

    public var description: String {
        switch self {
        case .damagedVariable(let file, let path, let reason): "\(file): \(path): \(reason)"
        case .unsupportedType(let what): what
        case .unsupportedLayout(let what): what
        case .shortCompactData(let bytes, let shape, let itemSize):
            "its compact data holds \(bytes) bytes, but its shape \(shape) of \(itemSize)-byte elements needs more than compact storage can hold"
        case .unsupportedFilter(let name, let id): "filter \(name) (id \(id)) has no Zarr codec"
        case .checksumBeforeShuffle:
            "its filters shuffle the data together with its Fletcher-32 checksum (fletcher32 before shuffle), which Zarr's shuffle codec cannot undo (the buffer is not a whole number of elements)"
        case .mixedFilterMasks(let chunks, let mask, let decodedBytes):
            "\(chunks) chunks skipped filters (filter mask \(mask)); Zarr has one pipeline per array and the array (\(decodedBytes) bytes) is too large to keep decoded"
        case .dimensionNames(let what): what
        case .fillChunkTooLarge(let chunkShape, let limit):
            "chunks it never wrote read as its HDF5 fill value, which Zarr v2 can only show as a fill chunk, and its chunk (\(chunkShape)) is over \(limit) bytes"
        case .gridTooLarge(let gridShape, let shape, let chunks, let maxChunks):
            "its chunk grid \(gridShape) (shape \(shape) in chunks of \(chunks)) has more than \(maxChunks) chunks"
        case .tooLargeToInline(let path, let what, let limit):
            "\(path.isEmpty ? "" : "\(path): ")\(what), over the inline limit of \(limit) bytes"
        case .chunkDecodedSize(let path, let chunk, let bytes, let expected):
            "\(path): chunk \(chunk) decodes to \(bytes) bytes, expected \(expected)"
        case .noV3DataType(let path, let dtype): "\(path): \(dtype) has no Zarr v3 data type; use Zarr v2"
        case .tooManyFillCopies(let path, let origin, let count, let fillBytes, let maxCopies, let maxBytes):
            "\(path) (\(origin)): \(count) of its chunks were never written and would each be a copy of its \(fillBytes)-byte fill chunk in Zarr v2 (at most \(maxCopies) copies, \(maxBytes) bytes); use --zarr-format 3, whose fill_value is the HDF5 fill, or mount the archive (a mount serves one shared fill chunk)"
        case .tooManyPrefixDirectories(let path, let gridShape, let count, let max):
            "\(path): its chunk grid \(gridShape) needs \(count) chunk-prefix directories in Zarr v3 (at most \(max)); mount it as Zarr v2"
        case .variableLengthData(let reason): reason
        case .externalData(let reason): "raw data in external files: \(reason)"
        }
    }
}

extension ChunkManifest {
    /// Chunks along each axis of `shape` in chunks of `chunks` (a zero chunk extent gives none).
    public static func grid(_ shape: [UInt64], _ chunks: [UInt64]) -> [Int] {
        zip(shape, chunks).map { dim, chunk in chunk == 0 ? 0 : Int(clamping: dim / chunk + (dim % chunk == 0 ? 0 : 1)) }
    }

    /// An empty manifest for `shape` in chunks of `chunks`, or an error when the grid is beyond
    /// what a manifest indexes (a declared shape is not proof that anything was stored).
    public static func empty(shape: [UInt64], chunks: [UInt64]) throws -> ChunkManifest {
        let gridShape = grid(shape, chunks)
        guard chunkCount(gridShape) != nil else {
            throw MappingError.gridTooLarge(gridShape: gridShape, shape: shape, chunks: chunks, maxChunks: maxChunks)
        }
        return ChunkManifest(gridShape: gridShape)
    }
}
