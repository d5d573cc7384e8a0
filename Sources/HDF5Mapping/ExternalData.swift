import HDF5Metadata
import VirtualZarr

/// Raw data in external files (the External Data Files message) as chunk references: the
/// segments, in order, make the data's row-major bytes, and each chunk must lie inside one
/// segment. Chunks of whole rows of the leading axis fit when every segment boundary falls
/// between rows; the largest row count that divides the leading extent and every boundary
/// gives the fewest chunks.
public enum ExternalData {
    /// One chunk's bytes: `length` bytes at `offset` of segment `segment`'s file.
    public struct Piece: Sendable, Equatable {
        public var segment: Int
        public var offset: UInt64
        public var length: UInt64
    }

    /// More chunks than this for one array come from a hostile or absurd segment list (a
    /// boundary after every row of billions): the variable is left out rather than allocated.
    public static let maxChunks = 1 << 20

    /// The chunk shape and each chunk's piece in row-major grid order. `splitRows`, when the
    /// contiguous split asks for fewer rows per chunk, bounds the rows further.
    public static func layout(
        shape: [UInt64], itemSize: UInt64, segments: [ExternalFileSegment], splitRows: UInt64? = nil
    ) throws(MappingError) -> (chunkShape: [UInt64], pieces: [Piece]) {
        guard let total = checkedProduct(shape, itemSize) else {
            throw .externalData("a shape of \(shape) with \(itemSize)-byte elements overflows")
        }
        // Where each segment starts in the data's bytes, up to the bytes the data needs.
        var starts: [UInt64] = []
        var ends: [UInt64] = []
        var indices: [Int] = []
        var position: UInt64 = 0
        for (index, segment) in segments.enumerated() where position < total {
            let size = segment.size ?? (total - position)
            let (end, overflow) = position.addingReportingOverflow(size)
            guard !overflow else { throw .externalData("segment sizes overflow") }
            if size > 0 {
                indices.append(index)
                starts.append(position)
                ends.append(min(end, total))
            }
            position = end
        }
        guard position >= total else {
            throw .externalData("the external files hold \(position) bytes of the \(total) the data needs")
        }
        let boundaries = starts.dropFirst()
        var chunkShape = shape.map { max($0, 1) }
        var chunkBytes = total
        if total > 0, let leading = shape.first {
            let rowBytes = total / leading
            var rows = leading
            for boundary in boundaries {
                guard boundary % rowBytes == 0 else {
                    throw .externalData(
                        "a segment starts at byte \(boundary), inside row \(boundary / rowBytes) of \(rowBytes)-byte rows; no chunk grid fits the segments"
                    )
                }
                rows = gcd(rows, boundary / rowBytes)
            }
            if let splitRows, splitRows > 0 { rows = gcd(rows, splitRows) }
            guard leading / rows <= UInt64(maxChunks) else {
                throw .externalData("the segments need \(leading / rows) chunks of \(rows) rows, more than \(maxChunks)")
            }
            chunkShape[0] = rows
            chunkBytes = rows * rowBytes
        } else if total > 0, !boundaries.isEmpty {
            throw .externalData("a scalar's bytes are split across \(starts.count) segments")
        }
        guard total > 0 else { return (chunkShape, []) }
        var pieces: [Piece] = []
        pieces.reserveCapacity(Int(total / chunkBytes))
        var segment = 0
        var start: UInt64 = 0
        while start < total {
            while ends[segment] <= start { segment += 1 }
            let stored = indices[segment]
            let (offset, overflow) = segments[stored].offset.addingReportingOverflow(start - starts[segment])
            guard !overflow else { throw .externalData("segment \(stored)'s offset \(segments[stored].offset) overflows") }
            pieces.append(Piece(segment: stored, offset: offset, length: chunkBytes))
            start += chunkBytes
        }
        return (chunkShape, pieces)
    }

    static func checkedProduct(_ values: [UInt64], _ initial: UInt64) -> UInt64? {
        var product = initial
        for value in values {
            let (next, overflow) = product.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            product = next
        }
        return product
    }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x
    }
}
