import HDF5Mapping
import ByteSource
import Crypto
import Foundation
import HDF5Metadata
import ObjectStore
import VirtualZarr
import JSONValue

/// Per-file scan results on disk, keyed by (url, size, identity) and the mapping options, so
/// scanning an unchanged archive again makes no metadata reads: only the listing.
public struct ManifestCache: Sendable {
    public let directory: String
    /// Raised whenever the mapping output changes, so older cached results are scanned again.
    static let formatVersion = 6
    /// The executable that maps files (its size and modification time): a new build may map
    /// the same file differently, and a result from another build is never reused.
    static let buildIdentity: String = {
        var info = stat()
        guard stat("/proc/self/exe", &info) == 0 else { return "unknown" }
        return "\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }()

    public init(directory: String) {
        self.directory = directory
    }

    /// `$XDG_CACHE_HOME/zarrmount/manifests` or `~/.cache/zarrmount/manifests`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let base = environment["XDG_CACHE_HOME"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.cache")
        return base + "/zarrmount/manifests"
    }

    func path(for object: ListedObject) -> String { path(forURL: object.url) }

    private func path(forURL url: String) -> String { hashedPath(url, under: directory) + ".zmf" }

    /// `directory/ab/abcdef...`: the SHA-256 of `key`, fanned out by its first byte.
    private func hashedPath(_ key: String, under directory: String) -> String {
        let digest = Self.hexDigest(key)
        return directory + "/" + digest.prefix(2) + "/" + digest
    }

    static func hexDigest(_ text: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var digits: [UInt8] = []
        digits.reserveCapacity(64)
        for byte in SHA256.hash(data: Data(text.utf8)) {
            digits.append(hex[Int(byte >> 4)])
            digits.append(hex[Int(byte & 15)])
        }
        return String(decoding: digits, as: UTF8.self)
    }

    /// Whether some version of the object at `url` has a cached result (then a listing should
    /// ask for its identity alone: the result is probably still valid).
    public func hasEntry(for url: String) -> Bool {
        FileManager.default.fileExists(atPath: path(forURL: url))
    }

    static func key(_ object: ListedObject, options: MappingOptions) -> JSON {
        .object([
            ("url", .string(object.url)), ("size", .uint(object.size)), ("etag", object.identity.map { JSON.string($0.encoded) } ?? .null),
            ("inline", .array(options.inlineVariables.sorted().map(JSON.string))),
            ("inline_compared_values", options.inlineComparedValues ? .uint(UInt64(options.maxDimensionCoordinateBytes)) : .null),
            ("time_variables_along", options.timeVariablesAlong.map(JSON.string) ?? .null),
            ("split", .uint(options.contiguousSplitThreshold)), ("version", .int(Int64(formatVersion))),
            ("build", .string(buildIdentity)),
        ])
    }

    /// The cached dataset for this exact object version, or nil. Objects without an identity
    /// are never cached (a change could not be detected).
    public func load(_ object: ListedObject, options: MappingOptions) -> VirtualDataset? {
        let file = path(for: object)
        guard object.identity != nil, let data = FileManager.default.contents(atPath: file),
            let (contents, info) = try? ManifestFile.decodeContents([UInt8](data), name: file),
            info.cacheKey == Self.key(object, options: options), case .combined(let dataset) = contents
        else { return nil }
        var copy = dataset
        copy.objects = [ObjectInfo(listed: object)]
        return copy
    }

    /// Keeps `dataset` as a manifest file (`ManifestFile`) whose header carries the key.
    public func store(_ dataset: VirtualDataset, for object: ListedObject, options: MappingOptions) {
        // A result that reads other objects too (external raw-data files) is keyed by this
        // object alone, so a change of those would go unseen: it is scanned again each time.
        guard object.identity != nil, dataset.objects.count <= 1,
            let bytes = try? ManifestFile.encode(.combined(dataset), writer: "zarrmount cache", cacheKey: Self.key(object, options: options))
        else { return }
        Self.replace(path(for: object), with: bytes)
    }

    /// Writes `bytes` beside `target` and renames them over it: a scan stopped halfway, or two
    /// scans at once, leave a whole entry or none. A cache that cannot be written costs a scan
    /// next time, nothing more, so failures are not reported.
    static func replace(_ target: String, with bytes: [UInt8]) {
        try? FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = target + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else { return }
        if rename(temporary, target) != 0 { try? FileManager.default.removeItem(atPath: temporary) }
    }

    // MARK: Combined datasets

    /// The SHA-256 (hex) of everything a combined dataset follows from: every listed object's
    /// version in order, each file's mapping, the combine's options, this format and this build.
    /// What the combine reads (coordinates, samples, chunks proving a codec chain, `--compat
    /// equals` values) is bytes of those versions, so an equal key gives an equal dataset.
    public static func combinedKey(_ listed: [ListedObject], options: ScanOptions, mapping: MappingOptions) -> String {
        let combine = options.combine
        let key = JSON.object([
            ("objects", .array(listed.map { .array([.string($0.url), .uint($0.size), $0.identity.map { JSON.string($0.encoded) } ?? .null]) })),
            ("mapping", Self.key(ListedObject(url: "", size: 0, identity: nil), options: mapping)),
            ("concat_dim", combine.concatDimension.map(JSON.string) ?? .null), ("attrs", .string(combine.attributes.rawValue)),
            ("layout", .string(combine.layout.rawValue)), ("compat", combine.compat.map { JSON.string($0.rawValue) } ?? .null),
            ("ordered_by_coordinate", .bool(combine.orderedByCoordinate)), ("unpack", .bool(combine.unpack)), ("regrid", .bool(combine.regrid)),
            ("chunks", .array(combine.chunks.sorted { $0.key < $1.key }.map { .array([.string($0.key), .array($0.value.map(JSON.uint))]) })),
            ("order", .string(options.order.rawValue)),
            ("stack", options.stack.map { JSON.array([.string($0.dimension), .string($0.pattern)]) } ?? .null),
            ("keep", options.variables.keep.map { JSON.array($0.map(JSON.string)) } ?? .null),
            ("drop", .array(options.variables.drop.map(JSON.string))),
        ])
        return Self.hexDigest(key.rendered())
    }

    func combinedPath(key: String) -> String { directory + "/combined/" + key.prefix(2) + "/" + key + ".zmf" }

    /// The combined dataset stored under `key`, its objects described by this listing (owner and
    /// permissions as they are now), or nil when there is none or it does not fit the listing.
    public func loadCombined(key: String, listed: [ListedObject]) -> VirtualDataset? {
        let file = combinedPath(key: key)
        guard let data = FileManager.default.contents(atPath: file),
            let (contents, info) = try? ManifestFile.decodeContents([UInt8](data), name: file),
            info.cacheKey == .string(key), case .combined(var dataset) = contents,
            dataset.objects.map(\.url) == listed.map(\.url)
        else { return nil }
        dataset.objects = listed.map(ObjectInfo.init(listed:))
        return dataset
    }

    /// Keeps a combined dataset under `key`, unless it reads objects beyond the listing (external
    /// raw-data files, found and confined on every scan) or a manifest cannot hold it (arrays
    /// unpacked per file or regridded).
    public func storeCombined(_ dataset: VirtualDataset, key: String, listed: [ListedObject]) {
        guard dataset.objects.map(\.url) == listed.map(\.url),
            let bytes = try? ManifestFile.encode(.combined(dataset), writer: "zarrmount cache", cacheKey: .string(key))
        else { return }
        Self.replace(combinedPath(key: key), with: bytes)
    }

    // MARK: Proven codec chains

    /// A chunk whose decoding proved its variable's codec chain (`CodecProof`): proven once
    /// per object version, chunk and build, so scanning an unchanged archive again reads nothing.
    func proofPath(url: String, identity: ObjectIdentity, offset: UInt64, length: UInt64, codecs: [Codec]) -> String {
        let key = [
            url, identity.encoded, "\(offset)", "\(length)", JSON.array(codecs.map(\.numcodecsJSON)).rendered(),
            Self.buildIdentity,
        ].joined(separator: "\n")
        return hashedPath(key, under: directory + "/proofs")
    }

    func isProven(url: String, identity: ObjectIdentity, offset: UInt64, length: UInt64, codecs: [Codec]) -> Bool {
        FileManager.default.fileExists(atPath: proofPath(url: url, identity: identity, offset: offset, length: length, codecs: codecs))
    }

    func markProven(url: String, identity: ObjectIdentity, offset: UInt64, length: UInt64, codecs: [Codec]) {
        let target = proofPath(url: url, identity: identity, offset: offset, length: length, codecs: codecs)
        try? FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: target, contents: Data())
    }

    // MARK: Sampled bytes

    /// Bytes of an object version sampled to compare a variable between files (`CombineStep`),
    /// kept so that scanning an unchanged archive again reads nothing and a changed file is
    /// compared without reading the others. `key` names the object version and the ranges.
    func samplePath(_ key: String) -> String { hashedPath(key, under: directory + "/samples") }

    func sample(_ key: String) -> [UInt8]? {
        FileManager.default.contents(atPath: samplePath(key)).map { [UInt8]($0) }
    }

    func storeSample(_ key: String, bytes: [UInt8]) {
        Self.replace(samplePath(key), with: bytes)
    }

    // MARK: Encoding

    /// An array's Zarr metadata, without its chunk table (the cache's JSON and the manifest
    /// file's header share it).
    static func arrayMetadata(_ array: VirtualArray) -> [(String, JSON)] {
        [
            ("path", .string(array.path)),
            (
                "dtype",
                .object([
                    ("kind", .string("\(array.dtype.kind)")), ("size", .int(Int64(array.dtype.itemSize))),
                    ("big", .bool(array.dtype.bigEndian)), ("v2", array.dtype.v2), ("v3", array.dtype.v3 ?? .null),
                ])
            ),
            ("shape", .array(array.shape.map(JSON.uint))),
            ("chunks", .array(array.chunkShape.map(JSON.uint))),
            ("codecs", .array(array.codecs.map(\.numcodecsJSON))),
            ("fill_value", array.fillValue),
            ("fill_bytes", array.fillBytes.map { .string(Data($0).base64EncodedString()) } ?? .null),
            ("dims", .array(array.dimensionNames.map(JSON.string))),
            ("attributes", .object(array.attributes)),
            ("origin", .string(array.origin)),
        ]
    }

    struct DecodeError: Error {}

    /// An array from its metadata (`arrayMetadata`) and its chunk table.
    static func decodeArray(metadata json: JSON, manifest: ChunkManifest) throws -> VirtualArray {
        guard let path = json["path"]?.stringValue, let dtype = json["dtype"], let kindName = dtype["kind"]?.stringValue,
            let kind = ZarrDataType.Kind.named(kindName), let size = dtype["size"]?.int64Value, size >= 0, size <= Int64(Int32.max),
            let shape = json["shape"]?.arrayValue?.compactMap(\.uint64Value), let chunks = json["chunks"]?.arrayValue?.compactMap(\.uint64Value),
            shape.count == chunks.count, manifest.gridShape.count == shape.count
        else { throw DecodeError() }
        let v3 = dtype["v3"].flatMap { $0 == .null ? nil : $0 }
        let fillBytes = json["fill_bytes"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
        return VirtualArray(
            path: path,
            dtype: ZarrDataType(kind: kind, itemSize: Int(size), bigEndian: dtype["big"] == .bool(true), v2: dtype["v2"] ?? .null, v3: v3),
            shape: shape, chunkShape: chunks, codecs: (json["codecs"]?.arrayValue ?? []).map(Codec.init(numcodecs:)),
            fillValue: json["fill_value"] ?? .null, fillBytes: fillBytes,
            dimensionNames: json["dims"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            attributes: json["attributes"]?.objectValue ?? [], manifest: manifest, origin: json["origin"]?.stringValue ?? path)
    }
}
