import ByteSource
import Foundation
import ObjectStore
import VirtualZarr

/// Why `export` stopped, naming the directory, file or chunk.
public enum ExportError: Error, CustomStringConvertible, Sendable, Equatable {
    case directoryNotEmpty(String)
    /// Reading a chunk's object failed (`reason`: the store's error).
    case unreadable(String)
    case chunkPastEnd(url: String, key: String)
    case unwritable(path: String, reason: String)
    /// `--decoded`: a stored chunk that does not decode to its chunk's size.
    case undecodable(url: String, key: String, reason: String)
    /// `--decoded`: an array the decoded view assembles or unpacks as it is read (a mount's work).
    case notExportable(path: String, reason: String)

    public var description: String {
        switch self {
        case .directoryNotEmpty(let directory): return "\(directory) exists and is not empty; choose a new directory"
        case .unreadable(let reason): return reason
        case .chunkPastEnd(let url, let key): return "\(url): chunk \(key) ends past the end of the object (changed since the scan?)"
        case .unwritable(let path, let reason): return "\(path): cannot write (\(reason))"
        case .undecodable(let url, let key, let reason): return "\(url): chunk \(key) does not decode (\(reason))"
        case .notExportable(let path, let reason): return "\(path): \(reason)"
        }
    }
}

/// Writes a virtual dataset as a directory store, copying each chunk's stored bytes.
public enum StoreExporter {
    /// How `--decoded` turns one array's stored chunks into the chunks it writes.
    struct Decoding: Sendable {
        var pipeline: [Codec]
        var size: Int
        var byteSwap: ByteSwap?
    }

    /// Returns the arrays the format could not express (left out, with the reason). Chunks are
    /// read through `ObjectReader` (identity-checked, remote ones through `store`), 32 at once.
    /// `decoded`: the store the decoded view shows (no codecs), every chunk decoded as it is
    /// copied, for readers without the codecs.
    @discardableResult
    public static func export(
        _ dataset: VirtualDataset, format: ZarrFormat, to directory: String, store: RemoteStore? = nil, decoded: Bool = false
    ) async throws -> [String] {
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) {
            let contents = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
            guard contents.isEmpty else { throw ExportError.directoryNotEmpty(directory) }
        }
        var served = dataset
        var warnings: [String] = []
        var decodings: [String: Decoding] = [:]
        if decoded {
            let view = try DecodedView(dataset)
            for array in view.dataset.arrays {
                if array.regridding != nil {
                    throw ExportError.notExportable(
                        path: array.path, reason: "its chunks are assembled from others as they are read: serve it with `zarrmount mount --decoded`")
                }
                if view.unpackings[array.path] != nil {
                    throw ExportError.notExportable(
                        path: array.path, reason: "it is unpacked as it is read: serve it with `zarrmount mount --decoded --unpack`")
                }
                if let pipeline = view.pipelines[array.path] {
                    decodings[array.path] = Decoding(
                        pipeline: pipeline, size: DecodedView.decodedChunkSize(array), byteSwap: view.byteSwaps[array.path])
                }
            }
            served = view.dataset
            warnings = view.warnings
        }
        let zarr = ZarrStore(served, format: format, nameLimit: ZarrStore.fileNameLimit)
        for (key, document) in try zarr.metadataDocuments() {
            try writeFile(directory + "/" + key, Array(document.rendered(pretty: true).utf8))
        }
        var references: [(key: String, object: UInt32, offset: UInt64, length: UInt64, decoding: Decoding?)] = []
        try zarr.forEachArrayChunk { array, key, entry in
            switch entry {
            case .missing: return
            case .inline(let bytes): try writeFile(directory + "/" + key, bytes)
            case .reference(let object, let offset, let length): references.append((key, object, offset, length, decodings[array.path]))
            }
        }
        let reader = ObjectReader(store: store)
        try await BoundedTaskGroup.forEach(count: references.count, width: 32) { [references] index in
            let reference = references[index]
            let object = dataset.objects[Int(reference.object)]
            let bytes: [UInt8]
            do {
                bytes = try await reader.read(object.url, identity: object.identity, range: reference.offset..<(reference.offset + reference.length))
            } catch let error as ObjectStoreError {
                throw ExportError.unreadable(error.description)
            } catch let error as ByteSourceError {
                throw ExportError.unreadable(error.description)
            }
            guard bytes.count == Int(reference.length) else {
                throw ExportError.chunkPastEnd(url: object.url, key: reference.key)
            }
            guard let decoding = reference.decoding else { return try writeFile(directory + "/" + reference.key, bytes) }
            var chunk: [UInt8]
            do { chunk = try ChunkDecoder.decode(bytes, pipeline: decoding.pipeline, decodedSize: decoding.size) } catch {
                throw ExportError.undecodable(url: object.url, key: reference.key, reason: "\(error)")
            }
            guard chunk.count == decoding.size else {
                throw ExportError.undecodable(
                    url: object.url, key: reference.key, reason: "it decodes to \(chunk.count) bytes where a chunk holds \(decoding.size)")
            }
            decoding.byteSwap?.apply(&chunk)
            try writeFile(directory + "/" + reference.key, chunk)
        } consume: { _, _ in
        }
        return warnings + zarr.omitted
    }

    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        } catch {
            throw ExportError.unwritable(path: path, reason: error.localizedDescription)
        }
    }
}
