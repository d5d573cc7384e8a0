import JSONValue

/// What every format's mapping (HDF5/netCDF-4, netCDF-3) is asked for: how contiguous data is
/// split, which variables are read and inlined, and the limits on inlined data.
public struct MappingOptions: Sendable {
    /// Uncompressed contiguous arrays larger than this are split into a regular chunk grid.
    public var contiguousSplitThreshold: UInt64 = 16 << 20
    /// Variables whose values are read, decoded and inlined (the concat dimension's coordinate,
    /// so the combined coordinate is exact).
    public var inlineVariables: Set<String> = []
    /// Largest decoded array inlined.
    public var maxInlineBytes = 64 << 20
    /// Largest array kept decoded when its chunks cannot share one Zarr pipeline.
    public var maxDecodedInlineBytes = 16 << 20
    /// Inline every dimension coordinate up to `maxDimensionCoordinateBytes` and every numeric
    /// scalar, so that files can be compared by their values: to choose the concat dimension,
    /// and to check that what is not concatenated (lat, a forecast's reference time) agrees.
    public var inlineComparedValues = false
    public var maxDimensionCoordinateBytes = 1 << 20
    /// The concat dimension when the user names it: 1-D numeric variables along it in CF time
    /// units (WRF's `XTIME` beside `Time`) are read and inlined up to
    /// `maxDimensionCoordinateBytes`, so that files written in other time units (runs started
    /// on other days) are re-encoded in the first file's, as its coordinate is.
    public var timeVariablesAlong: String?
    /// Largest scalar inlined for comparison (a compound or string scalar is left as it is).
    public static let maxComparedScalarBytes = 64

    public init() {}

    /// How many bytes of an array a scan reads and inlines so that files can be compared by its
    /// values, or nil for none: a numeric dimension coordinate (`name` is its only dimension) up
    /// to `maxDimensionCoordinateBytes`, a numeric scalar, WRF's `Times`, or a time variable
    /// along `timeVariablesAlong` (`units` are the variable's, or for the bounds of the concat
    /// coordinate its coordinate's: `timeUnits`). The one decision for every format's mapping.
    public func comparedValuesLimit(
        name: String, dimensions: [String], dtype: ZarrDataType, shape: [UInt64], units: String? = nil, isConcatBounds: Bool = false
    ) -> Int? {
        let numeric = [.signed, .unsigned, .float].contains(dtype.kind)
        if numeric, shape.count == 1 || (isConcatBounds && shape.count == 2), let along = timeVariablesAlong, dimensions.first == along,
            let units, CFTimeUnits(units: units, calendar: nil) != nil
        {
            var bytes = UInt64(dtype.itemSize)
            var overflowed = false
            for extent in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: extent)
                (bytes, overflowed) = (product, overflowed || overflow)
            }
            if !overflowed, bytes <= UInt64(maxDimensionCoordinateBytes) { return maxDimensionCoordinateBytes }
        }
        guard inlineComparedValues else { return nil }
        if numeric, shape.count == 1, dimensions == [name] {
            let (bytes, overflow) = shape[0].multipliedReportingOverflow(by: UInt64(dtype.itemSize))
            return !overflow && bytes <= UInt64(maxDimensionCoordinateBytes) ? maxDimensionCoordinateBytes : nil
        }
        if numeric, shape.isEmpty, dtype.itemSize <= Self.maxComparedScalarBytes { return Self.maxComparedScalarBytes }
        if WRFTimes.isTimes(path: name, dtype: dtype, rank: shape.count), shape[1] > 0 {
            let (bytes, overflow) = shape[0].multipliedReportingOverflow(by: shape[1])
            return !overflow && bytes <= UInt64(WRFTimes.maxBytes) ? WRFTimes.maxBytes : nil
        }
        return nil
    }
}

extension MappingOptions {
    /// The time units of a variable along `timeVariablesAlong`: its own, or when the concat
    /// coordinate's `bounds` or `climatology` attribute names it and it has none, the
    /// coordinate's (CF 7.1: bounds share their coordinate's units). `coordinate` holds the
    /// concat coordinate's attributes.
    public func timeUnits(name: String, own: [(String, JSON)], coordinate: [(String, JSON)]?) -> (units: String?, isConcatBounds: Bool) {
        let units = own.first { $0.0 == "units" }?.1.stringValue
        guard let coordinate, timeVariablesAlong != nil,
            coordinate.contains(where: { ($0.0 == "bounds" || $0.0 == "climatology") && $0.1.stringValue == name })
        else { return (units, false) }
        return (units ?? coordinate.first { $0.0 == "units" }?.1.stringValue, true)
    }
}

/// WRF's `Times(Time, DateStrLen)`: the instants of a WRF file that has no `Time` coordinate,
/// as characters (`2060-01-01_00:00:00`). They are read with a combined scan, like other
/// coordinates, so that a day held by two files is found.
public enum WRFTimes {
    /// A day of hourly steps takes 456 bytes; a file of ten thousand steps is still read whole.
    public static let maxBytes = 256 << 10

    /// Whether an array is WRF's `Times`: single characters, a row of them per instant.
    public static func isTimes(path: String, dtype: ZarrDataType, rank: Int) -> Bool {
        path == "Times" && dtype.kind == .fixedBytes && dtype.itemSize == 1 && rank == 2
    }

    /// The rows of a `Times` array read with the scan (inline), nil for a blank row (an instant
    /// never written); nil when its values were not read. WRF writes `2060-01-01_00:00:00`, so
    /// rows compare in time order as text.
    public static func rows(_ array: borrowing VirtualArray) -> [ArraySlice<UInt8>?]? {
        guard isTimes(path: array.path, dtype: array.dtype, rank: array.shape.count), array.shape[1] > 0,
            array.manifest.count == 1, case .inline(let chunk) = array.manifest[0]
        else { return nil }
        let width = Int(array.shape[1])
        return (0..<Int(array.shape[0])).map { row in
            let characters = chunk.dropFirst(row * width).prefix(width)
            return characters.count == width && characters.contains(where: { $0 != 0 && $0 != 32 }) ? characters : nil
        }
    }

    public static func text(_ row: ArraySlice<UInt8>) -> String { String(decoding: row.prefix { $0 != 0 }, as: UTF8.self) }
}

/// The chunk grid a format's contiguous (unchunked) data is served on.
public enum ContiguousSplit {
    /// How far below the rows that fit the search for a divisor of the axis goes: a hostile
    /// header's prime axis would otherwise cost a division per row, per variable.
    static let maxDivisorSearch = 1 << 16

    /// The whole array as one chunk or, when its `itemSize`-byte elements take more than
    /// `threshold` bytes, a grid over the leading axes whose chunks tile the bytes exactly (no
    /// chunk runs past the data, so each is one byte range of the object). Filtered data cannot
    /// be cut and stays whole. The caller has checked that the array's byte size fits in 64 bits.
    public static func chunkShape(shape: [UInt64], itemSize: UInt64, threshold: UInt64, filtered: Bool = false) -> [UInt64] {
        var chunk = shape.map { max($0, 1) }
        let total = shape.reduce(itemSize, *)
        guard !filtered, total > threshold, !shape.isEmpty else { return chunk }
        for axis in 0..<shape.count {
            let inner = shape[(axis + 1)...].reduce(itemSize, *)
            let rowsFitting = max(threshold / max(inner, 1), 1)
            // The largest divisor of this axis that fits; past the search bound, rows of one
            // always divide.
            var rows = min(rowsFitting, shape[axis])
            var steps = 0
            while rows > 1 && shape[axis] % rows != 0 {
                rows -= 1
                steps += 1
                if steps > maxDivisorSearch { rows = 1 }
            }
            chunk[axis] = max(rows, 1)
            if inner * chunk[axis] <= threshold || axis == shape.count - 1 { break }
            chunk[axis] = 1
        }
        return chunk
    }
}
