import ByteSource

public struct Superblock: Sendable, Equatable {
    public var version: Int
    /// Absolute position of the superblock (the user block's size).
    public var position: UInt64
    public var offsetSize: Int
    public var lengthSize: Int
    public var rootObjectHeader: UInt64
    public var extensionAddress: UInt64?
    public var endOfFile: UInt64?

    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    /// Finds and parses the superblock: at 0 or at 512, 1024, 2048, ... after a user block.
    static func locate(source: any RandomAccessSource, fileSize: UInt64) async throws -> Superblock {
        var position: UInt64 = 0
        while position + 8 <= fileSize {
            let bytes: [UInt8]
            do {
                bytes = try await source.read(offset: position, length: min(Int(fileSize - position), 96))
            } catch {
                throw HDF5Error(.io, "superblock", at: position, "\(error)")
            }
            if bytes.starts(with: signature) {
                return try parse(bytes, at: position, source: source, fileSize: fileSize)
            }
            position = position == 0 ? 512 : position * 2
        }
        let searched = fileSize < 512 + 8 ? "at offset 0" : "at offset 0 or any power of two from 512 up to the file's end"
        throw HDF5Error(.notHDF5, "superblock", at: 0, "no HDF5 signature \(searched) (the file has \(fileSize) bytes)")
    }

    private static func parse(_ prefix: [UInt8], at position: UInt64, source: any RandomAccessSource, fileSize: UInt64) throws -> Superblock {
        var cursor = ByteCursor(prefix, origin: position, structure: "superblock", offsetSize: 8, lengthSize: 8)
        try cursor.skip(8)
        let version = Int(try cursor.u8())
        switch version {
        case 0, 1:
            try cursor.skip(3)
            _ = try cursor.u8()
            let offsetSize = Int(try cursor.u8())
            let lengthSize = Int(try cursor.u8())
            try checkSizes(offsetSize, lengthSize, cursor)
            try cursor.skip(1 + 2 + 2 + 4)
            if version == 1 { try cursor.skip(4) }
            cursor = ByteCursor(prefix, origin: position, structure: "superblock", offsetSize: offsetSize, lengthSize: lengthSize)
            try cursor.skip(version == 1 ? 28 : 24)
            _ = try cursor.address()
            _ = try cursor.address()
            let eof = try cursor.address()
            _ = try cursor.address()
            _ = try cursor.uint(size: offsetSize)
            guard let root = try cursor.address() else { throw cursor.error(.corrupt, "undefined root group address") }
            return Superblock(
                version: version, position: position, offsetSize: offsetSize, lengthSize: lengthSize,
                rootObjectHeader: root, extensionAddress: nil, endOfFile: eof)
        case 2, 3:
            let offsetSize = Int(try cursor.u8())
            let lengthSize = Int(try cursor.u8())
            try checkSizes(offsetSize, lengthSize, cursor)
            cursor = ByteCursor(prefix, origin: position, structure: "superblock", offsetSize: offsetSize, lengthSize: lengthSize)
            try cursor.skip(12)
            _ = try cursor.address()
            let extensionAddress = try cursor.address()
            let eof = try cursor.address()
            guard let root = try cursor.address() else { throw cursor.error(.corrupt, "undefined root group address") }
            try cursor.verifyChecksum(from: 0)
            return Superblock(
                version: version, position: position, offsetSize: offsetSize, lengthSize: lengthSize,
                rootObjectHeader: root, extensionAddress: extensionAddress, endOfFile: eof)
        default:
            throw HDF5Error(.unsupported, "superblock", at: position, "superblock version \(version)")
        }
    }

    private static func checkSizes(_ offsetSize: Int, _ lengthSize: Int, _ cursor: ByteCursor) throws {
        guard [2, 4, 8].contains(offsetSize), [2, 4, 8].contains(lengthSize) else {
            throw cursor.error(.corrupt, "size of offsets \(offsetSize), size of lengths \(lengthSize)")
        }
    }
}
