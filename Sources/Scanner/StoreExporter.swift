import ByteSource
import Foundation
import VirtualZarr

public struct ExportError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Writes a virtual dataset as a directory store, copying each chunk's stored bytes.
public enum StoreExporter {
    /// Returns the arrays the format could not express (left out, with the reason).
    @discardableResult
    public static func export(_ dataset: VirtualDataset, format: ZarrFormat, to directory: String) throws -> [String] {
        let manager = FileManager.default
        if manager.fileExists(atPath: directory) {
            let contents = (try? manager.contentsOfDirectory(atPath: directory)) ?? []
            guard contents.isEmpty else { throw ExportError(description: "\(directory) exists and is not empty; choose a new directory") }
        }
        let store = ZarrStore(dataset, format: format)
        for (key, document) in try store.metadataDocuments() {
            try writeFile(directory + "/" + key, Array(document.rendered(pretty: true).utf8))
        }
        var sources: [UInt32: FileSource] = [:]
        try store.forEachChunk { key, entry in
            switch entry {
            case .missing: return
            case .inline(let bytes): try writeFile(directory + "/" + key, bytes)
            case .reference(let object, let offset, let length):
                let url = dataset.objects[Int(object)].url
                if sources[object] == nil {
                    do { sources[object] = try FileSource(path: url) } catch {
                        throw ExportError(description: "\(error)")
                    }
                }
                let bytes: [UInt8]
                do { bytes = try sources[object]!.readSynchronously(offset: offset, length: Int(length)) } catch {
                    throw ExportError(description: "\(error)")
                }
                guard bytes.count == Int(length) else {
                    throw ExportError(description: "\(url): chunk \(key) ends past the end of the file (changed since the scan?)")
                }
                try writeFile(directory + "/" + key, bytes)
            }
        }
        return store.omitted
    }

    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        } catch {
            throw ExportError(description: "\(path): cannot write (\(error.localizedDescription))")
        }
    }
}
