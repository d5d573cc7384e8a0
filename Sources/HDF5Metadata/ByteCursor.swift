/// A bounds-checked little-endian reader over bytes fetched from one file position.
/// Every failure is a typed `HDF5Error` naming the structure and the absolute offset.
struct ByteCursor {
    let bytes: [UInt8]
    /// Absolute file position of `bytes[0]`.
    let origin: UInt64
    let structure: String
    let offsetSize: Int
    let lengthSize: Int
    var position = 0

    init(_ bytes: [UInt8], origin: UInt64, structure: String, offsetSize: Int, lengthSize: Int) {
        self.bytes = bytes
        self.origin = origin
        self.structure = structure
        self.offsetSize = offsetSize
        self.lengthSize = lengthSize
    }

    var remaining: Int { bytes.count - position }
    var absolutePosition: UInt64 { origin + UInt64(position) }
    var isAtEnd: Bool { position >= bytes.count }

    func error(_ kind: HDF5Error.Kind, _ detail: String) -> HDF5Error {
        HDF5Error(kind, structure, at: absolutePosition, detail)
    }

    mutating func need(_ count: Int) throws {
        guard count >= 0, count <= remaining else {
            throw error(.truncated, "needs \(count) bytes, \(max(remaining, 0)) left")
        }
    }

    mutating func skip(_ count: Int) throws {
        try need(count)
        position += count
    }

    mutating func seek(to newPosition: Int) throws {
        guard newPosition >= 0, newPosition <= bytes.count else {
            throw error(.truncated, "position \(newPosition) outside \(bytes.count) bytes")
        }
        position = newPosition
    }

    mutating func align(to multiple: Int, from start: Int = 0) throws {
        let rem = (position - start) % multiple
        if rem != 0 { try skip(multiple - rem) }
    }

    mutating func u8() throws -> UInt8 {
        try need(1)
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() throws -> UInt16 { UInt16(truncatingIfNeeded: try uint(size: 2)) }
    mutating func u32() throws -> UInt32 { UInt32(truncatingIfNeeded: try uint(size: 4)) }
    mutating func u64() throws -> UInt64 { try uint(size: 8) }

    /// Unsigned little-endian integer of 1 to 8 bytes.
    mutating func uint(size: Int) throws -> UInt64 {
        guard size >= 0 && size <= 8 else { throw error(.corrupt, "integer field of \(size) bytes") }
        try need(size)
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += size
        return value
    }

    /// A file address; `nil` for the undefined address (all bits set).
    mutating func address() throws -> UInt64? {
        let value = try uint(size: offsetSize)
        return value == Self.undefined(offsetSize) ? nil : value
    }

    mutating func length() throws -> UInt64 { try uint(size: lengthSize) }

    /// An unsigned field used as a count or size; fails instead of trapping when it cannot be
    /// one (hostile files put 2^64-1 in such fields).
    mutating func count(size: Int, limit: Int, _ what: String) throws -> Int {
        let value = try uint(size: size)
        guard value <= UInt64(limit) else { throw error(.limitExceeded, "\(what) of \(value) exceeds \(limit)") }
        return Int(value)
    }

    mutating func take(_ count: Int) throws -> [UInt8] {
        try need(count)
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func signature(_ expected: String) throws {
        let start = absolutePosition
        try need(4)
        let got = bytes[position..<(position + 4)]
        position += 4
        guard got.elementsEqual(expected.utf8) else {
            throw HDF5Error(.corrupt, structure, at: start, "expected signature \(expected), found \(printable(Array(got)))")
        }
    }

    /// A nul-terminated string, consuming the terminator.
    mutating func cString(limit: Int = 1 << 16) throws -> String {
        var end = position
        while end < bytes.count, bytes[end] != 0 {
            end += 1
            if end - position > limit { throw error(.limitExceeded, "string longer than \(limit) bytes") }
        }
        guard end < bytes.count else { throw error(.truncated, "unterminated string") }
        let text = String(decoding: bytes[position..<end], as: UTF8.self)
        position = end + 1
        return text
    }

    /// Verifies the lookup3 checksum stored right after `bytes[start..<position]`, consuming it.
    mutating func verifyChecksum(from start: Int) throws {
        let computed = Lookup3.hash(bytes[start..<position])
        let at = absolutePosition
        let stored = try u32()
        guard stored == computed else {
            throw HDF5Error(
                .checksumMismatch, structure, at: at,
                "stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))")
        }
    }

    static func undefined(_ size: Int) -> UInt64 { size >= 8 ? UInt64.max : (UInt64(1) << UInt64(8 * size)) - 1 }
}

func printable(_ bytes: [UInt8]) -> String {
    let text = bytes.map { $0 >= 32 && $0 < 127 ? String(UnicodeScalar($0)) : "." }.joined()
    return "\"\(text)\""
}

/// Number of bytes needed to encode `value` (libhdf5's H5VM_limit_enc_size).
func encodedSize(of value: UInt64) -> Int { (log2Floor(value) / 8) + 1 }

/// The product of `values`, or `nil` when it does not fit in 64 bits.
func checkedProduct<S: Sequence>(_ values: S) -> UInt64? where S.Element == UInt64 {
    var product: UInt64 = 1
    for value in values {
        let (next, overflow) = product.multipliedReportingOverflow(by: value)
        if overflow { return nil }
        product = next
    }
    return product
}

func log2Floor(_ value: UInt64) -> Int { value == 0 ? 0 : 63 - value.leadingZeroBitCount }
