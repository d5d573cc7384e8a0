import Foundation
import VirtualZarr

/// An Icechunk object id: 12 random bytes for snapshots, manifests and chunks (8 for nodes),
/// written in file names and references as Crockford base 32 without padding.
public struct IcechunkObjectID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses the 20-character form of a 12-byte id (case-insensitive, as Crockford allows).
    public init?(_ text: String) {
        let characters = Array(text.uppercased().utf8)
        guard characters.count == 20 else { return nil }
        var bits: UInt64 = 0
        var held = 0
        var bytes: [UInt8] = []
        for character in characters {
            guard let value = Self.alphabet.firstIndex(of: character) else { return nil }
            bits = bits << 5 | UInt64(value)
            held += 5
            if held >= 8 {
                held -= 8
                bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(held)))
            }
        }
        guard bytes.count == 12, bits & ((1 << UInt64(held)) - 1) == 0 else { return nil }
        self.bytes = bytes
    }

    public var description: String {
        var text: [UInt8] = []
        var bits: UInt64 = 0
        var held = 0
        for byte in bytes {
            bits = bits << 8 | UInt64(byte)
            held += 8
            while held >= 5 {
                held -= 5
                text.append(Self.alphabet[Int(bits >> UInt64(held) & 31)])
            }
        }
        if held > 0 { text.append(Self.alphabet[Int(bits << UInt64(5 - held) & 31)]) }
        return String(decoding: text, as: UTF8.self)
    }
}

/// The binary header every Icechunk metadata file starts with: magic, the writer's name, the
/// format version, the file type and the compression of what follows (a FlatBuffer).
struct IcechunkFileHeader {
    static let magic = Array("ICE🧊CHUNK".utf8)
    static let length = 12 + 24 + 3

    enum FileType: UInt8 {
        case snapshot = 1, manifest = 2, attributes = 3, transactionLog = 4, chunk = 5, repoInfo = 6
    }

    var writer: String
    var specVersion: UInt8
    var fileType: UInt8
    var compression: UInt8

    /// The FlatBuffer inside `bytes`, decompressed, after checking the header says `expected`.
    static func payload(of bytes: [UInt8], file: String, expected: FileType, limit: Int) throws -> FlatBuffer {
        guard bytes.count >= length, Array(bytes[0..<12]) == magic else {
            throw IcechunkError.malformed(file: file, structure: "file header", offset: 0, detail: "no Icechunk magic bytes")
        }
        let header = IcechunkFileHeader(
            writer: String(decoding: bytes[12..<36], as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: " \0")),
            specVersion: bytes[36], fileType: bytes[37], compression: bytes[38])
        guard header.specVersion == 1 else { throw IcechunkError.unsupportedSpecVersion(file: file, version: header.specVersion) }
        guard header.fileType == expected.rawValue else {
            throw IcechunkError.wrongFileType(file: file, expected: expected.rawValue, found: header.fileType)
        }
        let body = Array(bytes[length...])
        switch header.compression {
        case 0:
            return FlatBuffer(body, name: file)
        case 1:
            do {
                return FlatBuffer(try ZstdFrames.decompress(body, limit: limit), name: file)
            } catch CodecError.oversizedChunk {
                throw IcechunkError.tooLarge(file: file, limit: limit)
            } catch {
                throw IcechunkError.malformed(file: file, structure: "zstd stream", offset: length, detail: "\(error)")
            }
        default:
            throw IcechunkError.unsupportedCompression(file: file, code: header.compression)
        }
    }
}

/// A snapshot: the repository's groups and arrays at one commit.
public struct IcechunkSnapshot: Sendable {
    public var id: IcechunkObjectID
    public var parentID: IcechunkObjectID?
    /// Microseconds since 1970 (when the commit was flushed).
    public var flushedAt: UInt64
    public var message: String
    public var nodes: [IcechunkNode]
    /// The manifest files the snapshot's arrays use, with their sizes and chunk counts.
    public var manifestFiles: [(id: IcechunkObjectID, bytes: UInt64, chunkReferences: UInt32)]
}

public struct IcechunkNode: Sendable {
    public var id: [UInt8]
    /// `/` for the root group, `/name/...` below it.
    public var path: String
    /// The node's Zarr v3 metadata document (zarr.json), as written.
    public var zarrMetadata: [UInt8]
    public var array: IcechunkArrayNode?
}

public struct IcechunkArrayNode: Sendable {
    public var shape: [UInt64]
    public var chunkShape: [UInt64]
    public var dimensionNames: [String?]
    public var manifests: [IcechunkManifestRef]
}

public struct IcechunkManifestRef: Sendable {
    public var id: IcechunkObjectID
    /// Per dimension, the half-open range of chunk indices the manifest covers.
    public var extents: [Range<UInt32>]
}

/// A chunk manifest: chunk references for one or more arrays.
public struct IcechunkManifest: Sendable {
    public var id: IcechunkObjectID
    public var arrays: [[UInt8]: [IcechunkChunkRef]]
}

public struct IcechunkChunkRef: Sendable, Equatable {
    public var index: [UInt32]
    public var payload: Payload

    public enum Payload: Sendable, Equatable {
        /// The chunk's bytes, kept in the manifest (small chunks).
        case inline([UInt8])
        /// A chunk object of the repository (`chunks/ID`), or a range of one.
        case native(IcechunkObjectID, offset: UInt64, length: UInt64)
        /// A range of an object outside the repository, with what identified it when written.
        case virtual(location: String, offset: UInt64, length: UInt64, checksum: Checksum?)
    }

    /// How many of `chunks` are native, inline and virtual, and how many objects the virtual
    /// ones point into.
    public static func tally(_ chunks: [IcechunkChunkRef]) -> (native: Int, inline: Int, virtual: Int, virtualObjects: Int) {
        var native = 0, inline = 0, virtual = 0
        var locations: Set<String> = []
        for chunk in chunks {
            switch chunk.payload {
            case .native: native += 1
            case .inline: inline += 1
            case .virtual(let location, _, _, _):
                virtual += 1
                locations.insert(location)
            }
        }
        return (native, inline, virtual, locations.count)
    }

    public enum Checksum: Sendable, Equatable {
        case etag(String)
        /// Seconds since 1970: the object must not have been modified after this.
        case lastModified(UInt32)
    }
}

extension IcechunkSnapshot {
    init(_ buffer: FlatBuffer) throws {
        let root = try buffer.root("snapshot")
        guard let id = try root.bytes(0, count: 12) else { throw buffer.error("snapshot", at: root.position, "no id") }
        self.id = IcechunkObjectID(bytes: id)
        parentID = try root.bytes(1, count: 12).map(IcechunkObjectID.init(bytes:))
        flushedAt = try root.u64(3)
        message = try root.string(4) ?? ""
        // ManifestFileInfo is a struct: the 12-byte id, then (aligned to 8) the size and the count.
        manifestFiles = try (root.structVector(6, elementSize: 32) ?? []).map { position in
            (
                IcechunkObjectID(bytes: try buffer.slice(at: position, count: 12, "manifest file info")),
                try buffer.u64(at: position + 16, "manifest file info"), try buffer.u32(at: position + 24, "manifest file info")
            )
        }
        nodes = try (root.tableVector(2, "node") ?? []).map { node in
            guard let id = try node.bytes(0, count: 8), let path = try node.string(1) else {
                throw buffer.error("node", at: node.position, "no id or path")
            }
            let metadata = try node.byteVector(2) ?? []
            var array: IcechunkArrayNode?
            // node_data is a union: its type (1 array, 2 group) in field 3, the table in field 4.
            switch try node.u8(3) {
            case 1:
                guard let data = try node.table(4, "array node data") else { throw buffer.error("node \(path)", at: node.position, "no array data") }
                let shape = try (data.structVector(0, elementSize: 16) ?? []).map {
                    (try buffer.u64(at: $0, "array shape"), try buffer.u64(at: $0 + 8, "array shape"))
                }
                let names = try (data.tableVector(1, "dimension name") ?? []).map { try $0.string(0) }
                let manifests = try (data.tableVector(2, "manifest ref") ?? []).map { reference in
                    guard let id = try reference.bytes(0, count: 12) else { throw buffer.error("manifest ref", at: reference.position, "no id") }
                    let extents = try (reference.structVector(1, elementSize: 8) ?? []).map { position in
                        let from = try buffer.u32(at: position, "manifest extent"), to = try buffer.u32(at: position + 4, "manifest extent")
                        guard from <= to else { throw buffer.error("manifest extent", at: position, "\(from) > \(to)") }
                        return from..<to
                    }
                    return IcechunkManifestRef(id: IcechunkObjectID(bytes: id), extents: extents)
                }
                array = IcechunkArrayNode(shape: shape.map(\.0), chunkShape: shape.map(\.1), dimensionNames: names, manifests: manifests)
            case 2:
                array = nil
            case let other:
                throw buffer.error("node \(path)", at: node.position, "node data of type \(other)")
            }
            return IcechunkNode(id: id, path: path, zarrMetadata: metadata, array: array)
        }
    }
}

extension IcechunkManifest {
    init(_ buffer: FlatBuffer) throws {
        let root = try buffer.root("manifest")
        guard let id = try root.bytes(0, count: 12) else { throw buffer.error("manifest", at: root.position, "no id") }
        self.id = IcechunkObjectID(bytes: id)
        arrays = [:]
        for array in try root.tableVector(1, "array manifest") ?? [] {
            guard let node = try array.bytes(0, count: 8) else { throw buffer.error("array manifest", at: array.position, "no node id") }
            arrays[node] = try (array.tableVector(1, "chunk ref") ?? []).map { reference in
                let index = try reference.u32Vector(0) ?? []
                let offset = try reference.u64(2), length = try reference.u64(3)
                if let bytes = try reference.byteVector(1) {
                    return IcechunkChunkRef(index: index, payload: .inline(bytes))
                }
                if let chunk = try reference.bytes(4, count: 12) {
                    return IcechunkChunkRef(index: index, payload: .native(IcechunkObjectID(bytes: chunk), offset: offset, length: length))
                }
                if let location = try reference.string(5) {
                    let etag = try reference.string(6)
                    let modified = try reference.u32(7)
                    let checksum: IcechunkChunkRef.Checksum? = etag.map { .etag($0) } ?? (modified > 0 ? .lastModified(modified) : nil)
                    return IcechunkChunkRef(index: index, payload: .virtual(location: location, offset: offset, length: length, checksum: checksum))
                }
                throw buffer.error("chunk ref", at: reference.position, "neither inline, native nor virtual")
            }
        }
    }
}

/// A reference to a snapshot: a branch, a tag, or the snapshot's id itself.
public enum IcechunkReference: Sendable, Equatable {
    case branch(String)
    case tag(String)
    case snapshot(String)
}

/// An Icechunk repository read through `fetch`, which returns the bytes of a key below the
/// repository's root (`refs/branch.main/ref.json`), or nil when there is no such key, and
/// throws `IcechunkError.fileTooLarge` rather than read a file of more bytes than it is given;
/// `list` gives the keys below a prefix (for naming the branches and tags that exist).
public struct IcechunkRepository: Sendable {
    public let root: String
    let fetch: @Sendable (_ key: String, _ limit: Int) async throws -> [UInt8]?
    let list: @Sendable (String) async throws -> [String]
    /// The most a metadata file may decompress to.
    public var metadataLimit = 1 << 30

    public init(
        root: String, fetch: @escaping @Sendable (_ key: String, _ limit: Int) async throws -> [UInt8]?,
        list: @escaping @Sendable (String) async throws -> [String]
    ) {
        self.root = root
        self.fetch = fetch
        self.list = list
    }

    /// A repository in a local directory.
    public static func local(_ directory: String) -> IcechunkRepository {
        let base = URL(fileURLWithPath: directory)
        return IcechunkRepository(
            root: directory,
            fetch: { key, limit in
                let path = base.appendingPathComponent(key).path
                guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? UInt64 else { return nil }
                guard size <= UInt64(limit) else { throw IcechunkError.fileTooLarge(file: key, size: size, limit: limit) }
                return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            },
            list: { prefix in
                let directory = base.appendingPathComponent(prefix).path
                return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
            })
    }

    /// The bytes of a metadata file, at most `metadataLimit` of them.
    private func read(_ key: String) async throws -> [UInt8]? { try await fetch(key, metadataLimit) }

    /// The snapshot id a reference names.
    public func resolve(_ reference: IcechunkReference) async throws -> IcechunkObjectID {
        guard try await read("refs/branch.main/ref.json") != nil else { throw IcechunkError.notARepository(root: root) }
        switch reference {
        case .snapshot(let text):
            guard let id = IcechunkObjectID(text) else { throw IcechunkError.badObjectID(text, file: "--snapshot") }
            return id
        case .branch(let name):
            return try await follow(kind: "branch", name: name)
        case .tag(let name):
            for tombstone in ["refs/tag.\(name)/ref.json.deleted", "refs/tags.\(name)/ref.json.deleted"] {
                if try await read(tombstone) != nil { throw IcechunkError.deletedTag(name: name) }
            }
            return try await follow(kind: "tag", name: name)
        }
    }

    private func follow(kind: String, name: String) async throws -> IcechunkObjectID {
        let key = "refs/\(kind).\(name)/ref.json"
        guard let bytes = try await read(key) else {
            let names = try await list("refs").compactMap { $0.hasPrefix(kind + ".") ? String($0.dropFirst(kind.count + 1)) : nil }
            throw IcechunkError.missingReference(kind: kind, name: name, available: names)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let text = object["snapshot"] as? String else {
            throw IcechunkError.malformed(file: key, structure: "reference", offset: 0, detail: "not {\"snapshot\": \"ID\"}")
        }
        guard let id = IcechunkObjectID(text) else { throw IcechunkError.badObjectID(text, file: key) }
        return id
    }

    public func snapshot(_ id: IcechunkObjectID) async throws -> IcechunkSnapshot {
        let key = "snapshots/\(id)"
        guard let bytes = try await read(key) else { throw IcechunkError.missingFile(key) }
        return try IcechunkSnapshot(IcechunkFileHeader.payload(of: bytes, file: key, expected: .snapshot, limit: metadataLimit))
    }

    public func manifest(_ id: IcechunkObjectID) async throws -> IcechunkManifest {
        let key = "manifests/\(id)"
        guard let bytes = try await read(key) else { throw IcechunkError.missingFile(key) }
        return try IcechunkManifest(IcechunkFileHeader.payload(of: bytes, file: key, expected: .manifest, limit: metadataLimit))
    }

    /// Every chunk reference of every array of `snapshot`, by node path.
    public func chunkReferences(of snapshot: IcechunkSnapshot) async throws -> [String: [IcechunkChunkRef]] {
        var manifests: [IcechunkObjectID: IcechunkManifest] = [:]
        var result: [String: [IcechunkChunkRef]] = [:]
        for node in snapshot.nodes {
            guard let array = node.array else { continue }
            var references: [IcechunkChunkRef] = []
            for reference in array.manifests {
                if manifests[reference.id] == nil { manifests[reference.id] = try await manifest(reference.id) }
                // A manifest covers the node's chunks within its extents; an array split over
                // several manifests has one reference per part.
                for chunk in manifests[reference.id]?.arrays[node.id] ?? [] {
                    guard chunk.index.count == array.shape.count, chunk.index.count == reference.extents.count else {
                        throw IcechunkError.malformed(
                            file: "manifests/\(reference.id)", structure: "chunk ref of \(node.path)", offset: 0,
                            detail: "index \(chunk.index) for an array of \(array.shape.count) dimensions")
                    }
                    if zip(chunk.index, reference.extents).allSatisfy({ $1.contains($0) }) { references.append(chunk) }
                }
            }
            result[node.path] = references
        }
        return result
    }
}
