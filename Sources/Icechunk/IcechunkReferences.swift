import Foundation
import JSONValue

/// A snapshot as a kerchunk reference document (version 1), so that the mount serves it
/// through the same model, confinement and identity checks as any reference file: each
/// array's Zarr v3 metadata as the equivalent v2 `.zarray`, its attributes and dimension names
/// as `.zattrs`, native chunks as ranges of the repository's chunk objects, virtual chunks as
/// ranges of the objects they name, inline chunks as base64.
public struct IcechunkReferences: Sendable {
    /// The reference document's text.
    public var text: String
    /// What each virtual chunk's object was when the repository recorded it, by URL: the mount
    /// refuses an object that changed since (as icechunk refuses to read it).
    public var checksums: [String: IcechunkChunkRef.Checksum]
    /// Each array's Zarr v3 fill value, by array path (`sub/temp`): what its missing chunks
    /// read as. The v2 form's fill value is the CF `_FillValue` instead (as xarray reads it),
    /// so missing chunks are given a chunk of this value where the two differ.
    public var missingChunkFills: [String: JSON]
    /// The size each of the repository's chunk objects has at least (the end of its last
    /// chunk), by URL. Chunk objects are named by their content's id and never rewritten, so
    /// a mount of a remote repository takes these sizes instead of a HEAD per object.
    public var nativeObjectSizes: [String: UInt64]

    public init(snapshot: IcechunkSnapshot, references: [String: [IcechunkChunkRef]], root: String) throws {
        var refs: [(String, JSON)] = []
        var checksums: [String: IcechunkChunkRef.Checksum] = [:]
        var fills: [String: JSON] = [:]
        var nativeSizes: [String: UInt64] = [:]
        let chunkDirectory = root.hasSuffix("/") ? root + "chunks/" : root + "/chunks/"
        for node in snapshot.nodes.sorted(by: { $0.path < $1.path }) {
            let key = node.path == "/" ? "" : String(node.path.dropFirst()) + "/"
            let metadata: JSON
            do { metadata = try JSON.parse(String(decoding: node.zarrMetadata, as: UTF8.self)) } catch {
                throw IcechunkError.unsupportedMetadata(path: node.path, detail: "its zarr.json is not JSON: \(error)")
            }
            var attributes = metadata["attributes"]?.objectValue ?? []
            guard node.array != nil else {
                refs.append((key + ".zgroup", .string(#"{"zarr_format":2}"#)))
                if !attributes.isEmpty { refs.append((key + ".zattrs", .string(JSON.object(attributes).rendered()))) }
                continue
            }
            // Zarr v3 keeps the CF fill value (`_FillValue`) as an attribute, apart from the
            // array's fill value; v2 has one fill value, which readers take as `_FillValue`.
            let cfFill = try attributes.first { $0.0 == "_FillValue" }.map { try Self.cfFill($0.1, metadata: metadata, path: node.path) }
            attributes.removeAll { $0.0 == "_FillValue" }
            let zarray = try Self.zarray(metadata, path: node.path, fill: cfFill ?? .null)
            refs.append((key + ".zarray", .string(zarray.rendered())))
            fills[String(key.dropLast())] = metadata["fill_value"] ?? .null
            if let names = metadata["dimension_names"]?.arrayValue, !names.isEmpty {
                attributes.removeAll { $0.0 == "_ARRAY_DIMENSIONS" }
                attributes.append(("_ARRAY_DIMENSIONS", .array(names.map { $0.stringValue.map(JSON.string) ?? .null })))
            }
            if !attributes.isEmpty { refs.append((key + ".zattrs", .string(JSON.object(attributes).rendered()))) }
            for chunk in references[node.path] ?? [] {
                let chunkKey = key + (chunk.index.isEmpty ? "0" : chunk.index.map(String.init).joined(separator: "."))
                switch chunk.payload {
                case .inline(let bytes):
                    refs.append((chunkKey, .string("base64:" + Data(bytes).base64EncodedString())))
                case .native(let id, let offset, let length):
                    let url = chunkDirectory + id.description
                    refs.append((chunkKey, .array([.string(url), .uint(offset), .uint(length)])))
                    let (end, overflow) = offset.addingReportingOverflow(length)
                    if !overflow { nativeSizes[url] = max(nativeSizes[url] ?? 0, end) }
                case .virtual(let location, let offset, let length, let checksum):
                    let url = location.hasPrefix("file://") ? String(location.dropFirst("file://".count)) : location
                    refs.append((chunkKey, .array([.string(url), .uint(offset), .uint(length)])))
                    if let checksum { checksums[url] = checksum }
                }
            }
        }
        text = JSON.object([("version", .int(1)), ("refs", .object(refs))]).rendered()
        self.checksums = checksums
        missingChunkFills = fills
        nativeObjectSizes = nativeSizes
    }

    /// xarray writes a floating-point `_FillValue` under Zarr v3 as the base64 of its bytes
    /// (little-endian, to keep NaN payloads); integers as numbers.
    static func cfFill(_ value: JSON, metadata: JSON, path: String) throws -> JSON {
        guard case .string(let text) = value else { return value }
        guard let bytes = Data(base64Encoded: text) else { return value }
        switch (metadata["data_type"]?.stringValue, bytes.count) {
        case ("float64", 8), ("float32", 8):
            let bits = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            return floatJSON(Double(bitPattern: bits))
        case ("float32", 4):
            let bits = bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            return floatJSON(Double(Float(bitPattern: bits)))
        default:
            throw IcechunkError.unsupportedMetadata(
                path: path, detail: "a _FillValue of \(bytes.count) base64 bytes for \(metadata["data_type"]?.stringValue ?? "?")")
        }
    }

    static func floatJSON(_ value: Double) -> JSON {
        value.isNaN ? .string("NaN") : value == .infinity ? .string("Infinity") : value == -.infinity ? .string("-Infinity") : .double(value)
    }

    /// A Zarr v3 array's metadata as the v2 `.zarray` that stores the same chunks: the data
    /// type with its byte order, the bytes-to-bytes codecs as filters and compressor.
    static func zarray(_ metadata: JSON, path: String, fill: JSON) throws -> JSON {
        func refuse(_ detail: String) -> IcechunkError { .unsupportedMetadata(path: path, detail: detail) }
        guard let shape = metadata["shape"]?.arrayValue?.compactMap(\.int64Value),
            let chunks = metadata["chunk_grid"]?["configuration"]?["chunk_shape"]?.arrayValue?.compactMap(\.int64Value),
            shape.count == chunks.count, metadata["chunk_grid"]?["name"]?.stringValue == "regular"
        else { throw refuse("no regular chunk grid matching its shape") }
        guard let dataType = metadata["data_type"]?.stringValue else { throw refuse("no data_type") }
        var codecs = metadata["codecs"]?.arrayValue ?? []
        guard let bytesIndex = codecs.firstIndex(where: { $0["name"]?.stringValue == "bytes" }) else {
            throw refuse("no bytes codec (array-to-bytes codecs other than bytes, such as sharding_indexed, are not served)")
        }
        guard bytesIndex == 0 else {
            throw refuse("array-to-array codecs before bytes (\(codecs[0]["name"]?.stringValue ?? "?")) have no Zarr v2 form")
        }
        let endian = codecs[bytesIndex]["configuration"]?["endian"]?.stringValue ?? "little"
        codecs.removeFirst()
        let kinds: [String: (Character, Int)] = [
            "bool": ("b", 1), "int8": ("i", 1), "int16": ("i", 2), "int32": ("i", 4), "int64": ("i", 8), "uint8": ("u", 1),
            "uint16": ("u", 2), "uint32": ("u", 4), "uint64": ("u", 8), "float16": ("f", 2), "float32": ("f", 4), "float64": ("f", 8),
            "complex64": ("c", 8), "complex128": ("c", 16),
        ]
        guard let (kind, size) = kinds[dataType] else { throw refuse("data type \(dataType), which zarrmount does not serve") }
        let dtype = (size == 1 ? "|" : (endian == "big" ? ">" : "<")) + String(kind) + String(size)
        let v2Codecs = try codecs.map { codec -> JSON in
            guard let name = codec["name"]?.stringValue else { throw refuse("a codec without a name") }
            var configuration = codec["configuration"]?.objectValue ?? []
            switch name {
            case "zstd":
                return .object([("id", .string("zstd")), ("level", configuration.first { $0.0 == "level" }?.1 ?? .int(0))])
            case "gzip":
                return .object([("id", .string("gzip")), ("level", configuration.first { $0.0 == "level" }?.1 ?? .int(5))])
            case "blosc":
                let shuffles = ["noshuffle": 0, "shuffle": 1, "bitshuffle": 2]
                let shuffle = configuration.first { $0.0 == "shuffle" }?.1.stringValue.flatMap { shuffles[$0] } ?? 0
                return .object([
                    ("id", .string("blosc")), ("cname", configuration.first { $0.0 == "cname" }?.1 ?? .string("lz4")),
                    ("clevel", configuration.first { $0.0 == "clevel" }?.1 ?? .int(5)), ("shuffle", .int(Int64(shuffle))),
                    ("blocksize", configuration.first { $0.0 == "blocksize" }?.1 ?? .int(0)),
                ])
            case let other where other.hasPrefix("numcodecs."):
                // numcodecs' codecs under Zarr v3 (VirtualiZarr's zlib, shuffle): the v2 form is
                // the configuration with the id.
                configuration.removeAll { $0.0 == "id" }
                return .object([("id", .string(String(other.dropFirst("numcodecs.".count))))] + configuration)
            default:
                throw refuse("codec \(name), which has no Zarr v2 form zarrmount serves")
            }
        }
        return .object([
            ("chunks", .array(chunks.map { .int($0) })), ("compressor", v2Codecs.last ?? .null), ("dtype", .string(dtype)),
            ("fill_value", try fillValue(fill, kind: kind, refuse: refuse)),
            ("filters", v2Codecs.count > 1 ? .array(Array(v2Codecs.dropLast())) : .null), ("order", .string("C")),
            ("shape", .array(shape.map { .int($0) })), ("zarr_format", .int(2)),
        ])
    }

    /// Zarr v3 fill values as v2 writes them: numbers as they are, the special floats as
    /// strings, booleans as JSON booleans; a hexadecimal bit pattern is refused.
    static func fillValue(_ value: JSON, kind: Character, refuse: (String) -> IcechunkError) throws -> JSON {
        switch value {
        case .string(let text) where ["NaN", "Infinity", "-Infinity"].contains(text):
            return value
        case .string(let text):
            throw refuse("fill value \"\(text)\" (a bit pattern), which has no Zarr v2 form")
        case .array where kind == "c":
            throw refuse("a complex fill value, which zarrmount does not serve")
        default:
            return value
        }
    }
}
