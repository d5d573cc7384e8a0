/// Reads through a byte range of one object (the object a manifest's references point into).
public typealias ByteFetcher = @Sendable (_ offset: UInt64, _ length: Int) async throws -> [UInt8]

/// An array's values read and decoded from its chunks, for arrays small enough to hold whole
/// (inlined coordinates, `--compat equals`).
public enum ArrayValues {
    /// The array read whole and kept as one inline chunk, decoded, in the stored byte order:
    /// an inlined coordinate (its values then travel in the manifest), or an array whose chunks
    /// cannot share one codec pipeline (`masks`, as for `decoded`). Every format's mapping uses it.
    public static func inlined(
        _ array: VirtualArray, fetch: @escaping ByteFetcher, maxBytes: Int, masks: [Int: UInt32] = [:]
    ) async throws -> VirtualArray {
        let raw = try await decoded(array, fetch: fetch, maxBytes: maxBytes, masks: masks)
        var result = array
        result.codecs = []
        result.chunkShape = array.shape.map { max($0, 1) }
        result.manifest = try ChunkManifest.empty(shape: array.shape, chunks: result.chunkShape)
        // One chunk means no empty axis, so the chunk is the array and its size was checked
        // against `maxBytes` (with an empty axis, the other extents may multiply past 64 bits).
        if result.manifest.count == 1 {
            let chunkBytes = Int(result.chunkShape.reduce(UInt64(array.dtype.itemSize), *))
            let fill = array.fillBytes ?? [UInt8](repeating: 0, count: array.dtype.itemSize)
            var padded = raw
            while padded.count < chunkBytes { padded += fill }
            result.manifest[0] = .inline(padded)
        }
        return result
    }

    /// The array's values, row-major, in the stored byte order.
    /// `masks` gives, per chunk (linear index), HDF5's filter mask: bit i set means pipeline
    /// step i was skipped when that chunk was written.
    public static func decoded(
        _ array: VirtualArray, fetch: @escaping ByteFetcher, maxBytes: Int,
        masks: [Int: UInt32] = [:]
    ) async throws -> [UInt8] {
        let itemSize = array.dtype.itemSize
        let totalElements = array.shape.reduce(1, *)
        guard totalElements.multipliedReportingOverflow(by: UInt64(itemSize)).partialValue <= UInt64(maxBytes) else {
            throw MappingError.tooLargeToInline(path: array.path, what: "its \(totalElements) elements", limit: maxBytes)
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
                throw MappingError.chunkDecodedSize(
                    path: array.path, chunk: array.manifest.coordinates(linear), bytes: chunk.count, expected: chunkElements * itemSize)
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
                out.replaceSubrange(
                    (targetIndex * itemSize)..<((targetIndex + rowLength) * itemSize),
                    with: chunk[(sourceIndex * itemSize)..<((sourceIndex + rowLength) * itemSize)])
            } while advance(&inner, within: outerShape)
        }
        return out
    }

    /// Steps a row-major index within `shape`; false after the last.
    static func advance(_ index: inout [UInt64], within shape: [UInt64]) -> Bool {
        var axis = index.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { return true }
            index[axis] = 0
            axis -= 1
        }
        return false
    }
}
