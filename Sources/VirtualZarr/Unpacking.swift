import JSONValue

/// One file's CF packing of a variable: values equal to one of `masked` are missing, others
/// mean `stored × scale + offset`.
public struct Packing: Sendable, Equatable {
    public var scale: Double
    public var offset: Double
    /// `_FillValue` and `missing_value` in the stored type's values.
    public var masked: [Double]

    public init(scale: Double, offset: Double, masked: [Double]) {
        self.scale = scale
        self.offset = offset
        self.masked = masked
    }

    /// The packing a variable's attributes and Zarr fill value state, or nil when an attribute
    /// is not a number.
    public init?(attributes: [(String, JSON)], fillValue: JSON) {
        func number(_ value: JSON) -> Double? {
            if case .array(let items) = value, items.count == 1 { return items[0].doubleValue }
            return value.doubleValue
        }
        func attribute(_ key: String) -> JSON? { attributes.first { $0.0 == key }?.1 }
        var scale = 1.0, offset = 0.0
        if let value = attribute("scale_factor") { guard let parsed = number(value) else { return nil }; scale = parsed }
        if let value = attribute("add_offset") { guard let parsed = number(value) else { return nil }; offset = parsed }
        var masked: [Double] = []
        if fillValue != .null { guard let fill = number(fillValue) else { return nil }; masked.append(fill) }
        if let missing = attribute("missing_value") {
            let items = missing.arrayValue ?? [missing]
            for item in items { guard let value = number(item) else { return nil }; masked.append(value) }
        }
        self.init(scale: scale, offset: offset, masked: masked)
    }

    func unpack(_ stored: Double) -> Double {
        if stored.isNaN || masked.contains(stored) { return .nan }
        return stored * scale + offset
    }
}

/// A variable whose files pack it differently, served unpacked (`--decoded --unpack`): each
/// chunk is decoded with the packing of the file it comes from into float64, missing values
/// as NaN.
public struct Unpacking: Sendable, Equatable {
    /// The stored element type.
    public var packed: ZarrDataType
    /// Each object's packing, by object id in the combined dataset.
    public var byObject: [UInt32: Packing]

    public static let attributesRemoved: Set<String> = ["scale_factor", "add_offset", "missing_value", "valid_min", "valid_max", "valid_range"]
    public static let unpackedType = ZarrDataType.float(size: 8)

    public init(packed: ZarrDataType, byObject: [UInt32: Packing]) {
        self.packed = packed
        self.byObject = byObject
    }

    /// Bytes of an unpacked chunk of `decodedSize` stored bytes.
    public func unpackedSize(_ decodedSize: UInt64) -> UInt64 {
        decodedSize / UInt64(packed.itemSize) * 8
    }

    /// A decoded chunk of object `object` as little-endian float64 values.
    public func unpack(_ decoded: [UInt8], object: UInt32) throws -> [UInt8] {
        guard let packing = byObject[object] else {
            throw CodecError.noPacking(object: object)
        }
        let count = decoded.count / packed.itemSize
        guard let values = NumericValues.doubles(decoded, dtype: packed, count: count) else {
            throw CodecError.notUnpackable(dtype: packed.v2String)
        }
        return NumericValues.encode(values.map(packing.unpack))
    }

    /// Whether a stored chunk holds only values every file's packing masks (a fill chunk).
    public func allMasked(_ stored: [UInt8], codecs: [Codec], decodedSize: Int, byteSwap: ByteSwap? = nil) -> Bool {
        guard var decoded = try? ChunkDecoder.decode(stored, pipeline: codecs, decodedSize: decodedSize) else { return false }
        byteSwap?.apply(&decoded)
        guard let values = NumericValues.doubles(decoded, dtype: packed, count: decoded.count / packed.itemSize) else { return false }
        return byObject.values.allSatisfy { packing in values.allSatisfy { packing.unpack($0).isNaN } }
    }

    /// `manifest` ready to be served unpacked: chunks a file never wrote hold its fill value,
    /// which its packing masks, so they become missing (NaN, the unpacked fill); an inline chunk
    /// has no file to unpack with, so it must hold masked values only.
    public func droppingMaskedChunks(
        _ manifest: ChunkManifest, codecs: [Codec], decodedSize: Int, path: String, byteSwap: ByteSwap? = nil
    ) throws -> ChunkManifest {
        var result = manifest
        result.dropFillChunk()
        for linear in manifest.setIndices {
            guard case .inline(let bytes) = manifest[linear] else { continue }
            guard allMasked(bytes, codecs: codecs, decodedSize: decodedSize, byteSwap: byteSwap) else {
                throw CodecError.variable(
                    path: path,
                    problem:
                        "its files pack it differently, and some of its chunks are held inline, without their file, so they cannot be unpacked; leave it out with --drop-variables \(path)"
                )
            }
            result[linear] = .missing
        }
        return result
    }

    /// Whether values of this type can be unpacked.
    public static func supports(_ dtype: ZarrDataType) -> Bool {
        [.signed, .unsigned, .float].contains(dtype.kind) && [1, 2, 4, 8].contains(dtype.itemSize) && !(dtype.kind == .float && dtype.itemSize < 4)
    }
}

extension VirtualArray {
    /// The array's element as served unpacked: float64, NaN for missing values.
    public mutating func setUnpackedType() {
        dtype = Unpacking.unpackedType
        codecs = []
        fillValue = .string("NaN")
        fillBytes = NumericValues.encode([Double.nan])
    }
}
