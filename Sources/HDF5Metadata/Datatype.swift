import ByteSource

public enum ByteOrder: String, Sendable, Equatable, Codable {
    case littleEndian = "LE"
    case bigEndian = "BE"
}

public enum StringPadding: String, Sendable, Equatable, Codable {
    case nullTerminated = "nullterm"
    case nullPadded = "nullpad"
    case spacePadded = "spacepad"
}

public enum CharacterSet: String, Sendable, Equatable, Codable {
    case ascii
    case utf8 = "utf-8"
}

public enum ReferenceKind: String, Sendable, Equatable, Codable {
    case object
    case region
    /// HDF5 1.12+ references (`H5R_ref_t`, 64 bytes in memory, variable on disk).
    case object2
    case region2
    case attribute
}

/// An HDF5 datatype as stored in the file (the "file type").
public indirect enum Datatype: Sendable, Equatable {
    public struct FloatLayout: Sendable, Equatable {
        public var signPosition: Int
        public var exponentPosition: Int
        public var exponentSize: Int
        public var mantissaPosition: Int
        public var mantissaSize: Int
        public var exponentBias: UInt32
        /// 0: none, 1: the mantissa's most significant bit is always set, 2: it is implied (IEEE).
        public var mantissaNormalization: Int = 2

        /// The fields as a format numbers convert through; nil when the mantissa's leading one is
        /// stored (or absent), which no supported file writes and no conversion here reads.
        public var format: FloatFormat? {
            guard mantissaNormalization == 2 else { return nil }
            return FloatFormat(
                signPosition: signPosition, exponentPosition: exponentPosition, exponentSize: exponentSize,
                mantissaPosition: mantissaPosition, mantissaSize: mantissaSize, exponentBias: UInt64(exponentBias))
        }
    }

    public struct Member: Sendable, Equatable {
        public var name: String
        public var offset: Int
        public var type: Datatype
    }

    case integer(size: Int, order: ByteOrder, signed: Bool, bitOffset: Int, precision: Int)
    case float(size: Int, order: ByteOrder, bitOffset: Int, precision: Int, layout: FloatLayout)
    case time(size: Int, order: ByteOrder, precision: Int)
    case string(size: Int, padding: StringPadding, charset: CharacterSet)
    case bitfield(size: Int, order: ByteOrder, bitOffset: Int, precision: Int)
    case opaque(size: Int, tag: String)
    case compound(size: Int, members: [Member])
    case reference(size: Int, kind: ReferenceKind)
    case enumeration(size: Int, base: Datatype, names: [String], values: [[UInt8]])
    case variableLengthString(size: Int, padding: StringPadding, charset: CharacterSet)
    case variableLengthSequence(size: Int, base: Datatype)
    case array(size: Int, dimensions: [Int], base: Datatype)

    /// Bytes one element occupies in the file.
    public var size: Int {
        switch self {
        case .integer(let size, _, _, _, _), .float(let size, _, _, _, _), .time(let size, _, _),
            .string(let size, _, _), .bitfield(let size, _, _, _), .opaque(let size, _),
            .compound(let size, _), .reference(let size, _), .enumeration(let size, _, _, _),
            .variableLengthString(let size, _, _), .variableLengthSequence(let size, _), .array(let size, _, _):
            return size
        }
    }

    public var isVariableLength: Bool {
        switch self {
        case .variableLengthString, .variableLengthSequence: return true
        case .array(_, _, let base): return base.isVariableLength
        case .compound(_, let members): return members.contains { $0.type.isVariableLength }
        default: return false
        }
    }

    /// numpy's spelling of the type (`<f4`, `>i2`, `|S16`, `|O`), as h5py and Zarr v2 use it.
    public var numpyDtype: String {
        switch self {
        case .integer(let size, let order, let signed, _, _):
            return (size == 1 ? "|" : order.numpyPrefix) + (signed ? "i" : "u") + "\(size)"
        case .float(let size, let order, _, _, _):
            return order.numpyPrefix + "f\(size)"
        case .time(let size, let order, _):
            return order.numpyPrefix + "i\(size)"
        case .string(let size, _, _):
            return "|S\(size)"
        case .bitfield(let size, let order, _, _):
            return (size == 1 ? "|" : order.numpyPrefix) + "u\(size)"
        case .opaque(let size, _):
            return "|V\(size)"
        case .compound(let size, _):
            return "|V\(size)"
        case .reference, .variableLengthString, .variableLengthSequence:
            return "|O"
        case .enumeration(_, let base, _, _):
            return base.numpyDtype
        case .array(let size, _, _):
            return "|V\(size)"
        }
    }
}

extension Datatype {
    /// Whether this is an integer or float whose container holds its value as numpy reads it: all
    /// of the container's bits, two's complement or IEEE 754. HDF5 also allows narrower integers,
    /// and floats of a file's own format, which libhdf5 converts when it reads.
    public var isStandardNumber: Bool {
        switch self {
        case .integer(let size, _, _, let offset, let precision):
            return offset == 0 && precision == size * 8
        case .float(let size, _, let offset, let precision, let layout):
            return offset == 0 && precision == size * 8 && layout.format == FloatFormat.ieee(bytes: size)
        default:
            return false
        }
    }

    /// An integer's or float's value as libhdf5's conversion to a native type gives it: for
    /// integers the `precision` bits from bit `offset`, sign-extended (the container's other bits
    /// are padding); floats in their declared format. Nil for other types, containers of more
    /// than 8 bytes and formats no conversion here reads.
    public func number(_ bytes: ArraySlice<UInt8>) -> Value? {
        switch self {
        case .integer(let size, let order, let signed, let offset, let precision):
            guard bytes.count == size, (1...8).contains(size), precision >= 1, offset >= 0, offset + precision <= size * 8 else { return nil }
            let shift = UInt64(64 - precision)
            let bits = (Self.container(bytes, order: order) >> UInt64(offset)) << shift
            return signed ? .integer(Int64(bitPattern: bits) >> Int64(shift)) : .unsigned(bits >> shift)
        case .float(let size, let order, _, _, let layout):
            guard bytes.count == size, (1...8).contains(size), let format = layout.format else { return nil }
            let container = Self.container(bytes, order: order)
            if isStandardNumber {
                switch size {
                case 2: return .float(Double(Float16(bitPattern: UInt16(truncatingIfNeeded: container))))
                case 4: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: container))))
                default: return .float(Double(bitPattern: container))
                }
            }
            return format.fits(bits: size * 8) ? .float(format.value(container)) : nil
        default:
            return nil
        }
    }

    /// An integer's or float's bytes converted to the standard type of its size and byte order
    /// (two's complement, IEEE 754), as libhdf5 converts them for h5py; nil when the type is
    /// already standard or is no such number.
    public func standardBytes(_ bytes: [UInt8]) -> [UInt8]? {
        guard !isStandardNumber else { return nil }
        let bits: UInt64
        let size: Int
        let order: ByteOrder
        switch (self, number(bytes[...])) {
        case (.integer(let width, let byteOrder, _, _, _), .integer(let signed)?):
            (bits, size, order) = (UInt64(bitPattern: signed), width, byteOrder)
        case (.integer(let width, let byteOrder, _, _, _), .unsigned(let unsigned)?):
            (bits, size, order) = (unsigned, width, byteOrder)
        case (.float(let width, let byteOrder, _, _, _), .float(let value)?):
            switch width {
            case 2: bits = UInt64(Float16(value).bitPattern)
            case 4: bits = UInt64(Float(value).bitPattern)
            case 8: bits = value.bitPattern
            default: return nil
            }
            (size, order) = (width, byteOrder)
        default:
            return nil
        }
        return (0..<size).map { index in
            let shift = UInt64(order == .littleEndian ? index : size - 1 - index) * 8
            return UInt8(truncatingIfNeeded: bits >> shift)
        }
    }

    /// An integer or float container's bytes as one number, most significant bit first.
    static func container(_ bytes: ArraySlice<UInt8>, order: ByteOrder) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<bytes.count {
            let byte = order == .littleEndian ? bytes[bytes.startIndex + index] : bytes[bytes.endIndex - 1 - index]
            value |= UInt64(byte) << UInt64(8 * index)
        }
        return value
    }
}

extension ByteOrder {
    var numpyPrefix: String { self == .littleEndian ? "<" : ">" }
}

extension Datatype {
    /// Parses a datatype message body. `depth` bounds nesting (compound in array in compound...).
    static func parse(_ cursor: inout ByteCursor, depth: Int = 0) throws -> Datatype {
        guard depth < 32 else { throw cursor.error(.limitExceeded, "datatype nested deeper than 32 levels") }
        let start = cursor.absolutePosition
        let classAndVersion = try cursor.u8()
        let typeClass = classAndVersion & 0x0f
        let version = Int(classAndVersion >> 4)
        let b0 = try cursor.u8(), b1 = try cursor.u8(), b2 = try cursor.u8()
        let bits = UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16
        let size = Int(try cursor.u32())
        guard version >= 1 && version <= 5 else {
            throw HDF5Error(.corrupt, "datatype message", at: start, "datatype version \(version)")
        }
        guard size <= 1 << 28 else { throw HDF5Error(.limitExceeded, "datatype message", at: start, "element size \(size)") }
        let order: ByteOrder = bits & 1 == 0 ? .littleEndian : .bigEndian

        switch typeClass {
        case 0:
            let bitOffset = Int(try cursor.u16()), precision = Int(try cursor.u16())
            return .integer(size: size, order: order, signed: bits & 0x08 != 0, bitOffset: bitOffset, precision: precision)
        case 1:
            if bits & 0x40 != 0 {
                throw HDF5Error(.unsupported, "datatype message", at: start, "VAX floating-point byte order")
            }
            let bitOffset = Int(try cursor.u16()), precision = Int(try cursor.u16())
            let exponentPosition = Int(try cursor.u8()), exponentSize = Int(try cursor.u8())
            let mantissaPosition = Int(try cursor.u8()), mantissaSize = Int(try cursor.u8())
            let bias = try cursor.u32()
            let layout = FloatLayout(
                signPosition: Int((bits >> 8) & 0xff), exponentPosition: exponentPosition,
                exponentSize: exponentSize, mantissaPosition: mantissaPosition,
                mantissaSize: mantissaSize, exponentBias: bias, mantissaNormalization: Int((bits >> 4) & 3))
            return .float(size: size, order: order, bitOffset: bitOffset, precision: precision, layout: layout)
        case 2:
            let precision = Int(try cursor.u16())
            return .time(size: size, order: order, precision: precision)
        case 3:
            return .string(
                size: size, padding: try padding(bits & 0x0f, cursor),
                charset: try charset((bits >> 4) & 0x0f, cursor))
        case 4:
            let bitOffset = Int(try cursor.u16()), precision = Int(try cursor.u16())
            return .bitfield(size: size, order: order, bitOffset: bitOffset, precision: precision)
        case 5:
            let tagLength = Int(bits & 0xff)
            let tagBytes = try cursor.take(tagLength)
            let tag = String(decoding: tagBytes.prefix { $0 != 0 }, as: UTF8.self)
            return .opaque(size: size, tag: tag)
        case 6:
            let count = Int(bits & 0xffff)
            var members: [Member] = []
            members.reserveCapacity(count)
            for _ in 0..<count {
                let nameStart = cursor.position
                let name = try cursor.cString()
                if version < 3 { try cursor.align(to: 8, from: nameStart) }
                let offset: Int
                if version >= 3 {
                    offset = Int(try cursor.uint(size: encodedSize(of: UInt64(size))))
                } else {
                    offset = Int(try cursor.u32())
                }
                var memberType: Datatype
                if version == 1 {
                    let rank = Int(try cursor.u8())
                    try cursor.skip(3 + 4 + 4)
                    var dims: [Int] = []
                    for index in 0..<4 {
                        let dim = Int(try cursor.u32())
                        if index < rank { dims.append(dim) }
                    }
                    memberType = try parse(&cursor, depth: depth + 1)
                    if rank > 0 {
                        guard let product = checkedProduct(dims.map { UInt64($0) }), product <= UInt64(1 << 28) else {
                            throw HDF5Error(.limitExceeded, "compound datatype", at: start, "member array dimensions \(dims)")
                        }
                        let count = Int(product)
                        memberType = .array(size: memberType.size * count, dimensions: dims, base: memberType)
                    }
                } else {
                    memberType = try parse(&cursor, depth: depth + 1)
                }
                guard offset >= 0, offset + memberType.size <= size else {
                    throw HDF5Error(.corrupt, "compound datatype", at: start, "member \(name) at \(offset) exceeds size \(size)")
                }
                members.append(Member(name: name, offset: offset, type: memberType))
            }
            return .compound(size: size, members: members)
        case 7:
            let kindBits = bits & 0x0f
            let kind: ReferenceKind
            switch kindBits {
            case 0: kind = .object
            case 1: kind = .region
            case 2: kind = .object2
            case 3: kind = .region2
            case 4: kind = .attribute
            default: throw HDF5Error(.corrupt, "reference datatype", at: start, "reference type \(kindBits)")
            }
            return .reference(size: size, kind: kind)
        case 8:
            let count = Int(bits & 0xffff)
            let base = try parse(&cursor, depth: depth + 1)
            var names: [String] = []
            for _ in 0..<count {
                let nameStart = cursor.position
                names.append(try cursor.cString())
                if version < 3 { try cursor.align(to: 8, from: nameStart) }
            }
            var values: [[UInt8]] = []
            for _ in 0..<count { values.append(try cursor.take(base.size)) }
            return .enumeration(size: size, base: base, names: names, values: values)
        case 9:
            let kind = bits & 0x0f
            let pad = try padding((bits >> 4) & 0x0f, cursor)
            let set = try charset((bits >> 8) & 0x0f, cursor)
            let base = try parse(&cursor, depth: depth + 1)
            if kind == 1 { return .variableLengthString(size: size, padding: pad, charset: set) }
            return .variableLengthSequence(size: size, base: base)
        case 10:
            let rank = Int(try cursor.u8())
            guard rank >= 1 && rank <= 32 else { throw HDF5Error(.corrupt, "array datatype", at: start, "rank \(rank)") }
            if version < 3 { try cursor.skip(3) }
            var dims: [Int] = []
            for _ in 0..<rank { dims.append(Int(try cursor.u32())) }
            if version < 3 { try cursor.skip(4 * rank) }
            let base = try parse(&cursor, depth: depth + 1)
            guard let count = checkedProduct(dims.map { UInt64($0) }), count.multipliedReportingOverflow(by: UInt64(base.size)).partialValue == UInt64(size),
                !count.multipliedReportingOverflow(by: UInt64(base.size)).overflow
            else {
                throw HDF5Error(.corrupt, "array datatype", at: start, "dimensions \(dims) of \(base.size)-byte elements do not make \(size) bytes")
            }
            return .array(size: size, dimensions: dims, base: base)
        default:
            throw HDF5Error(.corrupt, "datatype message", at: start, "datatype class \(typeClass)")
        }
    }

    private static func padding(_ value: UInt32, _ cursor: ByteCursor) throws -> StringPadding {
        switch value {
        case 0: return .nullTerminated
        case 1: return .nullPadded
        case 2: return .spacePadded
        default: throw cursor.error(.corrupt, "string padding \(value)")
        }
    }

    private static func charset(_ value: UInt32, _ cursor: ByteCursor) throws -> CharacterSet {
        switch value {
        case 0: return .ascii
        case 1: return .utf8
        default: throw cursor.error(.corrupt, "character set \(value)")
        }
    }
}
