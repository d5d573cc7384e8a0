import HDF5Metadata
import VirtualZarr

extension NetCDFMapping {
    /// Reads, decodes and assembles the whole array, then keeps it as one raw inline chunk.
    static func inlined(_ array: VirtualArray, fetch: @escaping ByteFetcher, maxBytes: Int, masks: [Int: UInt32] = [:]) async throws -> VirtualArray {
        let raw = try await ArrayValues.decoded(array, fetch: fetch, maxBytes: maxBytes, masks: masks)
        var result = array
        result.codecs = []
        result.chunkShape = array.shape.map { max($0, 1) }
        result.manifest = ChunkManifest(gridShape: grid(array.shape, result.chunkShape))
        if result.manifest.count == 1 { result.manifest[0] = .inline(padded(raw, to: Int(result.chunkShape.reduce(UInt64(array.dtype.itemSize), *)))) }
        return result
    }

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
        var encoded: [UInt8] = []
        func append32(_ value: Int) { for i in 0..<4 { encoded.append(UInt8(truncatingIfNeeded: value >> (8 * i))) } }
        append32(strings.count)
        for string in strings {
            let bytes = Array(string.utf8)
            append32(bytes.count)
            encoded += bytes
        }
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
