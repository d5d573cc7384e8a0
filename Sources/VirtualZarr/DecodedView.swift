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

    /// `littleEndianNumbers`: big-endian numbers are served little-endian too, not only
    /// compound members (for netCDF-C, which ignores a dtype's byte order).
    public init(_ stored: VirtualDataset, littleEndianNumbers: Bool = false) throws {
        var dataset = stored
        var pipelines: [String: [Codec]] = [:]
        var warnings: [String] = []
        var unpackings: [String: Unpacking] = [:]
        var byteSwaps: [String: ByteSwap] = [:]
        for index in dataset.arrays.indices {
            let array = dataset.arrays[index]
            if array.regridding == nil,
                let littleEndian = ByteSwap.littleEndian(array.dtype) ?? (littleEndianNumbers ? ByteSwap.littleEndianNumber(array.dtype) : nil)
            {
                let (swap, served) = littleEndian
                if let foreign = Codec.foreign(in: array.codecs) {
                    warnings.append("\(array.path) stays big-endian in the decoded view: zarrmount cannot decode \(foreign.numcodecsJSON.rendered())")
                    continue
                }
                dataset.arrays[index].manifest = try Self.decodingInlineChunks(array) { swap.apply(&$0) }
                dataset.arrays[index].dtype = served
                dataset.arrays[index].codecs = []
                pipelines[array.path] = array.codecs
                byteSwaps[array.path] = swap
                continue
            }
            if let unpacking = array.unpacking {
                if case .other(let foreign)? = Codec.foreign(in: array.codecs) {
                    throw CodecError.variable(
                        path: array.path,
                        problem:
                            "its files pack it differently, and zarrmount cannot decode its codec \(foreign) to unpack it; leave it out with --drop-variables \(array.path)"
                    )
                }
                var unpacked = array
                unpacked.manifest = try unpacking.droppingMaskedChunks(
                    array.manifest, codecs: array.codecs, decodedSize: Self.decodedChunkSize(array), path: array.path)
                unpacked.setUnpackedType()
                unpacked.unpacking = nil
                dataset.arrays[index] = unpacked
                pipelines[array.path] = array.codecs
                unpackings[array.path] = unpacking
                continue
            }
            guard !array.codecs.isEmpty, array.dtype.kind != .variableString else { continue }
            if let foreign = Codec.foreign(in: array.codecs) {
                warnings.append("\(array.path) stays encoded in the decoded view: zarrmount cannot decode \(foreign.numcodecsJSON.rendered())")
                continue
            }
            dataset.arrays[index].manifest = try Self.decodingInlineChunks(array) { _ in }
            dataset.arrays[index].codecs = []
            pipelines[array.path] = array.codecs
        }
        self.dataset = dataset
        self.pipelines = pipelines
        self.warnings = warnings
        self.unpackings = unpackings
        self.byteSwaps = byteSwaps
    }

    /// `array`'s manifest with every inline chunk decoded, then passed through `finish`, as the
    /// decoded view serves it.
    static func decodingInlineChunks(_ array: VirtualArray, _ finish: (inout [UInt8]) -> Void) throws -> ChunkManifest {
        let size = decodedChunkSize(array)
        do {
            return try array.manifest.mappingInlineChunks { bytes in
                var decoded = try ChunkDecoder.decode(bytes, pipeline: array.codecs, decodedSize: size)
                finish(&decoded)
                return decoded
            }
        } catch {
            throw CodecError.variable(
                path: array.path, problem: "an inline chunk does not decode (\(error)); the source file \(array.origin) may be corrupt")
        }
    }

    /// Bytes of one decoded chunk: every chunk of an HDF5 dataset is stored full size, edge
    /// chunks included.
    public static func decodedChunkSize(_ array: VirtualArray) -> Int {
        array.chunkShape.reduce(array.dtype.itemSize) { $0 * Int($1) }
    }
}
