import JSONValue

/// The "decoded" presentation of a dataset: every array whose codecs zarrmount can undo is shown
/// with no codecs at all (`compressor: null`, no filters; v3: only `bytes`), and its stored chunks
/// are decoded on read. Many readers need this: GDAL 3.6 refuses `shuffle`, netCDF-C's NCZarr
/// without codec plugins returns compressed bytes as values, tensorstore's zarr driver takes no
/// filters. Sizes stay exact because a decoded chunk is always a full chunk.
public struct DecodedView: Sendable {
    /// The dataset as readers see it (codecs removed where they can be undone).
    public let dataset: VirtualDataset
    /// For each array path shown decoded: the pipeline its stored chunks must be decoded with.
    public let pipelines: [String: [Codec]]
    /// Arrays kept in their stored encoding, with the reason.
    public let warnings: [String]
    /// For each array path served unpacked: each file's packing (see `Unpacking`).
    public let unpackings: [String: Unpacking]
    /// For each compound array served little-endian: the bytes to swap (see `ByteSwap`).
    public let byteSwaps: [String: ByteSwap]

    public init(_ stored: VirtualDataset) throws {
        var dataset = stored
        var pipelines: [String: [Codec]] = [:]
        var warnings: [String] = []
        var unpackings: [String: Unpacking] = [:]
        var byteSwaps: [String: ByteSwap] = [:]
        for index in dataset.arrays.indices {
            let array = dataset.arrays[index]
            if array.regridding == nil, let littleEndian = ByteSwap.littleEndian(array.dtype) {
                let (swap, served) = littleEndian
                if let foreign = array.codecs.first(where: { if case .other = $0 { return true } else { return false } }) {
                    warnings.append("\(array.path) stays big-endian in the decoded view: zarrmount cannot decode \(foreign.numcodecsJSON.rendered())")
                    continue
                }
                let size = Self.decodedChunkSize(array)
                do {
                    dataset.arrays[index].manifest = try array.manifest.mappingInlineChunks { bytes in
                        var decoded = try ChunkDecoder.decode(bytes, pipeline: array.codecs, decodedSize: size)
                        swap.apply(&decoded)
                        return decoded
                    }
                } catch {
                    throw CodecError.variable(
                        path: array.path, problem: "an inline chunk does not decode (\(error)); the source file \(array.origin) may be corrupt")
                }
                dataset.arrays[index].dtype = served
                dataset.arrays[index].codecs = []
                pipelines[array.path] = array.codecs
                byteSwaps[array.path] = swap
                continue
            }
            if let unpacking = array.unpacking {
                if case .other(let foreign) = array.codecs.first(where: { if case .other = $0 { return true } else { return false } }) {
                    throw CodecError.variable(
                        path: array.path,
                        problem:
                            "its files pack it differently, and zarrmount cannot decode its codec \(foreign) to unpack it; leave it out with --drop-variables \(array.path)"
                    )
                }
                var unpacked = array
                // Chunks a file never wrote hold its fill value, which unpacks to NaN, the
                // unpacked array's fill value. Other inline chunks have no file to unpack with.
                unpacked.manifest.dropFillChunk()
                for linear in array.manifest.setIndices {
                    guard case .inline(let bytes) = array.manifest[linear] else { continue }
                    guard unpacking.allMasked(bytes, codecs: array.codecs, decodedSize: Self.decodedChunkSize(array)) else {
                        throw CodecError.variable(
                            path: array.path,
                            problem:
                                "its files pack it differently, and some of its chunks are held inline, without their file, so they cannot be unpacked; leave it out with --drop-variables \(array.path)"
                        )
                    }
                    unpacked.manifest[linear] = .missing
                }
                unpacked.setUnpackedType()
                unpacked.unpacking = nil
                dataset.arrays[index] = unpacked
                pipelines[array.path] = array.codecs
                unpackings[array.path] = unpacking
                continue
            }
            guard !array.codecs.isEmpty, array.dtype.kind != .variableString else { continue }
            if let foreign = array.codecs.first(where: { if case .other = $0 { return true } else { return false } }) {
                warnings.append("\(array.path) stays encoded in the decoded view: zarrmount cannot decode \(foreign.numcodecsJSON.rendered())")
                continue
            }
            let size = Self.decodedChunkSize(array)
            do {
                dataset.arrays[index].manifest = try array.manifest.mappingInlineChunks { bytes in
                    try ChunkDecoder.decode(bytes, pipeline: array.codecs, decodedSize: size)
                }
            } catch {
                throw CodecError.variable(
                    path: array.path, problem: "an inline chunk does not decode (\(error)); the source file \(array.origin) may be corrupt")
            }
            dataset.arrays[index].codecs = []
            pipelines[array.path] = array.codecs
        }
        self.dataset = dataset
        self.pipelines = pipelines
        self.warnings = warnings
        self.unpackings = unpackings
        self.byteSwaps = byteSwaps
    }

    /// Bytes of one decoded chunk: every chunk of an HDF5 dataset is stored full size, edge
    /// chunks included.
    public static func decodedChunkSize(_ array: VirtualArray) -> Int {
        array.chunkShape.reduce(array.dtype.itemSize) { $0 * Int($1) }
    }
}
