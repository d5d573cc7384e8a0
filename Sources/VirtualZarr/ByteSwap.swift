import JSONValue

/// Big-endian members of a compound served little-endian (`--decoded`): zarr-python 3 cannot
/// read a structured type with big-endian members (hdf5-json's `committed_type.h5`, netCDF-C's
/// `ref_tst_compounds.nc`), so the decoded view declares every member little-endian and swaps
/// each element's bytes as its chunks are read.
public struct ByteSwap: Sendable, Equatable {
    /// One run of big-endian numbers inside an element: `count` numbers of `width` bytes at `offset`.
    public struct Run: Sendable, Equatable {
        public var offset: Int
        public var width: Int
        public var count: Int
    }

    public var itemSize: Int
    public var runs: [Run]

    /// The swap for a big-endian number type and the little-endian type served instead; nil for
    /// any other type. netCDF-C 4.9 ignores the byte order of a Zarr dtype, so the netCDF-C
    /// spelling serves numbers little-endian.
    public static func littleEndianNumber(_ dtype: ZarrDataType) -> (ByteSwap, ZarrDataType)? {
        guard dtype.bigEndian, dtype.itemSize > 1 else { return nil }
        let served: ZarrDataType
        switch dtype.kind {
        case .signed, .unsigned: served = .integer(size: dtype.itemSize, signed: dtype.kind == .signed)
        case .float: served = .float(size: dtype.itemSize)
        default: return nil
        }
        return (ByteSwap(itemSize: dtype.itemSize, runs: [Run(offset: 0, width: dtype.itemSize, count: 1)]), served)
    }

    /// The swap for a structured type with big-endian members, and the type as served; nil when
    /// no member is big-endian (or the fields are not a numpy field list zarrmount wrote).
    public static func littleEndian(_ dtype: ZarrDataType) -> (ByteSwap, ZarrDataType)? {
        guard dtype.kind == .structured, case .array(let fields) = dtype.v2 else { return nil }
        var runs: [Run] = []
        var served: [JSON] = []
        var offset = 0
        for field in fields {
            guard case .array(var parts) = field, parts.count >= 2, let text = parts[1].stringValue,
                let member = ZarrDataType(v2: text)
            else { return nil }
            var count = 1
            if parts.count > 2 {
                guard case .array(let shape) = parts[2] else { return nil }
                for extent in shape {
                    guard let value = extent.int64Value, value >= 0 else { return nil }
                    count *= Int(value)
                }
            }
            if member.bigEndian {
                runs.append(Run(offset: offset, width: member.itemSize, count: count))
                parts[1] = .string("<" + text.dropFirst())
            }
            served.append(.array(parts))
            offset += member.itemSize * count
        }
        guard !runs.isEmpty, offset == dtype.itemSize else { return nil }
        return (ByteSwap(itemSize: dtype.itemSize, runs: runs), .structured(.array(served), size: dtype.itemSize))
    }

    /// Swaps every big-endian number of every whole element of `bytes` in place.
    public func apply(_ bytes: inout [UInt8]) {
        guard itemSize > 0 else { return }
        bytes.withUnsafeMutableBufferPointer { buffer in
            var element = 0
            while element + itemSize <= buffer.count {
                for run in runs {
                    var start = element + run.offset
                    for _ in 0..<run.count {
                        var low = start, high = start + run.width - 1
                        while low < high {
                            buffer.swapAt(low, high)
                            low += 1
                            high -= 1
                        }
                        start += run.width
                    }
                }
                element += itemSize
            }
        }
    }
}
