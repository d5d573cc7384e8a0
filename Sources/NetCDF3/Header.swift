/// The three netCDF-3 variants, named by their magic number's version byte.
public enum NetCDF3Format: UInt8, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// CDF-1: 32-bit offsets and counts.
    case classic = 1
    /// CDF-2: 64-bit variable offsets, otherwise as classic.
    case offset64 = 2
    /// CDF-5: 64-bit offsets, counts and sizes, and the unsigned and 64-bit integer types.
    case data64 = 5

    public var description: String {
        switch self {
        case .classic: return "netCDF-3 classic (CDF-1)"
        case .offset64: return "netCDF-3 64-bit offset (CDF-2)"
        case .data64: return "netCDF-3 64-bit data (CDF-5)"
        }
    }

    /// Bytes of a count, length, dimension id or size field (`nelems`, `dim_length`, `vsize`).
    var sizeFieldBytes: Int { self == .data64 ? 8 : 4 }
    /// Bytes of a variable's `begin` offset.
    var offsetFieldBytes: Int { self == .classic ? 4 : 8 }
}

/// netCDF's external types (`nc_type`), with their numbers in the file.
public enum NetCDF3Type: Int32, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    case byte = 1
    case char = 2
    case short = 3
    case int = 4
    case float = 5
    case double = 6
    // CDF-5 only.
    case ubyte = 7
    case ushort = 8
    case uint = 9
    case int64 = 10
    case uint64 = 11

    /// Bytes per value in the file (always big-endian).
    public var size: Int {
        switch self {
        case .byte, .char, .ubyte: return 1
        case .short, .ushort: return 2
        case .int, .uint, .float: return 4
        case .double, .int64, .uint64: return 8
        }
    }

    /// Whether the classic and 64-bit offset formats may hold this type (the others are CDF-5's).
    public var isClassic: Bool { rawValue <= 6 }

    /// netCDF-C's name (`NC_FLOAT`).
    public var description: String {
        switch self {
        case .byte: return "NC_BYTE"
        case .char: return "NC_CHAR"
        case .short: return "NC_SHORT"
        case .int: return "NC_INT"
        case .float: return "NC_FLOAT"
        case .double: return "NC_DOUBLE"
        case .ubyte: return "NC_UBYTE"
        case .ushort: return "NC_USHORT"
        case .uint: return "NC_UINT"
        case .int64: return "NC_INT64"
        case .uint64: return "NC_UINT64"
        }
    }
}

/// An attribute's values, decoded from big-endian into the type the file declares.
public enum NetCDF3Values: Sendable, Equatable {
    case bytes([Int8])
    /// `NC_CHAR` values as text (invalid UTF-8 replaced), as netCDF readers present them.
    case text(String)
    case shorts([Int16])
    case ints([Int32])
    case floats([Float])
    case doubles([Double])
    case ubytes([UInt8])
    case ushorts([UInt16])
    case uints([UInt32])
    case int64s([Int64])
    case uint64s([UInt64])

    /// The number of values (for text: UTF-8 bytes).
    public var count: Int {
        switch self {
        case .bytes(let v): return v.count
        case .text(let v): return v.utf8.count
        case .shorts(let v): return v.count
        case .ints(let v): return v.count
        case .floats(let v): return v.count
        case .doubles(let v): return v.count
        case .ubytes(let v): return v.count
        case .ushorts(let v): return v.count
        case .uints(let v): return v.count
        case .int64s(let v): return v.count
        case .uint64s(let v): return v.count
        }
    }
}

public struct NetCDF3Attribute: Sendable, Equatable {
    public var name: String
    public var type: NetCDF3Type
    public var values: NetCDF3Values
    /// The values as stored (big-endian, without padding), for fill values and checks.
    public var raw: [UInt8]

    public init(name: String, type: NetCDF3Type, values: NetCDF3Values, raw: [UInt8]) {
        self.name = name
        self.type = type
        self.values = values
        self.raw = raw
    }
}

public struct NetCDF3Dimension: Sendable, Equatable {
    public var name: String
    /// The length; for the unlimited (record) dimension, the number of records.
    public var length: UInt64
    public var isUnlimited: Bool

    public init(name: String, length: UInt64, isUnlimited: Bool) {
        self.name = name
        self.length = length
        self.isUnlimited = isUnlimited
    }
}

public struct NetCDF3Variable: Sendable, Equatable {
    public var name: String
    /// Indices into the header's `dimensions`, slowest-varying first.
    public var dimensionIDs: [Int]
    public var attributes: [NetCDF3Attribute]
    public var type: NetCDF3Type
    /// `vsize` as the file stores it. The parser does not rely on it: the format lets it be
    /// wrong for variables over 4 GiB, and netCDF-C recomputes it from the shape, as
    /// `paddedSize` does.
    public var storedSize: UInt64
    /// File offset of the data (of the first record, for a record variable).
    public var begin: UInt64
    /// Whether the first dimension is the unlimited one: the data is then interleaved with the
    /// other record variables', one record at a time.
    public var isRecord: Bool
    /// The extent of each axis; a record variable's first is the record count.
    public var shape: [UInt64]
    /// Bytes of the data (a record variable: of one record), without padding.
    public var dataSize: UInt64
    /// `dataSize` rounded up to a multiple of 4, the space the variable takes in the file (per
    /// record for a record variable; the one record variable of a file is not padded).
    public var paddedSize: UInt64

    public init(
        name: String, dimensionIDs: [Int], attributes: [NetCDF3Attribute], type: NetCDF3Type, storedSize: UInt64,
        begin: UInt64, isRecord: Bool, shape: [UInt64], dataSize: UInt64, paddedSize: UInt64
    ) {
        self.name = name
        self.dimensionIDs = dimensionIDs
        self.attributes = attributes
        self.type = type
        self.storedSize = storedSize
        self.begin = begin
        self.isRecord = isRecord
        self.shape = shape
        self.dataSize = dataSize
        self.paddedSize = paddedSize
    }

    public func attribute(_ name: String) -> NetCDF3Attribute? { attributes.first { $0.name == name } }
}

/// Everything a netCDF-3 header says, with the record layout worked out as netCDF-C does.
public struct NetCDF3Header: Sendable, Equatable {
    /// The source's name (a path or URL), for messages.
    public var name: String
    public var format: NetCDF3Format
    /// The number of records: as stored, or (streaming) computed from the file size.
    public var numrecs: UInt64
    /// Whether the file stores the streaming marker (all ones) instead of a record count, as a
    /// writer that never closed the file leaves it; `numrecs` is then
    /// `(fileSize - firstRecordBegin) / recordSize`.
    public var numrecsIsStreaming: Bool
    public var dimensions: [NetCDF3Dimension]
    public var attributes: [NetCDF3Attribute]
    public var variables: [NetCDF3Variable]
    /// Bytes from one record to the next: the record variables' padded sizes summed, or the
    /// unpadded size when there is only one record variable (netCDF-C packs that case).
    public var recordSize: UInt64
    /// Where the first record starts (the first record variable's `begin`), if there are
    /// record variables.
    public var firstRecordBegin: UInt64?
    /// Bytes the header takes, from the magic number to the end of the variable list.
    public var headerSize: Int
    public var fileSize: UInt64

    public init(
        name: String, format: NetCDF3Format, numrecs: UInt64, numrecsIsStreaming: Bool, dimensions: [NetCDF3Dimension],
        attributes: [NetCDF3Attribute], variables: [NetCDF3Variable], recordSize: UInt64, firstRecordBegin: UInt64?,
        headerSize: Int, fileSize: UInt64
    ) {
        self.name = name
        self.format = format
        self.numrecs = numrecs
        self.numrecsIsStreaming = numrecsIsStreaming
        self.dimensions = dimensions
        self.attributes = attributes
        self.variables = variables
        self.recordSize = recordSize
        self.firstRecordBegin = firstRecordBegin
        self.headerSize = headerSize
        self.fileSize = fileSize
    }

    /// The unlimited dimension, if the file has one.
    public var unlimitedDimension: NetCDF3Dimension? { dimensions.first { $0.isUnlimited } }

    public func variable(_ name: String) -> NetCDF3Variable? { variables.first { $0.name == name } }

    /// The dimension names of a variable's axes.
    public func dimensionNames(of variable: NetCDF3Variable) -> [String] {
        variable.dimensionIDs.map { dimensions[$0].name }
    }
}

/// Safety limits for untrusted headers; the defaults are far above what real files use.
public struct NetCDF3Limits: Sendable, Equatable {
    /// Largest header read (netCDF-C writes headers of a few kilobytes; thousands of long
    /// attributes reach megabytes).
    public var maxHeaderBytes = 64 << 20
    public var maxDimensions = 65_536
    public var maxVariables = 1 << 20
    /// Attributes in one list (the global attributes, or one variable's).
    public var maxAttributes = 1 << 20
    /// Longest name in bytes (netCDF-C's NC_MAX_NAME is 256 characters, up to 4 bytes each).
    public var maxNameBytes = 1024
    /// Largest attribute value in bytes.
    public var maxAttributeBytes = 16 << 20
    /// Most dimensions of one variable (netCDF-C's NC_MAX_VAR_DIMS).
    public var maxRank = 1024

    public init() {}
}
