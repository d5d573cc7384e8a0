/// An array served decoded on a chunk grid of its own: each served chunk is assembled from the
/// decoded source chunks it overlaps. It serves variables whose chunk shapes differ between
/// files (Zarr has one grid per array) and archives of tiny chunks in bigger ones
/// (`mount --decoded --chunks VAR=...`).
public struct Regridding: Sendable {
    /// One file's (or one array's) chunks, placed at `origin` in the served array.
    public struct Source: Sendable {
        public var origin: [UInt64]
        public var shape: [UInt64]
        public var chunkShape: [UInt64]
        public var codecs: [Codec]
        /// Object ids are the combined dataset's.
        public var manifest: ChunkManifest
        /// One element of HDF5's fill value, in the served byte order: what chunks the file never
        /// wrote hold.
        public var fillBytes: [UInt8]
        /// A file storing the variable big-endian among little-endian ones: its decoded chunks
        /// are swapped to the served (little-endian) order.
        public var byteSwap: ByteSwap?

        public init(
            origin: [UInt64], shape: [UInt64], chunkShape: [UInt64], codecs: [Codec], manifest: ChunkManifest, fillBytes: [UInt8],
            byteSwap: ByteSwap? = nil
        ) {
            self.origin = origin
            self.shape = shape
            self.chunkShape = chunkShape
            self.codecs = codecs
            self.manifest = manifest
            self.fillBytes = fillBytes
            self.byteSwap = byteSwap
        }
    }

    public var sources: [Source]
    /// The served element's size (8 when unpacked).
    public var itemSize: Int
    /// Files that pack the variable differently: each stored source chunk is unpacked with its
    /// object's packing before it is placed (`--decoded --unpack`).
    public var unpacking: Unpacking?

    public init(sources: [Source], itemSize: Int) {
        self.sources = sources
        self.itemSize = itemSize
    }

    /// The size of a decoded source element: the packed type's when unpacking.
    public var sourceItemSize: Int { unpacking?.packed.itemSize ?? itemSize }

    /// The same grid serving float64 values unpacked per file (see
    /// `Unpacking.droppingMaskedChunks` for unwritten and inline source chunks).
    public func unpacked(_ unpacking: Unpacking, path: String) throws -> Regridding {
        var result = self
        let nan = NumericValues.encode([Double.nan])
        for index in result.sources.indices {
            var source = result.sources[index]
            let decodedSize = source.chunkShape.reduce(unpacking.packed.itemSize) { $0 * Int($1) }
            source.manifest = try unpacking.droppingMaskedChunks(
                source.manifest, codecs: source.codecs, decodedSize: decodedSize, path: path, byteSwap: source.byteSwap)
            source.fillBytes = nan
            result.sources[index] = source
        }
        result.unpacking = unpacking
        result.itemSize = Unpacking.unpackedType.itemSize
        return result
    }

    /// Where one source chunk's values go in a served chunk.
    public struct Piece: Sendable, Equatable {
        public enum Content: Sendable, Equatable {
            /// Stored bytes at `offset` of `object`, decoded with `codecs` to `decodedSize` bytes.
            case stored(object: UInt32, offset: UInt64, length: UInt64)
            case inline([UInt8])
            /// A chunk the file never wrote: its fill value.
            case fill([UInt8])
        }

        public var content: Content
        public var codecs: [Codec]
        /// Applied to the decoded source chunk (`Source.byteSwap`).
        public var byteSwap: ByteSwap?
        /// The source chunk's shape (decoded chunks are always full size).
        public var chunkShape: [UInt64]
        /// The first element taken, relative to the source chunk.
        public var sourceStart: [UInt64]
        /// Where it goes, relative to the served chunk.
        public var targetStart: [UInt64]
        public var extent: [UInt64]
    }

    /// The source chunks the served chunk at `coordinates` (of `servedChunkShape`, in an array of
    /// `shape`) overlaps, each with the region it gives.
    public func pieces(coordinates: [Int], servedChunkShape: [UInt64], shape: [UInt64]) -> [Piece] {
        let rank = shape.count
        let low = (0..<rank).map { UInt64(coordinates[$0]) * servedChunkShape[$0] }
        let high = (0..<rank).map { min(low[$0] + servedChunkShape[$0], shape[$0]) }
        var result: [Piece] = []
        for source in sources {
            // The served chunk's region within this source, in source coordinates.
            var from: [UInt64] = [], to: [UInt64] = []
            for axis in 0..<rank {
                let start = max(low[axis], source.origin[axis]), end = min(high[axis], source.origin[axis] + source.shape[axis])
                guard start < end else { from = []; break }
                from.append(start - source.origin[axis])
                to.append(end - source.origin[axis])
            }
            guard from.count == rank else { continue }
            let firstChunk = (0..<rank).map { Int(from[$0] / source.chunkShape[$0]) }
            let lastChunk = (0..<rank).map { Int((to[$0] - 1) / source.chunkShape[$0]) }
            var chunk = firstChunk
            while true {
                var sourceStart: [UInt64] = [], targetStart: [UInt64] = [], extent: [UInt64] = []
                for axis in 0..<rank {
                    let chunkLow = UInt64(chunk[axis]) * source.chunkShape[axis]
                    let start = max(from[axis], chunkLow), end = min(to[axis], chunkLow + source.chunkShape[axis])
                    sourceStart.append(start - chunkLow)
                    targetStart.append(start + source.origin[axis] - low[axis])
                    extent.append(end - start)
                }
                let content: Piece.Content
                switch source.manifest.linearIndex(chunk).map({ source.manifest[$0] }) ?? .missing {
                case .reference(let object, let offset, let length): content = .stored(object: object, offset: offset, length: length)
                case .inline(let bytes): content = .inline(bytes)
                case .missing: content = .fill(source.fillBytes)
                }
                result.append(
                    Piece(
                        content: content, codecs: source.codecs, byteSwap: source.byteSwap, chunkShape: source.chunkShape,
                        sourceStart: sourceStart,
                        targetStart: targetStart, extent: extent))
                // Next chunk in row-major order within [firstChunk, lastChunk].
                var axis = rank - 1
                while axis >= 0 {
                    chunk[axis] += 1
                    if chunk[axis] <= lastChunk[axis] { break }
                    chunk[axis] = firstChunk[axis]
                    axis -= 1
                }
                if axis < 0 { break }
            }
        }
        return result
    }

    /// Copies a piece's region from its decoded source chunk into the served chunk `target`
    /// (row-major, `servedChunkShape`).
    public static func copy(_ piece: Piece, from decoded: [UInt8], into target: inout [UInt8], servedChunkShape: [UInt64], itemSize: Int) {
        let rank = servedChunkShape.count
        if rank == 0 {
            target.replaceSubrange(0..<itemSize, with: decoded[0..<itemSize])
            return
        }
        let rowLength = Int(piece.extent[rank - 1]) * itemSize
        var inner = [UInt64](repeating: 0, count: rank - 1)
        repeat {
            var source = 0, destination = 0
            for axis in 0..<(rank - 1) {
                source = source * Int(piece.chunkShape[axis]) + Int(piece.sourceStart[axis] + inner[axis])
                destination = destination * Int(servedChunkShape[axis]) + Int(piece.targetStart[axis] + inner[axis])
            }
            source = (source * Int(piece.chunkShape[rank - 1]) + Int(piece.sourceStart[rank - 1])) * itemSize
            destination = (destination * Int(servedChunkShape[rank - 1]) + Int(piece.targetStart[rank - 1])) * itemSize
            target.replaceSubrange(destination..<(destination + rowLength), with: decoded[source..<(source + rowLength)])
        } while ArrayValues.advance(&inner, within: Array(piece.extent.dropLast()))
    }

    /// A piece's region filled with one element's bytes.
    public static func fill(_ piece: Piece, element: [UInt8], into target: inout [UInt8], servedChunkShape: [UInt64]) {
        let count = piece.chunkShape.reduce(1) { $0 * Int($1) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(count * element.count)
        for _ in 0..<count { decoded += element }
        copy(piece, from: decoded, into: &target, servedChunkShape: servedChunkShape, itemSize: element.count)
    }

    /// The objects whose chunks this array's served chunks are made of.
    public var objects: Set<UInt32> {
        var result: Set<UInt32> = []
        for source in sources {
            source.manifest.forEachStored { _, entry in
                if case .reference(let object, _, _) = entry { result.insert(object) }
            }
        }
        return result
    }
}
