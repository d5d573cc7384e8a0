/// Reads FlatBuffers (the encoding of Icechunk's snapshot and manifest files) from bytes that
/// may be hostile: every offset is checked against the buffer, and a read outside it is an
/// `IcechunkError` naming the structure and the byte offset rather than a crash.
///
/// The layout: a table starts with a signed 32-bit offset back to its vtable; the vtable holds
/// its own size, the table's size, and one 16-bit offset per field (0: the field is absent and
/// has its default). Tables, vectors and strings are reached through unsigned 32-bit offsets
/// relative to where the offset is stored. Vectors and strings start with a 32-bit count.
struct FlatBuffer: Sendable {
    let bytes: [UInt8]
    /// What the bytes are (a file name), for errors.
    let name: String

    init(_ bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }

    /// The root table (the buffer's first 4 bytes are the offset to it).
    func root(_ structure: String) throws -> Table {
        try table(at: try offsetTarget(at: 0, structure), structure)
    }

    func error(_ structure: String, at offset: Int, _ detail: String) -> IcechunkError {
        .malformed(file: name, structure: structure, offset: offset, detail: detail)
    }

    func require(_ offset: Int, _ count: Int, _ structure: String) throws {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw error(structure, at: offset, "\(count) bytes at \(offset) lie outside the \(bytes.count)-byte buffer")
        }
    }

    func u8(at offset: Int, _ structure: String) throws -> UInt8 {
        try require(offset, 1, structure)
        return bytes[offset]
    }

    func u16(at offset: Int, _ structure: String) throws -> UInt16 {
        try require(offset, 2, structure)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func u32(at offset: Int, _ structure: String) throws -> UInt32 {
        try require(offset, 4, structure)
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        return value
    }

    func u64(at offset: Int, _ structure: String) throws -> UInt64 {
        try require(offset, 8, structure)
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    func slice(at offset: Int, count: Int, _ structure: String) throws -> [UInt8] {
        try require(offset, count, structure)
        return Array(bytes[offset..<(offset + count)])
    }

    /// Where the unsigned offset stored at `offset` points.
    func offsetTarget(at offset: Int, _ structure: String) throws -> Int {
        let relative = Int(try u32(at: offset, structure))
        let target = offset + relative
        try require(target, 0, structure)
        return target
    }

    func table(at offset: Int, _ structure: String) throws -> Table {
        let back = Int(Int32(bitPattern: try u32(at: offset, structure)))
        let vtable = offset - back
        try require(vtable, 4, structure + " vtable")
        let vtableSize = Int(try u16(at: vtable, structure + " vtable"))
        guard vtableSize >= 4, vtableSize % 2 == 0 else { throw error(structure, at: vtable, "vtable of \(vtableSize) bytes") }
        try require(vtable, vtableSize, structure + " vtable")
        let tableSize = Int(try u16(at: vtable + 2, structure + " vtable"))
        try require(offset, tableSize, structure)
        return Table(buffer: self, position: offset, vtable: vtable, fieldCount: (vtableSize - 4) / 2, size: tableSize, structure: structure)
    }

    /// A vector's element count and the position of its first element.
    func vector(at offset: Int, elementSize: Int, _ structure: String) throws -> (count: Int, start: Int) {
        let count = Int(try u32(at: offset, structure))
        let (total, overflow) = count.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw error(structure, at: offset, "\(count) elements") }
        try require(offset + 4, total, structure)
        return (count, offset + 4)
    }

    struct Table: Sendable {
        let buffer: FlatBuffer
        let position: Int
        let vtable: Int
        let fieldCount: Int
        let size: Int
        let structure: String

        /// The position of field `index` within the buffer, or nil when it is absent.
        func field(_ index: Int, size fieldSize: Int) throws -> Int? {
            guard index < fieldCount else { return nil }
            let relative = Int(try buffer.u16(at: vtable + 4 + 2 * index, structure + " vtable"))
            guard relative != 0 else { return nil }
            guard relative + fieldSize <= size else {
                throw buffer.error(structure, at: position + relative, "field \(index) lies past the table's \(size) bytes")
            }
            return position + relative
        }

        func u8(_ index: Int, default value: UInt8 = 0) throws -> UInt8 {
            try field(index, size: 1).map { try buffer.u8(at: $0, structure) } ?? value
        }

        func u32(_ index: Int, default value: UInt32 = 0) throws -> UInt32 {
            try field(index, size: 4).map { try buffer.u32(at: $0, structure) } ?? value
        }

        func u64(_ index: Int, default value: UInt64 = 0) throws -> UInt64 {
            try field(index, size: 8).map { try buffer.u64(at: $0, structure) } ?? value
        }

        /// An inline struct of `count` bytes (an object id).
        func bytes(_ index: Int, count: Int) throws -> [UInt8]? {
            try field(index, size: count).map { try buffer.slice(at: $0, count: count, structure) }
        }

        func table(_ index: Int, _ name: String) throws -> Table? {
            guard let at = try field(index, size: 4) else { return nil }
            return try buffer.table(at: try buffer.offsetTarget(at: at, structure), name)
        }

        func string(_ index: Int) throws -> String? {
            guard let bytes = try byteVector(index) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }

        func byteVector(_ index: Int) throws -> [UInt8]? {
            guard let at = try field(index, size: 4) else { return nil }
            let (count, start) = try buffer.vector(at: try buffer.offsetTarget(at: at, structure), elementSize: 1, structure)
            return try buffer.slice(at: start, count: count, structure)
        }

        func u32Vector(_ index: Int) throws -> [UInt32]? {
            guard let at = try field(index, size: 4) else { return nil }
            let (count, start) = try buffer.vector(at: try buffer.offsetTarget(at: at, structure), elementSize: 4, structure)
            return try (0..<count).map { try buffer.u32(at: start + 4 * $0, structure) }
        }

        /// The positions of a vector of inline structs of `elementSize` bytes.
        func structVector(_ index: Int, elementSize: Int) throws -> [Int]? {
            guard let at = try field(index, size: 4) else { return nil }
            let (count, start) = try buffer.vector(at: try buffer.offsetTarget(at: at, structure), elementSize: elementSize, structure)
            return (0..<count).map { start + elementSize * $0 }
        }

        func tableVector(_ index: Int, _ name: String) throws -> [Table]? {
            guard let at = try field(index, size: 4) else { return nil }
            let (count, start) = try buffer.vector(at: try buffer.offsetTarget(at: at, structure), elementSize: 4, structure)
            return try (0..<count).map { try buffer.table(at: try buffer.offsetTarget(at: start + 4 * $0, name), name) }
        }
    }
}
