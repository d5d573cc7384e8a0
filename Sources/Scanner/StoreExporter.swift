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

    public var description: String {
        switch self {
        case .directoryNotEmpty(let directory): return "\(directory) exists and is not empty; choose a new directory"
        case .unreadable(let reason): return reason
        case .chunkPastEnd(let url, let key): return "\(url): chunk \(key) ends past the end of the object (changed since the scan?)"
        case .unwritable(let path, let reason): return "\(path): cannot write (\(reason))"
        }
    }
}

/// Writes a virtual dataset as a directory store, copying each chunk's stored bytes.
public enum StoreExporter {
    /// Returns the arrays the format could not express (left out, with the reason). Chunks are
    /// read through `ObjectReader` (identity-checked, remote ones through `store`), 32 at once.
    @discardableResult
    public static func export(_ dataset: VirtualDataset, format: ZarrFormat, to directory: String, store: RemoteStore? = nil) async throws -> [String] {
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) {
            let contents = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
            guard contents.isEmpty else { throw ExportError.directoryNotEmpty(directory) }
        }
        let zarr = ZarrStore(dataset, format: format)
        for (key, document) in try zarr.metadataDocuments() {
            try writeFile(directory + "/" + key, Array(document.rendered(pretty: true).utf8))
        }
        var references: [(key: String, object: UInt32, offset: UInt64, length: UInt64)] = []
        try zarr.forEachChunk { key, entry in
            switch entry {
            case .missing: return
            case .inline(let bytes): try writeFile(directory + "/" + key, bytes)
            case .reference(let object, let offset, let length): references.append((key, object, offset, length))
            }
        }
        let reader = ObjectReader(store: store)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func launch() {
                let reference = references[next]
                next += 1
                group.addTask {
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
                    try writeFile(directory + "/" + reference.key, bytes)
                }
            }
            while next < min(32, references.count) { launch() }
            while try await group.next() != nil {
                if next < references.count { launch() }
            }
        }
        return zarr.omitted
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
