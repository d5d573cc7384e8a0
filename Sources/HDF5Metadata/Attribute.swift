import ByteSource

/// A decoded element value: what an attribute (or a fill value) holds.
public enum Value: Sendable, Equatable {
    case integer(Int64)
    case unsigned(UInt64)
    case float(Double)
    case string(String)
    /// Opaque, bitfield, time and other raw bytes.
    case bytes([UInt8])
    /// An object reference: the referenced object header's address (relative to the base).
    case objectReference(UInt64)
    /// A dataset region reference: the referenced dataset's address (the selection is omitted).
    case regionReference(UInt64)
    case nullReference
    case list([Value])
    case compound([(name: String, value: Value)])

    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case let (.integer(a), .integer(b)): return a == b
        case let (.unsigned(a), .unsigned(b)): return a == b
        case let (.float(a), .float(b)): return a == b || (a.isNaN && b.isNaN)
        case let (.string(a), .string(b)): return a == b
        case let (.bytes(a), .bytes(b)): return a == b
        case let (.objectReference(a), .objectReference(b)): return a == b
        case let (.regionReference(a), .regionReference(b)): return a == b
        case (.nullReference, .nullReference): return true
        case let (.list(a), .list(b)): return a == b
        case let (.compound(a), .compound(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        default: return false
        }
    }
}

public struct Attribute: Sendable, Equatable {
    public var name: String
    public var datatype: Datatype
    public var dataspace: Dataspace
    /// The element bytes as stored in the file (for variable-length types: the heap descriptors).
    public var raw: [UInt8]
    /// Decoded elements, row-major; one element for a scalar.
    public var values: [Value]

    /// Parses an attribute message body; values are decoded later (they may need heap reads).
    static func parse(_ cursor: inout ByteCursor, context: FileContext) async throws -> Attribute {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        guard version >= 1 && version <= 3 else { throw HDF5Error(.corrupt, "attribute message", at: start, "version \(version)") }
        let flags = try cursor.u8()
        let nameSize = Int(try cursor.u16())
        let datatypeSize = Int(try cursor.u16())
        let dataspaceSize = Int(try cursor.u16())
        if version == 3 { _ = try cursor.u8() }
        /// The next field's bytes in place (version 1 pads each to 8 bytes) and its file position.
        func field(_ size: Int) throws -> (bytes: ArraySlice<UInt8>, origin: UInt64) {
            let origin = cursor.absolutePosition
            try cursor.need(size)
            let bytes = cursor.bytes[cursor.position..<(cursor.position + size)]
            try cursor.skip(size)
            if version == 1 { try cursor.skip((8 - size % 8) % 8) }
            return (bytes, origin)
        }
        let name = String(decoding: try field(nameSize).bytes.prefix { $0 != 0 }, as: UTF8.self)
        let (typeBytes, typeOrigin) = try field(datatypeSize)
        let typeField = (bytes: Array(typeBytes), origin: typeOrigin)
        let (spaceBytes, spaceOrigin) = try field(dataspaceSize)
        let spaceField = (bytes: Array(spaceBytes), origin: spaceOrigin)

        var typeCursor: ByteCursor
        if flags & 0x01 != 0 {
            typeCursor = try await context.resolve(
                HeaderMessage(
                    type: MessageType.datatype.rawValue, flags: 0x02,
                    body: typeField.bytes, origin: typeField.origin))
        } else {
            typeCursor = context.cursor(typeField.bytes, at: typeField.origin, "attribute datatype")
        }
        let datatype = try Datatype.parse(&typeCursor)
        var spaceCursor: ByteCursor
        if flags & 0x02 != 0 {
            spaceCursor = try await context.resolve(
                HeaderMessage(
                    type: MessageType.dataspace.rawValue, flags: 0x02,
                    body: spaceField.bytes, origin: spaceField.origin))
        } else {
            spaceCursor = context.cursor(spaceField.bytes, at: spaceField.origin, "attribute dataspace")
        }
        let dataspace = try Dataspace.parse(&spaceCursor)
        let count = dataspace.elementCount
        let (total, overflow) = count.multipliedReportingOverflow(by: UInt64(datatype.size))
        guard !overflow, total <= UInt64(context.limits.maxAttributeBytes) else {
            throw HDF5Error(.limitExceeded, "attribute \(name)", at: start, "value of \(count) elements × \(datatype.size) bytes")
        }
        let raw = try cursor.take(Int(total))
        return Attribute(name: name, datatype: datatype, dataspace: dataspace, raw: raw, values: [])
    }
}

/// Decodes elements of any datatype from file bytes, following variable-length data into the
/// global heap.
struct ValueDecoder {
    let context: FileContext

    func decodeAll(_ raw: [UInt8], type: Datatype, count: Int, origin: UInt64) async throws -> [Value] {
        var values: [Value] = []
        values.reserveCapacity(count)
        let size = type.size
        guard size > 0 || count == 0 else { return [] }
        for index in 0..<count {
            let start = index * size
            guard start + size <= raw.count else { throw HDF5Error(.truncated, "attribute value", at: origin, "element \(index) missing") }
            values.append(try await decode(raw[start..<(start + size)], type: type, origin: origin, depth: 0))
        }
        return values
    }

    func decode(_ bytes: ArraySlice<UInt8>, type: Datatype, origin: UInt64, depth: Int) async throws -> Value {
        guard depth < 32 else { throw HDF5Error(.limitExceeded, "attribute value", at: origin, "nested deeper than 32 levels") }
        switch type {
        case .integer, .float:
            return type.number(bytes) ?? .bytes(Array(bytes))
        case .string(_, let padding, _):
            return .string(fixedString(bytes, padding: padding))
        case .time, .bitfield, .opaque:
            return .bytes(Array(bytes))
        case .enumeration(_, let base, _, _):
            return try await decode(bytes, type: base, origin: origin, depth: depth + 1)
        case .compound(_, let members):
            var fields: [(name: String, value: Value)] = []
            for member in members {
                let start = bytes.startIndex + member.offset
                let slice = bytes[start..<(start + member.type.size)]
                fields.append((member.name, try await decode(slice, type: member.type, origin: origin, depth: depth + 1)))
            }
            return .compound(fields)
        case .array(_, let dims, let base):
            let count = Int(clamping: checkedProduct(dims.map { UInt64($0) }) ?? 0)
            var items: [Value] = []
            items.reserveCapacity(min(count, bytes.count / max(base.size, 1)))
            for i in 0..<count {
                let start = bytes.startIndex + i * base.size
                guard start + base.size <= bytes.endIndex else { break }
                items.append(try await decode(bytes[start..<(start + base.size)], type: base, origin: origin, depth: depth + 1))
            }
            return .list(items)
        case .reference(_, let kind):
            if kind == .region {
                // A dataset region reference names a global heap object that starts with the
                // referenced object's address, followed by the serialized selection.
                let data = try await regionHeapData(bytes, origin: origin)
                guard data.count >= context.offsetSize else { return .nullReference }
                var cursor = context.cursor(data, at: origin, "region reference")
                let address = try cursor.uint(size: context.offsetSize)
                return .regionReference(address)
            }
            guard kind == .object else { return .bytes(Array(bytes)) }
            // netCDF-4 files hold one of these per dimension of every variable and per variable
            // of every dimension: read in place, without a copy and a cursor each.
            guard bytes.count >= context.offsetSize else {
                throw HDF5Error(.truncated, "object reference", at: origin, "needs \(context.offsetSize) bytes, \(bytes.count) left")
            }
            let address = integer(bytes.prefix(context.offsetSize), order: .littleEndian)
            return address == 0 || address == context.undefinedAddress ? .nullReference : .objectReference(address)
        case .variableLengthString(_, let padding, _):
            let data = try await heapData(bytes, origin: origin)
            return .string(fixedString(data.bytes[...], padding: padding))
        case .variableLengthSequence(_, let base):
            let data = try await heapData(bytes, origin: origin)
            var items: [Value] = []
            let count = Int(data.count)
            guard base.size > 0, count * base.size <= data.bytes.count else {
                throw HDF5Error(.corrupt, "variable-length data", at: origin, "\(count) elements do not fit \(data.bytes.count) bytes")
            }
            items.reserveCapacity(count)
            for i in 0..<count {
                let start = i * base.size
                items.append(try await decode(data.bytes[start..<(start + base.size)], type: base, origin: origin, depth: depth + 1))
            }
            return .list(items)
        }
    }

    private func regionHeapData(_ bytes: ArraySlice<UInt8>, origin: UInt64) async throws -> [UInt8] {
        var cursor = context.cursor(Array(bytes), at: origin, "region reference")
        guard let collection = try cursor.address(), collection != 0 else { return [] }
        let index = try cursor.u32()
        return try await context.globalHeapObject(collection: collection, index: index)
    }

    private func heapData(_ bytes: ArraySlice<UInt8>, origin: UInt64) async throws -> (count: UInt32, bytes: [UInt8]) {
        var cursor = context.cursor(Array(bytes), at: origin, "variable-length descriptor")
        let count = try cursor.u32()
        let collection = try cursor.address()
        let index = try cursor.u32()
        guard let collection, collection != 0 else { return (0, []) }
        if count == 0 { return (0, []) }
        let data = try await context.globalHeapObject(collection: collection, index: index)
        return (count, data)
    }

    private func integer(_ bytes: ArraySlice<UInt8>, order: ByteOrder) -> UInt64 {
        var value: UInt64 = 0
        let count = min(bytes.count, 8)
        for i in 0..<count {
            let byte = order == .littleEndian ? bytes[bytes.startIndex + i] : bytes[bytes.startIndex + bytes.count - 1 - i]
            value |= UInt64(byte) << UInt64(8 * i)
        }
        return value
    }

    private func fixedString(_ bytes: ArraySlice<UInt8>, padding: StringPadding) -> String {
        var content = bytes
        switch padding {
        case .nullTerminated:
            if let end = content.firstIndex(of: 0) { content = content[content.startIndex..<end] }
        case .nullPadded:
            while let last = content.last, last == 0 { content = content.dropLast() }
        case .spacePadded:
            while let last = content.last, last == 0x20 || last == 0 { content = content.dropLast() }
        }
        return String(decoding: content, as: UTF8.self)
    }
}

extension Value {
    /// Appends the object addresses this value refers to, nested values included. Into one
    /// array: most values refer to nothing, and an array per value would be an allocation each.
    func appendReferencedAddresses(to addresses: inout [UInt64]) {
        switch self {
        case .objectReference(let address), .regionReference(let address): addresses.append(address)
        case .list(let values): for value in values { value.appendReferencedAddresses(to: &addresses) }
        case .compound(let members): for member in members { member.value.appendReferencedAddresses(to: &addresses) }
        default: break
        }
    }
}
