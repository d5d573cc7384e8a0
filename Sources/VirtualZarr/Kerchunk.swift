import Foundation
import HDF5Metadata

/// kerchunk reference files (version 1): Zarr v2 metadata as JSON strings and, per chunk,
/// `[url, offset, length]` or inline `base64:` data.
public enum KerchunkReferences {
    /// A deterministic document: keys sorted, metadata compact.
    public static func write(_ dataset: VirtualDataset) throws -> String {
        let store = ZarrStore(dataset, format: .v2)
        var refs: [(String, JSON)] = []
        for (key, document) in try store.metadataDocuments() where key != ".zmetadata" {
            refs.append((key, .string(document.rendered())))
        }
        try store.forEachChunk { key, entry in
            switch entry {
            case .missing: break
            case .inline(let bytes):
                refs.append((key, .string("base64:" + Data(bytes).base64EncodedString())))
            case .reference(let object, let offset, let length):
                refs.append((key, .array([.string(dataset.objects[Int(object)].url), .uint(offset), .uint(length)])))
            }
        }
        refs.sort { $0.0 < $1.0 }
        return JSON.object([("version", .int(1)), ("refs", .object(refs))]).rendered()
    }
}
