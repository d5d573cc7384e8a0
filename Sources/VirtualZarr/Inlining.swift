import HDF5Metadata

extension NetCDFMapping {
    /// Reads, decodes and assembles the whole array, then keeps it as one raw inline chunk.
    static func inlined(_ array: VirtualArray, fetch: @escaping ByteFetcher, maxBytes: Int, masks: [Int: UInt32] = [:]) async throws -> VirtualArray {
        let raw = try await decodedValues(array, fetch: fetch, maxBytes: maxBytes, masks: masks)
        var result = array
        result.codecs = []
        result.chunkShape = array.shape.map { max($0, 1) }
        result.manifest = ChunkManifest(gridShape: grid(array.shape, result.chunkShape))
        if result.manifest.count == 1 { result.manifest[0] = .inline(padded(raw, to: Int(result.chunkShape.reduce(UInt64(array.dtype.itemSize), *)))) }
        return result
    }

    /// The array's values, row-major, in the stored byte order.
    /// `masks` gives, per chunk (linear index), HDF5's filter mask: bit i set means pipeline
    /// step i was skipped when that chunk was written.
    public static func decodedValues(_ array: VirtualArray, fetch: @escaping ByteFetcher, maxBytes: Int,
                                     masks: [Int: UInt32] = [:]) async throws -> [UInt8] {
        let itemSize = array.dtype.itemSize
        let totalElements = array.shape.reduce(1, *)
        guard totalElements.multipliedReportingOverflow(by: UInt64(itemSize)).partialValue <= UInt64(maxBytes) else {
            throw MappingError(description: "\(array.path) is too large to inline (\(totalElements) elements)")
        }
        let fill = array.fillBytes ?? [UInt8](repeating: 0, count: itemSize)
        var out = [UInt8]()
        out.reserveCapacity(Int(totalElements) * itemSize)
        for _ in 0..<Int(totalElements) { out += fill }
        let chunkElements = Int(array.chunkShape.reduce(1, *))
        let rank = array.shape.count
        for linear in array.manifest.setIndices {
            let stored: [UInt8]
            switch array.manifest[linear] {
            case .missing: continue
            case .inline(let bytes): stored = bytes
            case .reference(_, let offset, let length): stored = try await fetch(offset, Int(length))
            }
            var pipeline = array.codecs
            if let mask = masks[linear] {
                pipeline = array.codecs.enumerated().filter { mask & (1 << UInt32($0.offset)) == 0 }.map(\.element)
            }
            let chunk = try ChunkDecoder.decode(stored, pipeline: pipeline, decodedSize: chunkElements * itemSize)
            guard chunk.count >= chunkElements * itemSize else {
                throw MappingError(description: "\(array.path): chunk \(array.manifest.coordinates(linear)) decodes to \(chunk.count) bytes, expected \(chunkElements * itemSize)")
            }
            let origin = zip(array.manifest.coordinates(linear), array.chunkShape).map { UInt64($0) * $1 }
            // Copy row by row (the last axis is contiguous in both buffers).
            if rank == 0 {
                out.replaceSubrange(0..<itemSize, with: chunk[0..<itemSize])
                continue
            }
            let rowLength = Int(min(array.chunkShape[rank - 1], array.shape[rank - 1] - origin[rank - 1]))
            var inner = [UInt64](repeating: 0, count: rank - 1)
            let outerShape = (0..<(rank - 1)).map { min(array.chunkShape[$0], array.shape[$0] - origin[$0]) }
            repeat {
                var sourceIndex = 0
                var targetIndex = 0
                for axis in 0..<(rank - 1) {
                    sourceIndex = sourceIndex * Int(array.chunkShape[axis]) + Int(inner[axis])
                    targetIndex = targetIndex * Int(array.shape[axis]) + Int(origin[axis] + inner[axis])
                }
                sourceIndex = sourceIndex * Int(array.chunkShape[rank - 1])
                targetIndex = targetIndex * Int(array.shape[rank - 1]) + Int(origin[rank - 1])
                out.replaceSubrange((targetIndex * itemSize)..<((targetIndex + rowLength) * itemSize),
                                    with: chunk[(sourceIndex * itemSize)..<((sourceIndex + rowLength) * itemSize)])
            } while advance(&inner, within: outerShape)
        }
        return out
    }

    private static func advance(_ index: inout [UInt64], within shape: [UInt64]) -> Bool {
        var axis = index.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { return true }
            index[axis] = 0
            axis -= 1
        }
        return false
    }

    /// Variable-length strings are read now (descriptors from the chunks, bytes from the global
    /// heap) and kept as one inline chunk in numcodecs' VLenUTF8 encoding.
    static func inlineStrings(_ array: VirtualArray, dataset: DatasetInfo, info: HDF5FileInfo, fetch: @escaping ByteFetcher,
                              options: MappingOptions) async throws -> VirtualArray? {
        guard let datatype = dataset.datatype else { return nil }
        var descriptorView = array
        descriptorView.dtype.itemSize = datatype.size
        descriptorView.fillBytes = [UInt8](repeating: 0, count: datatype.size)
        let count = Int(array.shape.reduce(1, *))
        guard count * 64 <= options.maxInlineBytes else {
            throw MappingError(description: "\(count) variable-length strings exceed the inline limit of \(options.maxInlineBytes) bytes")
        }
        let descriptors = try await decodedValues(descriptorView, fetch: fetch, maxBytes: options.maxInlineBytes)
        let strings: [String]
        do {
            strings = try await VariableLengthData.strings(descriptors: descriptors, count: count, file: info, fetch: fetch)
        } catch let error as HDF5FileError {
            throw MappingError(description: "\(error.underlying)")
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
            throw MappingError(description: "its strings take \(encoded.count) bytes, over the inline limit of \(options.maxInlineBytes)")
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
