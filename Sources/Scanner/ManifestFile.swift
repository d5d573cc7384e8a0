import ByteSource
import Crypto
import Foundation
import JSONValue
import VirtualZarr

/// The binary manifest (`.zmf`): a combined virtual dataset in one file that mounts without a
/// scan and without parsing a chunk's worth of JSON. `docs/manifest-format.md` is its
/// specification.
///
/// Layout (integers little-endian):
///
///     magic      8 bytes   89 'Z' 'M' 'F' 0D 0A 1A 0A
///     version    u32       ManifestFile.formatVersion
///     flags      u32       0
///     header     u64 compressed length, u64 raw length, then the zstd-compressed JSON header
///     blobs      zstd frames the header points into (offsets from the first blob's start)
///     checksum   32 bytes  SHA-256 of every byte before it
///
/// The header holds the objects (URL, size, identity), groups, warnings and every array's
/// metadata; each array's chunk table is four columns (indices when not every chunk is set,
/// object ids, offsets as deltas, lengths), 20 bytes a chunk before compression, and its
/// inline chunks one more blob. Nothing depends on the clock or the machine: the same dataset
/// always gives the same bytes.
public enum ManifestFile {
    static let magic: [UInt8] = [0x89, 0x5A, 0x4D, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
    public static let formatVersion: UInt32 = 1
    static let prefixLength = 32
    static let checksumLength = 32
    /// A manifest whose columns would need more memory than this is refused before any of it
    /// is allocated (about 200 million chunks).
    public static let maxRawBytes: UInt64 = 4 << 30
    /// zstd level: columns compress well at a low level, and writing stays faster than the scan.
    static let compressionLevel: Int32 = 3

    /// Whether `bytes` start like a manifest file.
    public static func hasMagic(_ bytes: some Collection<UInt8>) -> Bool { bytes.starts(with: magic) }

    /// What a manifest file holds besides the dataset.
    public struct Info: Sendable, Equatable {
        public var version: UInt32
        public var writer: String
        public var bytes: Int
        /// The manifest cache's key for the object a cached result belongs to (nil elsewhere).
        public var cacheKey: JSON? = nil
    }

    // MARK: Writing

    /// What a manifest file holds: one combined dataset (what mounts), or the files of one shard
    /// of a scan, each its own dataset, for `zarrmount merge` to combine.
    public enum Contents: Sendable {
        case combined(VirtualDataset)
        case shard(ShardParts)
    }

    /// The files of shard `shard` of a scan of `listedFiles` files, as scanned, before combining.
    public struct ShardParts: Sendable {
        public var shard: Shard
        public var listedFiles: Int
        public var parts: [(name: String, dataset: VirtualDataset)]
        public var skipped: [(file: String, reason: String)]

        public init(shard: Shard, listedFiles: Int, parts: [(name: String, dataset: VirtualDataset)], skipped: [(file: String, reason: String)]) {
            self.shard = shard
            self.listedFiles = listedFiles
            self.parts = parts
            self.skipped = skipped
        }
    }

    /// The manifest file of `dataset`. Arrays with per-file unpacking or a regridded chunk
    /// shape (`--unpack`, `--chunks`) are served from their sources' decoded chunks, which a
    /// manifest does not describe: they are refused.
    public static func encode(_ dataset: VirtualDataset, writer: String) throws -> [UInt8] {
        try encode(.combined(dataset), writer: writer)
    }

    public static func encode(_ contents: Contents, writer: String, cacheKey: JSON? = nil) throws -> [UInt8] {
        var blobs = BlobWriter()
        var header: [(String, JSON)] = [
            ("format", .string("zarrmount manifest")), ("version", .uint(UInt64(formatVersion))), ("writer", .string(writer)),
        ]
        if let cacheKey { header.append(("cache_key", cacheKey)) }
        switch contents {
        case .combined(let dataset):
            header += try blobs.fields(of: dataset)
        case .shard(let shard):
            header.append(("kind", .string("shard")))
            header.append(("shard", .array([.uint(UInt64(shard.shard.index)), .uint(UInt64(shard.shard.count))])))
            header.append(("listed_files", .uint(UInt64(shard.listedFiles))))
            var parts: [JSON] = []
            for part in shard.parts { parts.append(.object([("name", .string(part.name)), ("dataset", .object(try blobs.fields(of: part.dataset)))])) }
            header.append(("parts", .array(parts)))
            header.append(("skipped", .array(shard.skipped.map { .array([.string($0.file), .string($0.reason)]) })))
        }
        let rawHeader = Array(JSON.object(header).rendered().utf8)
        let compressedHeader = try blobs.compress(rawHeader)
        var file = magic
        file += littleEndian([formatVersion, 0])
        file += littleEndian([UInt64(compressedHeader.count), UInt64(rawHeader.count)])
        file += compressedHeader
        file += blobs.bytes
        file += Array(SHA256.hash(data: file))
        return file
    }

    /// The blobs section as it is written, and a dataset's header fields pointing into it.
    struct BlobWriter {
        var bytes: [UInt8] = []
        let frames = ZstdFrames()

        func compress(_ raw: [UInt8]) throws -> [UInt8] {
            guard let compressed = frames.compress(raw, level: compressionLevel) else {
                throw ManifestFileError(.cannotCompress, name: "manifest")
            }
            return compressed
        }

        /// Blobs below this are stored as they are: a zstd frame costs more than it saves on
        /// them, and a cached file's columns are mostly this small.
        static let smallestCompressed = 1024

        mutating func blob(_ raw: [UInt8]) throws -> JSON {
            let compressed = raw.count < Self.smallestCompressed ? raw : try compress(raw)
            defer { bytes += compressed }
            return .array([.uint(UInt64(bytes.count)), .uint(UInt64(compressed.count)), .uint(UInt64(raw.count))])
        }

        mutating func fields(of dataset: VirtualDataset) throws -> [(String, JSON)] {
            var arrays: [JSON] = []
            for array in dataset.arrays {
                guard array.unpacking == nil, array.regridding == nil else {
                    throw ManifestFileError(
                        .cannotDescribe(
                            "\(array.path) is unpacked per file or served on a chunk grid of its own (--unpack, --chunks), which a manifest cannot hold; write it without those options, and mount the sources to use them"
                        ), name: "manifest")
                }
                let columns = array.manifest.columns
                var fields = ManifestCache.arrayMetadata(array)
                fields.append(("grid", .array(array.manifest.gridShape.map { .int(Int64($0)) })))
                fields.append(("set", .uint(UInt64(columns.objects.count))))
                fields.append(("indices", try columns.indices.map { try blob(littleEndian(deltas($0.map { UInt64($0) }))) } ?? .null))
                fields.append(("objects", try blob(littleEndian(columns.objects))))
                fields.append(("offsets", try blob(littleEndian(deltas(columns.offsets)))))
                fields.append(("lengths", try blob(littleEndian(columns.lengths))))
                var inline: [UInt8] = littleEndian(columns.inlineChunks.map { UInt64($0.count) })
                for chunk in columns.inlineChunks { inline += chunk }
                fields.append(("inline_count", .uint(UInt64(columns.inlineChunks.count))))
                fields.append(("inline", columns.inlineChunks.isEmpty ? .null : try blob(inline)))
                fields.append(("fill_chunk", columns.fillIndex.map { .uint(UInt64($0)) } ?? .null))
                arrays.append(.object(fields))
            }
            return [
                ("objects", .array(dataset.objects.map(ManifestFile.encode))),
                ("groups", .array(dataset.groups.map { .object([("path", .string($0.path)), ("attributes", .object($0.attributes))]) })),
                ("warnings", .array(dataset.warnings.map(JSON.string))), ("notes", .array(dataset.notes.map(JSON.string))),
                ("unlimited_dimensions", .array(dataset.unlimitedDimensions.map(JSON.string))),
                ("arrays", .array(arrays)),
            ]
        }
    }

    static func encode(_ object: ObjectInfo) -> JSON {
        var fields: [(String, JSON)] = [("url", .string(object.url)), ("size", .uint(object.size))]
        fields.append(("identity", object.identity.map { .string($0.encoded) } ?? .null))
        fields.append(("last_modified", object.lastModified.map { .int($0) } ?? .null))
        if let access = object.access {
            fields.append(("access", .array([.uint(UInt64(access.uid)), .uint(UInt64(access.gid)), .uint(UInt64(access.mode))])))
        }
        return .object(fields)
    }

    // MARK: Reading

    /// The combined dataset in `bytes` (the whole file, `name` for errors); a shard's manifest
    /// is refused, saying to merge the shards. See `decodeContents`.
    public static func decode(_ bytes: [UInt8], name: String) throws -> (dataset: VirtualDataset, info: Info) {
        let (contents, info) = try decodeContents(bytes, name: name)
        switch contents {
        case .combined(let dataset): return (dataset, info)
        case .shard(let shard): throw ManifestFileError(.isShard(index: shard.shard.index, count: shard.shard.count), name: name)
        }
    }

    /// What `bytes` hold, every structure checked: the checksum first, then each length
    /// against what is left and the raw sizes against `maxRawBytes` before anything is
    /// allocated, then every chunk entry (`ChunkManifest`'s column initializer) and every
    /// reference against its object's size.
    public static func decodeContents(_ bytes: [UInt8], name: String) throws -> (contents: Contents, info: Info) {
        guard bytes.count >= magic.count, hasMagic(bytes) else { throw ManifestFileError(.notAManifest, name: name) }
        guard bytes.count >= prefixLength + checksumLength else { throw ManifestFileError(.truncated, name: name) }
        let version = UInt32(littleEndianBytes: bytes[8..<12])
        guard version == formatVersion else { throw ManifestFileError(.unsupportedVersion(version), name: name) }
        let body = bytes.count - checksumLength
        guard Array(SHA256.hash(data: bytes[0..<body])) == Array(bytes[body...]) else { throw ManifestFileError(.checksumMismatch, name: name) }
        let headerLength = UInt64(littleEndianBytes: bytes[16..<24])
        let headerRaw = UInt64(littleEndianBytes: bytes[24..<32])
        guard headerLength <= UInt64(body - prefixLength) else { throw ManifestFileError(.truncated, name: name) }
        let blobStart = prefixLength + Int(headerLength)
        var reader = BlobReader(blobs: bytes[blobStart..<body], name: name)
        let headerBytes = try reader.inflate(bytes[prefixLength..<blobStart], raw: headerRaw, what: "header")
        let header: JSON
        do { header = try JSON.parse(String(decoding: headerBytes, as: UTF8.self)) } catch {
            throw ManifestFileError(.corrupt("the header is not JSON (\(error))"), name: name)
        }
        guard header["format"]?.stringValue == "zarrmount manifest" else {
            throw ManifestFileError(.corrupt("the header does not say it is a zarrmount manifest"), name: name)
        }
        let info = Info(version: version, writer: header["writer"]?.stringValue ?? "unknown", bytes: bytes.count, cacheKey: header["cache_key"])
        guard header["kind"]?.stringValue == "shard" else { return (.combined(try reader.dataset(header)), info) }
        guard let position = header["shard"]?.arrayValue?.compactMap(\.uint64Value), position.count == 2, position[1] > 0,
            position[0] < position[1], position[1] <= UInt64(Int32.max), let listed = header["listed_files"]?.uint64Value,
            listed <= UInt64(Int32.max), let partsJSON = header["parts"]?.arrayValue
        else { throw ManifestFileError(.corrupt("a shard's header lacks its position, listing or parts"), name: name) }
        var parts: [(name: String, dataset: VirtualDataset)] = []
        var shared = SharedDescriptions()
        for part in partsJSON {
            guard let partName = part["name"]?.stringValue, let dataset = part["dataset"] else {
                throw ManifestFileError(.corrupt("a part lacks its name or dataset"), name: name)
            }
            var decoded = try reader.dataset(dataset)
            shared.compact(&decoded)
            parts.append((partName, decoded))
        }
        let skipped = (header["skipped"]?.arrayValue ?? []).compactMap { item -> (file: String, reason: String)? in
            guard let pair = item.arrayValue, pair.count == 2, let file = pair[0].stringValue, let reason = pair[1].stringValue else { return nil }
            return (file, reason)
        }
        let shard = ShardParts(
            shard: Shard(index: Int(position[0]), count: Int(position[1])), listedFiles: Int(listed), parts: parts, skipped: skipped)
        return (.shard(shard), info)
    }

    /// The blobs section as it is read, with what is left of the memory budget.
    struct BlobReader {
        let blobs: ArraySlice<UInt8>
        let name: String
        let frames = ZstdFrames()
        var budget = ManifestFile.maxRawBytes

        init(blobs: ArraySlice<UInt8>, name: String) {
            self.blobs = blobs
            self.name = name
        }

        mutating func dataset(_ header: JSON) throws -> VirtualDataset {
            guard let objectsJSON = header["objects"]?.arrayValue, let groupsJSON = header["groups"]?.arrayValue,
                let arraysJSON = header["arrays"]?.arrayValue
            else { throw ManifestFileError(.corrupt("the header lacks its objects, groups or arrays"), name: name) }
            var dataset = VirtualDataset(groups: [])
            for item in objectsJSON {
                guard let url = item["url"]?.stringValue, let size = item["size"]?.uint64Value else {
                    throw ManifestFileError(.corrupt("an object lacks its URL or size"), name: name)
                }
                var object = ObjectInfo(url: url, size: size)
                object.identity = item["identity"]?.stringValue.map(ObjectIdentity.init(encoded:))
                object.lastModified = item["last_modified"]?.int64Value
                if let access = item["access"]?.arrayValue?.compactMap(\.uint64Value), access.count == 3 {
                    object.access = FileAccess(uid: UInt32(clamping: access[0]), gid: UInt32(clamping: access[1]), mode: UInt32(clamping: access[2]))
                }
                dataset.objects.append(object)
            }
            for group in groupsJSON {
                guard let path = group["path"]?.stringValue else { throw ManifestFileError(.corrupt("a group lacks its path"), name: name) }
                dataset.groups.append(VirtualGroup(path: path, attributes: group["attributes"]?.objectValue ?? []))
            }
            dataset.warnings = header["warnings"]?.arrayValue?.compactMap(\.stringValue) ?? []
            dataset.notes = header["notes"]?.arrayValue?.compactMap(\.stringValue) ?? []
            dataset.unlimitedDimensions = header["unlimited_dimensions"]?.arrayValue?.compactMap(\.stringValue) ?? []
            for item in arraysJSON { dataset.arrays.append(try array(item, objects: dataset.objects)) }
            return dataset
        }

        mutating func array(_ item: JSON, objects: [ObjectInfo]) throws -> VirtualArray {
            let path = item["path"]?.stringValue ?? "?"
            func column(_ key: String, width: Int, count: Int) throws -> [UInt8]? {
                guard let range = item[key], range != .null else { return nil }
                guard let parts = range.arrayValue?.compactMap(\.uint64Value), parts.count == 3, parts[2] == UInt64(width) * UInt64(count) else {
                    throw ManifestFileError(.corrupt("\(path): the \(key) column does not hold \(count) entries"), name: name)
                }
                return try slice(parts, what: "\(path) \(key)")
            }
            guard let grid = item["grid"]?.arrayValue?.compactMap(\.int64Value), let set = item["set"]?.uint64Value,
                let inlineCount = item["inline_count"]?.uint64Value,
                let gridCount = ChunkManifest.chunkCount(grid.map { Int(clamping: $0) }), set <= UInt64(gridCount),
                inlineCount <= budget
            else { throw ManifestFileError(.corrupt("\(path): no chunk grid, or more entries than the grid has"), name: name) }
            let entries = Int(set)
            let indices = try column("indices", width: 8, count: entries).map { undeltas(values($0, as: UInt64.self)).map { Int(clamping: $0) } }
            if indices == nil, entries != gridCount {
                throw ManifestFileError(.corrupt("\(path): \(entries) entries for a grid of \(gridCount) chunks, without indices"), name: name)
            }
            guard let objectIDs = try column("objects", width: 4, count: entries), let offsets = try column("offsets", width: 8, count: entries),
                let lengths = try column("lengths", width: 8, count: entries)
            else { throw ManifestFileError(.corrupt("\(path): a chunk column is missing"), name: name) }
            var inlineChunks: [[UInt8]] = []
            if let range = item["inline"]?.arrayValue?.compactMap(\.uint64Value), range.count == 3 {
                let table = try slice(range, what: "\(path) inline chunks")
                guard UInt64(table.count) >= inlineCount * 8 else { throw ManifestFileError(.corrupt("\(path): the inline chunks are cut short"), name: name) }
                let sizes = values(Array(table[0..<(Int(inlineCount) * 8)]), as: UInt64.self)
                var position = Int(inlineCount) * 8
                for size in sizes {
                    guard size <= UInt64(table.count - position) else {
                        throw ManifestFileError(.corrupt("\(path): the inline chunks are cut short"), name: name)
                    }
                    inlineChunks.append(Array(table[position..<(position + Int(size))]))
                    position += Int(size)
                }
            } else if inlineCount > 0 {
                throw ManifestFileError(.corrupt("\(path): \(inlineCount) inline chunks declared, none stored"), name: name)
            }
            let fill = item["fill_chunk"]?.uint64Value.map { Int(clamping: $0) }
            let columns = ChunkManifest.Columns(
                indices: indices, objects: values(objectIDs, as: UInt32.self), offsets: undeltas(values(offsets, as: UInt64.self)),
                lengths: values(lengths, as: UInt64.self), inlineChunks: inlineChunks, fillIndex: fill)
            var array: VirtualArray
            do {
                let manifest = try ChunkManifest(gridShape: grid.map { Int(clamping: $0) }, columns: columns, objectCount: objects.count)
                array = try ManifestCache.decodeArray(metadata: item, manifest: manifest)
            } catch let error as ChunkManifest.ColumnsError {
                throw ManifestFileError(.corrupt("\(path): \(error)"), name: name)
            } catch {
                throw ManifestFileError(.corrupt("\(path): its metadata cannot be read"), name: name)
            }
            for (position, object) in columns.objects.enumerated() where object != ChunkManifest.inlineObject {
                let size = objects[Int(object)].size
                let (offset, length) = (columns.offsets[position], columns.lengths[position])
                guard length <= size, offset <= size - length else {
                    let linear = columns.indices?[position] ?? position
                    throw ManifestFileError(
                        .corrupt(
                            "chunk \(array.manifest.coordinates(linear)) of \(path) is bytes \(offset)..<\(offset &+ length) of \(objects[Int(object)].url), which has \(size) bytes"
                        ), name: name)
                }
            }
            array.path = path
            return array
        }

        mutating func slice(_ range: [UInt64], what: String) throws -> [UInt8] {
            let (start, length, raw) = (range[0], range[1], range[2])
            guard start <= UInt64(blobs.count), length <= UInt64(blobs.count) - start else {
                throw ManifestFileError(.corrupt("\(what) lies beyond the end of the file"), name: name)
            }
            let from = blobs.startIndex + Int(start)
            // A blob stored as it is (below `BlobWriter.smallestCompressed`) has its raw length.
            if length == raw, raw < UInt64(BlobWriter.smallestCompressed) { return Array(blobs[from..<(from + Int(length))]) }
            return try inflate(blobs[from..<(from + Int(length))], raw: raw, what: what)
        }

        /// One zstd frame of exactly `raw` bytes, counted against the budget before it is allocated.
        mutating func inflate(_ frame: ArraySlice<UInt8>, raw: UInt64, what: String) throws -> [UInt8] {
            guard raw <= budget else { throw ManifestFileError(.tooLarge(what: what, limit: ManifestFile.maxRawBytes), name: name) }
            budget -= raw
            guard ZstdFrames.declaredSize(frame) == raw else {
                throw ManifestFileError(.corrupt("\(what) is not one zstd frame of \(raw) bytes"), name: name)
            }
            guard let output = frames.decompress(frame, size: Int(raw)) else {
                throw ManifestFileError(.corrupt("\(what) does not decompress to \(raw) bytes"), name: name)
            }
            return output
        }
    }

    /// `bytes` with its header JSON passed through `edit` and the checksum made good again: how
    /// tests build manifests whose checksum holds but whose contents lie.
    static func rewritingHeader(_ bytes: [UInt8], _ edit: (JSON) throws -> JSON) throws -> [UInt8] {
        let headerLength = Int(UInt64(littleEndianBytes: bytes[16..<24]))
        let headerRaw = UInt64(littleEndianBytes: bytes[24..<32])
        var reader = BlobReader(blobs: bytes[0..<0], name: "")
        let header = try JSON.parse(
            String(decoding: try reader.inflate(bytes[prefixLength..<(prefixLength + headerLength)], raw: headerRaw, what: ""), as: UTF8.self))
        let raw = Array(try edit(header).rendered().utf8)
        let compressed = try BlobWriter().compress(raw)
        var file = Array(bytes[0..<16]) + littleEndian([UInt64(compressed.count), UInt64(raw.count)]) + compressed
        file += bytes[(prefixLength + headerLength)..<(bytes.count - checksumLength)]
        file += Array(SHA256.hash(data: file))
        return file
    }

    // MARK: Columns

    static func deltas(_ values: [UInt64]) -> [UInt64] {
        var previous: UInt64 = 0
        return values.map { value in
            defer { previous = value }
            return value &- previous
        }
    }

    static func undeltas(_ values: [UInt64]) -> [UInt64] {
        var running: UInt64 = 0
        return values.map { delta in
            running = running &+ delta
            return running
        }
    }

    static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * MemoryLayout<T>.size)
        out.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() { raw.storeBytes(of: value.littleEndian, toByteOffset: index * MemoryLayout<T>.size, as: T.self) }
        }
        return out
    }

    static func values<T: FixedWidthInteger>(_ bytes: [UInt8], as type: T.Type) -> [T] {
        let count = bytes.count / MemoryLayout<T>.size
        return bytes.withUnsafeBytes { raw in
            (0..<count).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
        }
    }
}

extension FixedWidthInteger {
    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var value: Self = 0
        for (shift, byte) in bytes.enumerated() { value |= Self(byte) << (shift * 8) }
        self = value
    }
}

/// Why a manifest file cannot be read or written, with the file's name.
public struct ManifestFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case notAManifest
        case unsupportedVersion(UInt32)
        case truncated
        case checksumMismatch
        case tooLarge(what: String, limit: UInt64)
        case corrupt(String)
        case cannotCompress
        case cannotDescribe(String)
        case isShard(index: Int, count: Int)
    }

    public var kind: Kind
    public var name: String

    public init(_ kind: Kind, name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String {
        switch kind {
        case .notAManifest: "\(name): not a zarrmount manifest (no .zmf signature); write one with `zarrmount scan ... --manifest FILE.zmf`"
        case .unsupportedVersion(let version):
            "\(name): manifest format version \(version), but this zarrmount reads version \(ManifestFile.formatVersion); write it again with this zarrmount (`zarrmount scan ... --manifest`)"
        case .truncated: "\(name): the manifest is cut short; copy it again or write it again"
        case .checksumMismatch: "\(name): the manifest's checksum does not match its contents (damaged in storage or transfer); copy it again or write it again"
        case .tooLarge(let what, let limit): "\(name): \(what) would take more than \(limit) bytes of memory; the manifest is refused"
        case .corrupt(let detail): "\(name): damaged manifest: \(detail)"
        case .cannotCompress: "\(name): zstd could not compress the manifest"
        case .cannotDescribe(let detail): "\(name): \(detail)"
        case .isShard(let index, let count):
            "\(name): shard \(index)/\(count) of a scan (files not combined yet); combine the shards with `zarrmount merge PART.zmf... --manifest ALL.zmf`, then use that"
        }
    }
}
