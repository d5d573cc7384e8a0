import ByteSource

/// Why a parse of a header prefix stopped: a real error, or the prefix ended before the header
/// did and at least `end` bytes are needed (the caller reads more and parses again).
enum ParseStop: Error {
    case failed(NetCDF3Error)
    case needBytes(end: Int, structure: String, offset: UInt64)
}

/// Reads big-endian fields from a prefix of the file. Every read checks the prefix first: a read
/// past it either asks for more bytes (the header may continue) or fails (past the file's end
/// or the header limit).
struct HeaderReader {
    let bytes: [UInt8]
    let fileSize: UInt64
    let limits: NetCDF3Limits
    var format: NetCDF3Format = .classic
    var position = 0

    init(bytes: [UInt8], fileSize: UInt64, limits: NetCDF3Limits) {
        self.bytes = bytes
        self.fileSize = fileSize
        self.limits = limits
    }

    func failure(_ kind: NetCDF3Error.Kind, _ structure: String, at offset: Int? = nil, _ detail: String) -> ParseStop {
        .failed(NetCDF3Error(kind, structure, at: UInt64(offset ?? position), detail))
    }

    /// Makes sure the prefix reaches `end` (an absolute offset, possibly absurd).
    func require(end: UInt64, _ structure: String, _ what: String) throws(ParseStop) {
        if end <= UInt64(bytes.count) { return }
        if end > fileSize {
            throw failure(.truncated, structure, "\(what) needs the header to reach byte \(end), past the end of the file (\(fileSize) bytes)")
        }
        if end > UInt64(limits.maxHeaderBytes) {
            throw failure(
                .limitExceeded, structure, "\(what) needs the header to reach byte \(end), over the limit of \(limits.maxHeaderBytes) header bytes")
        }
        throw ParseStop.needBytes(end: Int(end), structure: structure, offset: UInt64(position))
    }

    mutating func take(_ count: Int, _ structure: String) throws(ParseStop) -> ArraySlice<UInt8> {
        try require(end: UInt64(position) + UInt64(count), structure, "a \(count)-byte field")
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func uint32(_ structure: String) throws(ParseStop) -> UInt32 {
        UInt32(truncatingIfNeeded: bigEndian(try take(4, structure)))
    }

    /// A 4- or 8-byte field (as the format sizes it) that must not be negative as a signed number.
    mutating func nonNegative(_ structure: String, _ field: String, bytes count: Int) throws(ParseStop) -> UInt64 {
        let start = position
        let value = bigEndian(try take(count, structure))
        if count == 8, value > UInt64(Int64.max) {
            throw failure(.corrupt, structure, at: start, "\(field) is \(Int64(bitPattern: value)) (negative)")
        }
        return value
    }

    /// A count, length or size (`nelems`, `dim_length`, `vsize`, dimension id).
    mutating func size(_ structure: String, _ field: String) throws(ParseStop) -> UInt64 {
        try nonNegative(structure, field, bytes: format.sizeFieldBytes)
    }

    /// A count of `what` that will be read as `count` elements of at least `minimumBytes` each:
    /// checked against the limit and against the bytes left before anything is allocated.
    mutating func count(_ structure: String, _ what: String, limit: Int, minimumBytes: Int) throws(ParseStop) -> Int {
        let start = position
        let value = try size(structure, "the number of \(what)")
        guard value <= UInt64(limit) else {
            throw failure(.limitExceeded, structure, at: start, "\(value) \(what), over the limit of \(limit)")
        }
        let (needed, overflow) = value.multipliedReportingOverflow(by: UInt64(minimumBytes))
        try require(
            end: overflow ? UInt64.max : UInt64(position) &+ needed, structure,
            "\(value) \(what) (at least \(minimumBytes) bytes each)")
        return Int(value)
    }

    /// Skips the padding that aligns the next field to 4 bytes.
    mutating func pad(_ structure: String) throws(ParseStop) {
        let rest = (4 - position % 4) % 4
        if rest > 0 { _ = try take(rest, structure) }
    }

    mutating func name(_ structure: String) throws(ParseStop) -> String {
        let start = position
        let length = try size(structure, "the name length")
        guard length <= UInt64(limits.maxNameBytes) else {
            throw failure(.limitExceeded, structure, at: start, "a name of \(length) bytes, over the limit of \(limits.maxNameBytes)")
        }
        guard length > 0 else { throw failure(.corrupt, structure, at: start, "an empty name") }
        // netCDF-C handles names as C strings: a name ends at its first NUL (netCDF-C's own
        // nctest reference files have a variable stored as "yy\0", which it calls "yy").
        let raw = try take(Int(length), structure).prefix { $0 != 0 }
        guard !raw.isEmpty else { throw failure(.corrupt, structure, at: start, "a name that starts with a NUL") }
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw failure(.corrupt, structure, at: start, "the name is not UTF-8")
        }
        try pad(structure)
        return text
    }
}

@inline(__always)
func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    for byte in bytes { value = value << 8 | UInt64(byte) }
    return value
}

/// The list tags of the header grammar.
enum ListTag: UInt32 {
    case absent = 0
    case dimension = 0x0A
    case variable = 0x0B
    case attribute = 0x0C
}

extension HeaderReader {
    /// The smallest possible entries, which bound a list's count by the bytes left.
    var minimumDimensionBytes: Int { 2 * format.sizeFieldBytes + 4 }
    var minimumAttributeBytes: Int { 2 * format.sizeFieldBytes + 4 + 4 }
    var minimumVariableBytes: Int {
        // name, rank, attribute list (tag and count), nc_type, vsize, begin.
        2 * format.sizeFieldBytes + 4 + 4 + format.sizeFieldBytes + 4 + format.sizeFieldBytes + format.offsetFieldBytes
    }

    /// A list's tag and count: 0 for an absent list.
    mutating func listHeader(_ tag: ListTag, _ structure: String, _ what: String, limit: Int, minimumBytes: Int) throws(ParseStop) -> Int {
        let start = position
        let found = try uint32(structure)
        if found == ListTag.absent.rawValue {
            let countStart = position
            let count = try size(structure, "the count of an absent list")
            guard count == 0 else {
                throw failure(.corrupt, structure, at: countStart, "an absent list (tag 0) with a count of \(count)")
            }
            return 0
        }
        guard found == tag.rawValue else {
            throw failure(
                .corrupt, structure, at: start, "tag 0x\(String(found, radix: 16)) where \(what) (tag 0x\(String(tag.rawValue, radix: 16))) or nothing belongs")
        }
        return try count(structure, what, limit: limit, minimumBytes: minimumBytes)
    }

    mutating func dimensionList() throws(ParseStop) -> [NetCDF3Dimension] {
        let structure = "dimension list"
        let count = try listHeader(.dimension, structure, "dimensions", limit: limits.maxDimensions, minimumBytes: minimumDimensionBytes)
        var dimensions: [NetCDF3Dimension] = []
        dimensions.reserveCapacity(count)
        var names: Set<String> = []
        for index in 0..<count {
            let start = position
            let name = try name("name of dimension \(index)")
            let length = try size("dimension \(name)", "the length")
            guard names.insert(name).inserted else { throw failure(.corrupt, "dimension \(name)", at: start, "a second dimension named \(name)") }
            if length == 0, dimensions.contains(where: \.isUnlimited) {
                throw failure(.corrupt, "dimension \(name)", at: start, "a second unlimited dimension (netCDF-3 has at most one)")
            }
            dimensions.append(NetCDF3Dimension(name: name, length: length, isUnlimited: length == 0))
        }
        return dimensions
    }

    mutating func attributeList(_ owner: String) throws(ParseStop) -> [NetCDF3Attribute] {
        let structure = "attribute list of \(owner)"
        let count = try listHeader(.attribute, structure, "attributes", limit: limits.maxAttributes, minimumBytes: minimumAttributeBytes)
        var attributes: [NetCDF3Attribute] = []
        attributes.reserveCapacity(count)
        for index in 0..<count {
            let name = try name("name of attribute \(index) of \(owner)")
            let structure = "attribute \(name) of \(owner)"
            let type = try type(structure)
            let start = position
            let count = try size(structure, "the number of values")
            let (bytes, overflow) = count.multipliedReportingOverflow(by: UInt64(type.size))
            guard !overflow, bytes <= UInt64(limits.maxAttributeBytes) else {
                throw failure(
                    .limitExceeded, structure, at: start, "\(count) values of \(type), over the limit of \(limits.maxAttributeBytes) bytes")
            }
            let raw = Array(try take(Int(bytes), structure))
            try pad(structure)
            attributes.append(NetCDF3Attribute(name: name, type: type, values: Self.decode(raw, type: type), raw: raw))
        }
        return attributes
    }

    mutating func type(_ structure: String) throws(ParseStop) -> NetCDF3Type {
        let start = position
        let code = try uint32(structure)
        guard let type = NetCDF3Type(rawValue: Int32(truncatingIfNeeded: code)), code <= 11 else {
            throw failure(.corrupt, structure, at: start, "nc_type \(code) is not a netCDF type")
        }
        guard type.isClassic || format == .data64 else {
            throw failure(.corrupt, structure, at: start, "\(type) exists only in the 64-bit data format (CDF-5), not in \(format)")
        }
        return type
    }

    static func decode(_ raw: [UInt8], type: NetCDF3Type) -> NetCDF3Values {
        func values<T>(_ make: (UInt64) -> T) -> [T] {
            stride(from: 0, to: raw.count, by: type.size).map { make(bigEndian(raw[$0..<($0 + type.size)])) }
        }
        switch type {
        case .byte: return .bytes(raw.map { Int8(bitPattern: $0) })
        case .char: return .text(String(decoding: raw, as: UTF8.self))
        case .short: return .shorts(values { Int16(bitPattern: UInt16(truncatingIfNeeded: $0)) })
        case .int: return .ints(values { Int32(bitPattern: UInt32(truncatingIfNeeded: $0)) })
        case .float: return .floats(values { Float(bitPattern: UInt32(truncatingIfNeeded: $0)) })
        case .double: return .doubles(values { Double(bitPattern: $0) })
        case .ubyte: return .ubytes(raw)
        case .ushort: return .ushorts(values { UInt16(truncatingIfNeeded: $0) })
        case .uint: return .uints(values { UInt32(truncatingIfNeeded: $0) })
        case .int64: return .int64s(values { Int64(bitPattern: $0) })
        case .uint64: return .uint64s(values { $0 })
        }
    }

    mutating func variableList(_ dimensions: [NetCDF3Dimension]) throws(ParseStop) -> [NetCDF3Variable] {
        let structure = "variable list"
        let count = try listHeader(.variable, structure, "variables", limit: limits.maxVariables, minimumBytes: minimumVariableBytes)
        var variables: [NetCDF3Variable] = []
        variables.reserveCapacity(count)
        var names: Set<String> = []
        for index in 0..<count {
            let start = position
            let name = try name("name of variable \(index)")
            let structure = "variable \(name)"
            guard names.insert(name).inserted else { throw failure(.corrupt, structure, at: start, "a second variable named \(name)") }
            let rank = try self.count(structure, "dimensions", limit: limits.maxRank, minimumBytes: format.sizeFieldBytes)
            var ids: [Int] = []
            ids.reserveCapacity(rank)
            for axis in 0..<rank {
                let idStart = position
                let id = try size(structure, "dimension id \(axis)")
                guard id < UInt64(dimensions.count) else {
                    throw failure(.corrupt, structure, at: idStart, "dimension id \(id) on axis \(axis), but the file has \(dimensions.count) dimensions")
                }
                if dimensions[Int(id)].isUnlimited, axis > 0 {
                    throw failure(
                        .corrupt, structure, at: idStart,
                        "the unlimited dimension \(dimensions[Int(id)].name) on axis \(axis); only the first axis may be unlimited")
                }
                ids.append(Int(id))
            }
            let attributes = try attributeList("variable \(name)")
            let type = try type(structure)
            let storedSize = try size(structure, "vsize")
            let beginStart = position
            let begin = try nonNegative(structure, "begin", bytes: format.offsetFieldBytes)
            if format == .classic, begin > UInt64(Int32.max) {
                throw failure(.corrupt, structure, at: beginStart, "begin is \(Int32(truncatingIfNeeded: begin)) (negative)")
            }
            let isRecord = ids.first.map { dimensions[$0].isUnlimited } ?? false
            // Elements of the fixed axes (all but the record axis), then bytes.
            var elements: UInt64 = 1
            var overflow = false
            for id in ids.dropFirst(isRecord ? 1 : 0) {
                let (product, over) = elements.multipliedReportingOverflow(by: dimensions[id].length)
                elements = product
                overflow = overflow || over
            }
            let (dataSize, byteOverflow) = elements.multipliedReportingOverflow(by: UInt64(type.size))
            guard !overflow, !byteOverflow, dataSize <= UInt64.max - 3 else {
                throw failure(.corrupt, structure, at: start, "its shape \(ids.map { dimensions[$0].length }) of \(type) overflows 64 bits")
            }
            let paddedSize = (dataSize + 3) / 4 * 4
            // netCDF-C's offsets are signed 64-bit (off_t): the data must end below 2^63.
            let (end, endOverflow) = begin.addingReportingOverflow(paddedSize)
            guard !endOverflow, end <= UInt64(Int64.max) else {
                throw failure(.corrupt, structure, at: beginStart, "begin \(begin) + size \(paddedSize) is past 2^63, the largest file offset")
            }
            variables.append(
                NetCDF3Variable(
                    name: name, dimensionIDs: ids, attributes: attributes, type: type, storedSize: storedSize, begin: begin,
                    isRecord: isRecord, shape: ids.map { dimensions[$0].length }, dataSize: dataSize, paddedSize: paddedSize))
        }
        return variables
    }
}

extension NetCDF3File {
    /// Parses a header from a prefix of the file (`bytes`, the file's first bytes).
    static func parsePrefix(_ bytes: [UInt8], name: String, fileSize: UInt64, limits: NetCDF3Limits) throws(ParseStop) -> NetCDF3Header {
        var reader = HeaderReader(bytes: bytes, fileSize: fileSize, limits: limits)
        let signature = FileSignature.classify(bytes.prefix(FileSignature.bytesNeeded))
        switch signature {
        case .netCDF3Classic: reader.format = .classic
        case .netCDF3Offset64: reader.format = .offset64
        case .netCDF3Data64: reader.format = .data64
        case .netCDF3UnknownVersion:
            throw reader.failure(.unsupported, "magic number", at: 3, "this is \(signature)")
        default:
            if bytes.count < 4, fileSize > UInt64(bytes.count) {
                throw ParseStop.needBytes(end: 4, structure: "magic number", offset: 0)
            }
            throw reader.failure(.notNetCDF3, "magic number", at: 0, "this is \(signature)")
        }
        reader.position = 4
        let numrecsStart = reader.position
        let stored = bigEndian(try reader.take(reader.format.sizeFieldBytes, "numrecs"))
        let streaming = stored == (reader.format == .data64 ? UInt64.max : UInt64(UInt32.max))
        if !streaming, reader.format == .data64, stored > UInt64(Int64.max) {
            throw reader.failure(.corrupt, "numrecs", at: numrecsStart, "numrecs is \(Int64(bitPattern: stored)) (negative)")
        }
        var dimensions = try reader.dimensionList()
        let attributes = try reader.attributeList("the file (global attributes)")
        var variables = try reader.variableList(dimensions)
        let headerSize = reader.position

        // The record layout, as netCDF-C's NC_computeshapes works it out.
        var recordSize: UInt64 = 0
        let records = variables.filter(\.isRecord)
        for variable in records {
            let (sum, overflow) = recordSize.addingReportingOverflow(variable.paddedSize)
            guard !overflow else {
                throw reader.failure(.corrupt, "variable \(variable.name)", at: headerSize, "the record size overflows 64 bits")
            }
            recordSize = sum
        }
        // One record variable alone is packed: records follow each other without padding.
        if let first = records.first, recordSize == first.paddedSize { recordSize = first.dataSize }
        let firstRecordBegin = records.first?.begin
        for variable in variables where variable.begin < UInt64(headerSize) {
            throw reader.failure(
                .corrupt, "variable \(variable.name)", at: headerSize,
                "its data begins at \(variable.begin), inside the header (\(headerSize) bytes)")
        }
        // netCDF-C refuses a file whose variables' data overlap (NC_check_voffs): fixed-size
        // variables in file order, the record section after them, each record's variables in order.
        func end(of variable: NetCDF3Variable) throws(ParseStop) -> UInt64 {
            let (end, overflow) = variable.begin.addingReportingOverflow(variable.dataSize)
            guard !overflow else {
                throw reader.failure(.corrupt, "variable \(variable.name)", at: headerSize, "its data ends past 2^64")
            }
            return end
        }
        var previous: (end: UInt64, name: String) = (UInt64(headerSize), "the header")
        for variable in variables where !variable.isRecord {
            guard variable.begin >= previous.end else {
                throw reader.failure(
                    .corrupt, "variable \(variable.name)", at: headerSize,
                    "its data begins at \(variable.begin), inside \(previous.name)'s (which ends at \(previous.end))")
            }
            previous = (try end(of: variable), variable.name)
        }
        if let first = records.first, first.begin < previous.end {
            throw reader.failure(
                .corrupt, "variable \(first.name)", at: headerSize,
                "the records begin at \(first.begin), inside \(previous.name)'s data (which ends at \(previous.end))")
        }
        for variable in records {
            guard variable.begin >= previous.end || variable.begin == records.first?.begin else {
                throw reader.failure(
                    .corrupt, "variable \(variable.name)", at: headerSize,
                    "its record data begins at \(variable.begin), inside \(previous.name)'s (which ends at \(previous.end))")
            }
            previous = (try end(of: variable), variable.name)
        }
        var numrecs = stored
        if streaming {
            numrecs = 0
            if let begin = firstRecordBegin, recordSize > 0, fileSize > begin { numrecs = (fileSize - begin) / recordSize }
        }
        // The last record must end below 2^63 (the data itself may lie past the file's end:
        // netCDF-C reads what a short file lacks as zeros).
        for variable in records where numrecs > 0 {
            let (span, overflow) = (numrecs - 1).multipliedReportingOverflow(by: recordSize)
            let (start, startOverflow) = span.addingReportingOverflow(variable.begin)
            let (end, endOverflow) = start.addingReportingOverflow(variable.paddedSize)
            guard !overflow, !startOverflow, !endOverflow, end <= UInt64(Int64.max) else {
                throw reader.failure(
                    .corrupt, "variable \(variable.name)", at: numrecsStart,
                    "\(numrecs) records of \(recordSize) bytes from offset \(variable.begin) end past 2^63, the largest file offset")
            }
        }
        for index in dimensions.indices where dimensions[index].isUnlimited { dimensions[index].length = numrecs }
        for index in variables.indices where variables[index].isRecord { variables[index].shape[0] = numrecs }
        return NetCDF3Header(
            name: name, format: reader.format, numrecs: numrecs, numrecsIsStreaming: streaming, dimensions: dimensions,
            attributes: attributes, variables: variables, recordSize: recordSize, firstRecordBegin: firstRecordBegin,
            headerSize: headerSize, fileSize: fileSize)
    }
}
