/// Which readers a mount's metadata is spelled for.
public enum ReaderSpelling: String, Sendable, CaseIterable {
    /// Zarr v2 and v3 as the specifications, numpy, zarr-python, xarray, GDAL and tensorstore read them.
    case any
    /// netCDF-C's own Zarr v2 spelling (`ncdump`, netCDF4-python, NCO): see `NetCDFCSpelling`.
    case netcdfC = "netcdf-c"
}

/// netCDF-C's Zarr reader (NCZarr; Debian's netCDF-C 4.9 and its `ncdump`) reads Zarr v2 in a
/// spelling of its own, and stops at the first array it cannot read, so one `Times` array makes
/// a whole WRF store unreadable to it:
///
/// - characters are `<U1` with one byte an element (numpy's `<U1` has four); it crashes on `|S1`,
///   `|Sn` and `|O`, so fixed-width strings become characters along a `stringN` dimension, as
///   netCDF stores them, and variable-length strings are left out;
/// - a scalar is shape `[1]` without dimension names (it names the axis `_zdim_1`); shape `[]`
///   crashes it;
/// - a chunk may not be larger than its array ("NCZarr error" for the whole store), which
///   netCDF-4 files write along short unlimited dimensions (512 records for 3): an unfiltered
///   single chunk whose array is a prefix of it is served cut to the array, others on the
///   array's own grid.
///
/// numpy-based readers read `<U1` and the scalar spelling wrongly, so this is an option
/// (`--reader netcdf-c`), not the default.
public enum NetCDFCSpelling {
    /// netCDF-C's character: one byte, spelled `<U1`.
    public static let character = ZarrDataType(kind: .fixedBytes, itemSize: 1, bigEndian: false, v2: .string("<U1"), v3: nil)

    /// What a mount for netCDF-C serves: the dataset in its spelling, decoded (netCDF-C 4.9 prints
    /// compressed bytes as values without its plugins), numbers little-endian (it ignores a
    /// dtype's byte order); with a warning for each array left out.
    public static func decodedView(_ dataset: VirtualDataset) throws -> (view: DecodedView, warnings: [String]) {
        let (spelled, warnings) = try apply(dataset)
        let view = try DecodedView(spelled, littleEndianNumbers: true)
        return (view, warnings + view.warnings)
    }

    /// The dataset in netCDF-C's spelling, for the decoded view (which serves arrays on another
    /// grid), and a warning for each array left out.
    static func apply(_ dataset: VirtualDataset) throws -> (dataset: VirtualDataset, warnings: [String]) {
        var result = dataset
        var warnings: [String] = []
        var regrid: [String: [UInt64]] = [:]
        result.arrays = []
        for var array in dataset.arrays {
            if array.dtype.kind == .variableString {
                warnings.append(
                    "\(array.path) left out: netCDF-C reads no variable-length strings from Zarr (ncdump 4.9 crashes on the store); mount without --reader netcdf-c to serve it"
                )
                continue
            }
            if array.dtype.kind == .fixedBytes, array.regridding == nil {
                guard let characters = characterArray(array) else {
                    warnings.append("\(array.path) left out: its fill value is not one repeated byte, which netCDF-C's characters cannot hold")
                    continue
                }
                array = characters
            }
            if array.shape.isEmpty {
                array.shape = [1]
                array.chunkShape = [1]
                array.manifest = array.manifest.appendingAxis()
            }
            let fitted = zip(array.shape, array.chunkShape).map { min($0, $1) }
            if fitted != array.chunkShape, !array.shape.contains(0) {
                if let cut = cutToShape(array) {
                    array = cut
                } else if array.regridding == nil, Codec.foreign(in: array.codecs) == nil {
                    regrid[array.path] = fitted
                } else {
                    let why =
                        Codec.foreign(in: array.codecs).map { "zarrmount cannot decode its codec \($0.numcodecsJSON.rendered())" }
                        ?? "it is already assembled from several files' chunks"
                    warnings.append(
                        "\(array.path) left out: its chunk (\(array.chunkShape.map(String.init).joined(separator: ", "))) is larger than the array (\(array.shape.map(String.init).joined(separator: ", "))), which netCDF-C refuses for the whole store, and \(why) to serve it on its own grid"
                    )
                    continue
                }
            }
            result.arrays.append(array)
        }
        if !regrid.isEmpty { try Combiner.rechunk(&result, chunks: regrid) }
        return (result, warnings)
    }

    /// A fixed-width string array as characters: width-1 strings change only their spelling;
    /// wider ones gain a trailing `stringN` axis of their width (the same bytes in row-major
    /// order). Nil when a fill element is not one byte repeated.
    static func characterArray(_ array: VirtualArray) -> VirtualArray? {
        let width = array.dtype.itemSize
        var result = array
        result.dtype = character
        result.fillValue = .null
        if let fill = array.fillBytes {
            guard let first = fill.first, fill.allSatisfy({ $0 == first }) else { return nil }
            result.fillBytes = [first]
        }
        if width > 1 {
            result.shape.append(UInt64(width))
            result.chunkShape.append(UInt64(width))
            result.dimensionNames.append("string\(width)")
            result.manifest = array.manifest.appendingAxis()
        }
        return result
    }

    /// The array with its one unfiltered chunk cut to the array's shape, when the array is the
    /// chunk's first bytes: every axis after the first one longer than 1 is as long as the
    /// chunk's. Nil otherwise.
    static func cutToShape(_ array: VirtualArray) -> VirtualArray? {
        guard array.codecs.isEmpty, array.regridding == nil, array.unpacking == nil, array.manifest.count == 1 else { return nil }
        if let first = array.shape.firstIndex(where: { $0 > 1 }) {
            guard array.shape[(first + 1)...] == array.chunkShape[(first + 1)...] else { return nil }
        }
        let (elements, overflow) = array.shape.reduce((UInt64(1), false)) { partial, extent in
            let (product, over) = partial.0.multipliedReportingOverflow(by: extent)
            return (product, partial.1 || over)
        }
        let (bytes, tooMany) = elements.multipliedReportingOverflow(by: UInt64(array.dtype.itemSize))
        guard !overflow, !tooMany else { return nil }
        var manifest = ChunkManifest(gridShape: array.manifest.gridShape)
        switch array.manifest[0] {
        case .reference(let object, let offset, let length):
            guard length >= bytes else { return nil }
            manifest[0] = .reference(object: object, offset: offset, length: bytes)
        case .inline(let chunk):
            guard UInt64(chunk.count) >= bytes else { return nil }
            manifest[0] = .inline(Array(chunk.prefix(Int(bytes))))
        case .missing:
            if let fill = array.manifest.fillChunk {
                guard UInt64(fill.count) >= bytes else { return nil }
                manifest.fillMissing(with: Array(fill.prefix(Int(bytes))))
            }
        }
        var result = array
        result.chunkShape = array.shape
        result.manifest = manifest
        return result
    }
}
