import HDF5Metadata
import VirtualZarr

extension NetCDFMapping {
    /// Variable-length strings are read now (descriptors from the chunks, bytes from the global
    /// heap) and kept as one inline chunk in numcodecs' VLenUTF8 encoding.
    static func inlineStrings(
        _ array: VirtualArray, dataset: DatasetInfo, info: HDF5FileInfo, fetch: @escaping ByteFetcher,
        options: MappingOptions
    ) async throws -> VirtualArray? {
        guard let datatype = dataset.datatype else { return nil }
        var descriptorView = array
        descriptorView.dtype.itemSize = datatype.size
        descriptorView.fillBytes = [UInt8](repeating: 0, count: datatype.size)
        let count = Int(array.shape.reduce(1, *))
        guard count * 64 <= options.maxInlineBytes else {
            throw MappingError.tooLargeToInline(path: "", what: "\(count) variable-length strings", limit: options.maxInlineBytes)
        }
        let descriptors = try await ArrayValues.decoded(descriptorView, fetch: fetch, maxBytes: options.maxInlineBytes)
        let strings: [String]
        do {
            strings = try await VariableLengthData.strings(descriptors: descriptors, count: count, file: info, fetch: fetch)
        } catch let error as HDF5FileError {
            throw MappingError.variableLengthData("\(error.underlying)")
        }
        let encoded = VLenUTF8.encode(strings)
        guard encoded.count <= options.maxInlineBytes else {
            throw MappingError.tooLargeToInline(path: "", what: "its strings take \(encoded.count) bytes", limit: options.maxInlineBytes)
        }
        var result = array
        result.codecs = []
        result.fillValue = .null
        result.fillBytes = nil
        result.chunkShape = array.shape.map { max($0, 1) }
        result.manifest = ChunkManifest(gridShape: grid(array.shape, result.chunkShape))
        if result.manifest.count == 1 { result.manifest[0] = .inline(encoded) }
        return result
    }
}
