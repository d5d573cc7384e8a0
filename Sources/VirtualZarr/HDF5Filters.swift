import ByteSource
import CSzip
import Foundation
import JSONValue

/// An HDF5 filter that zarrmount decodes and no Zarr reader does: numcodecs has no codec for it
/// (LZF, szip, bitshuffle, scale-offset, n-bit), or none for HDF5's framing of it (LZ4: HDF5
/// writes a size header and big-endian block lengths, numcodecs' LZ4 a little-endian size and one
/// block). Its client data (`cd_values`) are kept as the file stores them: they are what the
/// decoder needs.
public struct HDF5Filter: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case lz4, lzf, szip, bitshuffle, scaleoffset, nbit

        /// The HDF5 filter id (libhdf5's own, or the one registered with The HDF Group).
        public var id: UInt16 {
            switch self {
            case .lz4: 32004
            case .lzf: 32000
            case .szip: 4
            case .bitshuffle: 32008
            case .scaleoffset: 6
            case .nbit: 5
            }
        }

        public init?(id: UInt16) {
            guard let kind = Self.allCases.first(where: { $0.id == id }) else { return nil }
            self = kind
        }
    }

    public var kind: Kind
    public var clientData: [UInt32]
    /// n-bit: each number of an element as the datatype declares it (the client data give
    /// only sizes and bit positions), in the order the client data list them.
    public var numbers: [NBitNumber]

    public init(kind: Kind, clientData: [UInt32], numbers: [NBitNumber] = []) {
        self.kind = kind
        self.clientData = clientData
        self.numbers = numbers
    }

    /// The configuration's id in manifests and caches; no Zarr reader knows it, and no store
    /// zarrmount writes names it (such arrays are left out, or served decoded).
    static let jsonID = "zarrmount.hdf5_filter"

    var json: JSON {
        var members: [(String, JSON)] = [
            ("id", .string(Self.jsonID)), ("filter", .string(kind.rawValue)), ("filter_id", .int(Int64(kind.id))),
            ("client_data", .array(clientData.map { .int(Int64($0)) })),
        ]
        if !numbers.isEmpty { members.append(("numbers", .array(numbers.map(\.json)))) }
        return .object(members)
    }

    init?(json: JSON) {
        guard let name = json["filter"]?.stringValue, let kind = Kind(rawValue: name) else { return nil }
        var data: [UInt32] = []
        for value in json["client_data"]?.arrayValue ?? [] {
            guard let number = value.int64Value, let word = UInt32(exactly: number) else { return nil }
            data.append(word)
        }
        var numbers: [NBitNumber] = []
        for value in json["numbers"]?.arrayValue ?? [] {
            guard let number = NBitNumber(json: value) else { return nil }
            numbers.append(number)
        }
        self.init(kind: kind, clientData: data, numbers: numbers)
    }

    /// A fill value stored in the dataset's type (one element), as this filter's decoded chunks
    /// hold it; nil when the filter does not convert values (every filter but n-bit).
    public func nativeFill(_ bytes: [UInt8]) -> [UInt8]? {
        guard kind == .nbit, let element = try? NBit.element(clientData, numbers: numbers), bytes.count == element.size else { return nil }
        return NBit.converted(bytes, element: element, elements: 1)
    }

    /// What a warning calls it: `lz4 (HDF5 filter 32004)`.
    public var label: String { "\(kind.rawValue) (HDF5 filter \(kind.id))" }

    /// The chunk's bytes before this filter; never more than `limit`.
    func decode(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        switch kind {
        case .lz4: return try HDF5LZ4.decode(input, limit: limit)
        case .lzf: return try LZF.decode(input, limit: limit)
        case .szip: return try SzipFilter.decode(input, clientData: clientData, limit: limit)
        case .bitshuffle: return try Bitshuffle.decode(input, clientData: clientData, limit: limit)
        case .scaleoffset: return try ScaleOffset.decode(input, clientData: clientData, limit: limit)
        case .nbit: return try NBit.decode(input, clientData: clientData, numbers: numbers, limit: limit)
        }
    }

    /// The chunk as the filter stores `input` (for synthesised fill chunks).
    func encode(_ input: [UInt8]) throws -> [UInt8] {
        switch kind {
        case .lz4: return try HDF5LZ4.encode(input)
        case .lzf: return LZF.encodeLiterals(input)
        case .szip: return try SzipFilter.encode(input, clientData: clientData)
        case .bitshuffle: return try Bitshuffle.encode(input, clientData: clientData)
        case .nbit: return try NBit.encode(input, clientData: clientData, numbers: numbers)
        case .scaleoffset: throw CodecError.unsupportedCodec(json, encoding: true)
        }
    }
}

/// Big-endian integers of HDF5 plugin framings.
extension [UInt8] {
    func bigEndian(at offset: Int, bytes: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in offset..<(offset + bytes) { value = value << 8 | UInt64(self[index]) }
        return value
    }

    mutating func appendBigEndian(_ value: UInt64, bytes: Int) {
        for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}

/// HDF5's LZ4 filter (32004, H5Zlz4.c): an 8-byte big-endian decoded size, a 4-byte big-endian
/// block size, then per block a 4-byte big-endian stored length and an LZ4 block, or the block's
/// bytes as they are when the stored length equals the block's.
enum HDF5LZ4 {
    static func decode(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        guard input.count >= 12 else { throw CodecError.truncatedChunk(codec: "lz4") }
        let total = input.bigEndian(at: 0, bytes: 8)
        guard total <= UInt64(limit) else { throw CodecError.oversizedChunk(codec: "lz4", chunkBytes: limit) }
        let declaredBlock = Int(input.bigEndian(at: 8, bytes: 4))
        let size = Int(total)
        guard declaredBlock > 0 || size == 0 else { throw CodecError.corruptChunk(codec: "lz4", reason: "a block size of 0") }
        var output: [UInt8] = []
        output.reserveCapacity(size)
        var position = 12
        while output.count < size {
            let block = min(declaredBlock, size - output.count)
            guard position + 4 <= input.count else { throw CodecError.truncatedChunk(codec: "lz4") }
            let stored = Int(input.bigEndian(at: position, bytes: 4))
            position += 4
            guard stored <= input.count - position else { throw CodecError.truncatedChunk(codec: "lz4") }
            if stored == block {
                output += input[position..<(position + stored)]
            } else {
                output += try CompressedStreams.lz4Block(input[position..<(position + stored)], size: block, codec: "lz4")
            }
            position += stored
        }
        return output
    }

    static func encode(_ input: [UInt8]) throws -> [UInt8] {
        // One block: what the filter writes with its default block size for chunks up to 1 GiB.
        var output: [UInt8] = []
        output.appendBigEndian(UInt64(input.count), bytes: 8)
        output.appendBigEndian(UInt64(input.count), bytes: 4)
        guard !input.isEmpty else { return output }
        let block = try CompressedStreams.lz4CompressBlock(input[...], codec: "lz4")
        let stored = block.count < input.count ? block : input
        output.appendBigEndian(UInt64(stored.count), bytes: 4)
        return output + stored
    }
}

/// LZF (h5py's filter 32000, liblzf's format, no header): a control byte below 32 starts a run
/// of that many plus one literal bytes; above, its top three bits are a match length (7: add
/// the next byte) and the rest, with the next byte, the distance back to copy from.
enum LZF {
    static func decode(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        var position = 0
        while position < input.count {
            let control = Int(input[position])
            position += 1
            if control < 32 {
                let run = control + 1
                guard position + run <= input.count else { throw CodecError.truncatedChunk(codec: "lzf") }
                guard output.count + run <= limit else { throw CodecError.oversizedChunk(codec: "lzf", chunkBytes: limit) }
                output += input[position..<(position + run)]
                position += run
            } else {
                var length = control >> 5
                guard position < input.count else { throw CodecError.truncatedChunk(codec: "lzf") }
                if length == 7 {
                    length += Int(input[position])
                    position += 1
                    guard position < input.count else { throw CodecError.truncatedChunk(codec: "lzf") }
                }
                let distance = ((control & 0x1f) << 8) + Int(input[position]) + 1
                position += 1
                length += 2
                guard distance <= output.count else {
                    throw CodecError.corruptChunk(codec: "lzf", reason: "a match \(distance) bytes back, before the chunk's start")
                }
                guard output.count + length <= limit else { throw CodecError.oversizedChunk(codec: "lzf", chunkBytes: limit) }
                // Byte by byte: a match may overlap the bytes it produces.
                var source = output.count - distance
                for _ in 0..<length {
                    output.append(output[source])
                    source += 1
                }
            }
        }
        return output
    }

    /// Valid LZF of literal runs only: a fill chunk needs no compression to be correct.
    static func encodeLiterals(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count + input.count / 32 + 1)
        var start = 0
        while start < input.count {
            let run = min(32, input.count - start)
            output.append(UInt8(run - 1))
            output += input[start..<(start + run)]
            start += run
        }
        return output
    }
}

/// libhdf5's szip filter (4, H5Zszip.c): a 4-byte little-endian decoded size, then the SZIP
/// stream; client data are [options mask, pixels per block, bits per pixel, pixels per scanline].
enum SzipFilter {
    static func parameters(_ data: [UInt32]) throws -> (mask: Int32, pixelsPerBlock: Int32, bitsPerPixel: Int32, pixelsPerScanline: Int32) {
        guard data.count >= 4, data[0...3].allSatisfy({ $0 <= UInt32(Int32.max) }) else {
            throw CodecError.invalidParameters(codec: "szip", reason: "client data \(data), where libhdf5 stores 4 values")
        }
        // libaec divides the scanline by the block before it checks either: a hostile block of 0
        // pixels would stop the process (SIGFPE), not fail the chunk.
        let (pixelsPerBlock, bitsPerPixel, pixelsPerScanline) = (data[1], data[2], data[3])
        guard pixelsPerBlock > 0, pixelsPerBlock % 2 == 0, pixelsPerBlock <= 64, (1...32).contains(bitsPerPixel) || bitsPerPixel == 64,
            pixelsPerScanline >= pixelsPerBlock
        else {
            throw CodecError.invalidParameters(
                codec: "szip", reason: "\(pixelsPerBlock) pixels a block, \(bitsPerPixel) bits a pixel, \(pixelsPerScanline) pixels a scanline")
        }
        return (Int32(data[0]), Int32(pixelsPerBlock), Int32(bitsPerPixel), Int32(pixelsPerScanline))
    }

    static func decode(_ input: [UInt8], clientData: [UInt32], limit: Int) throws -> [UInt8] {
        let parameters = try parameters(clientData)
        guard input.count >= 4 else { throw CodecError.truncatedChunk(codec: "szip") }
        let size = Int(input[0]) | Int(input[1]) << 8 | Int(input[2]) << 16 | Int(input[3]) << 24
        guard size <= limit else { throw CodecError.oversizedChunk(codec: "szip", chunkBytes: limit) }
        var output = [UInt8](repeating: 0, count: size)
        var length = size
        let status = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in
                cszip_decompress(
                    out.baseAddress, &length, source.baseAddress! + 4, source.count - 4, parameters.mask, parameters.bitsPerPixel,
                    parameters.pixelsPerBlock, parameters.pixelsPerScanline)
            }
        }
        switch status {
        case SZ_OK: break
        case SZ_PARAM_ERROR: throw CodecError.invalidParameters(codec: "szip", reason: "libaec refuses \(clientData)")
        case SZ_OUTBUFF_FULL: throw CodecError.oversizedChunk(codec: "szip", chunkBytes: size)
        default: throw CodecError.corruptChunk(codec: "szip", reason: "libaec status \(status)")
        }
        guard length == size else { throw CodecError.truncatedChunk(codec: "szip") }
        return output
    }

    static func encode(_ input: [UInt8], clientData: [UInt32]) throws -> [UInt8] {
        let parameters = try parameters(clientData)
        // SZIP's worst case grows a little past the input; libhdf5 allocates the same margin.
        var output = [UInt8](repeating: 0, count: input.count + input.count / 2 + 1024)
        var length = output.count
        let status = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in
                cszip_compress(
                    out.baseAddress, &length, source.baseAddress, source.count, parameters.mask, parameters.bitsPerPixel,
                    parameters.pixelsPerBlock, parameters.pixelsPerScanline)
            }
        }
        guard status == SZ_OK else { throw CodecError.encodingFailed(codec: "szip", status: Int(status)) }
        var chunk: [UInt8] = [
            UInt8(input.count & 0xff), UInt8((input.count >> 8) & 0xff), UInt8((input.count >> 16) & 0xff), UInt8((input.count >> 24) & 0xff),
        ]
        chunk += output[..<length]
        return chunk
    }
}

/// The bitshuffle filter (32008, bshuf_h5filter.c). Client data: [major, minor, element size,
/// block size in elements (0: the library's default), compression (0 none, 2 LZ4, 3 zstd)].
/// Each block of elements (a multiple of 8) is stored bit-transposed: for each byte of an
/// element and each bit of that byte, one row holding that bit of every element. Compressed,
/// the chunk starts with an 8-byte big-endian decoded size and a 4-byte big-endian block size in
/// bytes, and each block is a 4-byte big-endian length and an LZ4 block or zstd frame. The last
/// elements that make no group of 8 follow the blocks as they are.
enum Bitshuffle {
    static let blockMultiple = 8

    /// bshuf_default_block_size: stable across versions, or old chunks would not decode.
    static func defaultBlockSize(elementSize: Int) -> Int {
        max((8192 / elementSize) / blockMultiple * blockMultiple, 128)
    }

    static func decode(_ input: [UInt8], clientData: [UInt32], limit: Int) throws -> [UInt8] {
        guard clientData.count >= 3, clientData[2] > 0, clientData[2] <= 1 << 16 else {
            throw CodecError.invalidParameters(codec: "bitshuffle", reason: "client data \(clientData) name no element size")
        }
        let elementSize = Int(clientData[2])
        let compression = clientData.count > 4 ? clientData[4] : 0
        var blockElements = clientData.count > 3 && clientData[3] != 0 ? Int(clientData[3]) : defaultBlockSize(elementSize: elementSize)
        var body = input[...]
        var total = input.count
        if compression == 2 || compression == 3 {
            guard input.count >= 12 else { throw CodecError.truncatedChunk(codec: "bitshuffle") }
            let declared = input.bigEndian(at: 0, bytes: 8)
            guard declared <= UInt64(limit) else { throw CodecError.oversizedChunk(codec: "bitshuffle", chunkBytes: limit) }
            total = Int(declared)
            blockElements = Int(input.bigEndian(at: 8, bytes: 4)) / elementSize
            body = input[12...]
        } else if compression != 0 {
            throw CodecError.invalidParameters(codec: "bitshuffle", reason: "compression \(compression) (0 none, 2 LZ4, 3 zstd)")
        }
        guard total <= limit else { throw CodecError.oversizedChunk(codec: "bitshuffle", chunkBytes: limit) }
        guard total % elementSize == 0 else {
            throw CodecError.corruptChunk(codec: "bitshuffle", reason: "\(total) bytes are not whole \(elementSize)-byte elements")
        }
        guard blockElements > 0, blockElements % blockMultiple == 0 else {
            throw CodecError.corruptChunk(codec: "bitshuffle", reason: "a block of \(blockElements) elements, not a multiple of 8")
        }
        let elements = total / elementSize
        var blocks = [Int](repeating: blockElements, count: elements / blockElements)
        let last = (elements % blockElements) / blockMultiple * blockMultiple
        if last > 0 { blocks.append(last) }
        var output: [UInt8] = []
        output.reserveCapacity(total)
        var position = body.startIndex
        for count in blocks {
            let bytes = count * elementSize
            let shuffled: [UInt8]
            if compression == 0 {
                guard body.endIndex - position >= bytes else { throw CodecError.truncatedChunk(codec: "bitshuffle") }
                shuffled = Array(body[position..<(position + bytes)])
                position += bytes
            } else {
                guard body.endIndex - position >= 4 else { throw CodecError.truncatedChunk(codec: "bitshuffle") }
                let stored = Int(Array(body[position..<(position + 4)]).bigEndian(at: 0, bytes: 4))
                position += 4
                guard stored <= body.endIndex - position else { throw CodecError.truncatedChunk(codec: "bitshuffle") }
                let block = body[position..<(position + stored)]
                shuffled =
                    compression == 2
                    ? try CompressedStreams.lz4Block(block, size: bytes, codec: "bitshuffle")
                    : try CompressedStreams.zstdBlock(block, size: bytes, codec: "bitshuffle")
                position += stored
            }
            output += untranspose(shuffled, elements: count, elementSize: elementSize)
        }
        let leftover = (elements % blockMultiple) * elementSize
        guard body.endIndex - position >= leftover else { throw CodecError.truncatedChunk(codec: "bitshuffle") }
        output += body[position..<(position + leftover)]
        return output
    }

    /// Bit `b` of byte `k` of element `e` is bit `e % 8` of byte `e / 8` of row `8k + b`; a row
    /// holds `elements / 8` bytes.
    static func untranspose(_ shuffled: [UInt8], elements: Int, elementSize: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: elements * elementSize)
        let rowBytes = elements / 8
        shuffled.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                for byte in 0..<elementSize {
                    for bit in 0..<8 {
                        let row = (byte * 8 + bit) * rowBytes
                        for group in 0..<rowBytes {
                            let bits = input[row + group]
                            guard bits != 0 else { continue }
                            for member in 0..<8 where bits & (1 << member) != 0 {
                                out[(group * 8 + member) * elementSize + byte] |= 1 << bit
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    static func transpose(_ input: ArraySlice<UInt8>, elements: Int, elementSize: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: elements * elementSize)
        let rowBytes = elements / 8
        let base = input.startIndex
        for element in 0..<elements {
            for byte in 0..<elementSize {
                let value = input[base + element * elementSize + byte]
                guard value != 0 else { continue }
                for bit in 0..<8 where value & (1 << bit) != 0 {
                    output[(byte * 8 + bit) * rowBytes + element / 8] |= 1 << (element % 8)
                }
            }
        }
        return output
    }

    /// The filter's chunk for `input` (fill chunks): one block per the client data's block size.
    static func encode(_ input: [UInt8], clientData: [UInt32]) throws -> [UInt8] {
        guard clientData.count >= 3, clientData[2] > 0 else {
            throw CodecError.invalidParameters(codec: "bitshuffle", reason: "client data \(clientData) name no element size")
        }
        let elementSize = Int(clientData[2])
        let compression = clientData.count > 4 ? clientData[4] : 0
        let blockElements = clientData.count > 3 && clientData[3] != 0 ? Int(clientData[3]) : defaultBlockSize(elementSize: elementSize)
        guard compression == 0 || compression == 2, input.count % elementSize == 0 else {
            throw CodecError.unsupportedCodec(HDF5Filter(kind: .bitshuffle, clientData: clientData).json, encoding: true)
        }
        let elements = input.count / elementSize
        var output: [UInt8] = []
        if compression == 2 {
            output.appendBigEndian(UInt64(input.count), bytes: 8)
            output.appendBigEndian(UInt64(blockElements * elementSize), bytes: 4)
        }
        var start = 0
        var remaining = elements - elements % blockMultiple
        while remaining > 0 {
            let count = min(blockElements, remaining - remaining % blockMultiple)
            let shuffled = transpose(input[(start * elementSize)..<((start + count) * elementSize)], elements: count, elementSize: elementSize)
            if compression == 2 {
                let block = try CompressedStreams.lz4CompressBlock(shuffled[...], codec: "bitshuffle")
                output.appendBigEndian(UInt64(block.count), bytes: 4)
                output += block
            } else {
                output += shuffled
            }
            start += count
            remaining -= count
        }
        output += input[(start * elementSize)...]
        return output
    }
}

/// Reads values of a few bits each, most significant bit first, as libhdf5's n-bit and
/// scale-offset filters pack them.
struct PackedBits {
    let bytes: [UInt8]
    let start: Int
    let codec: String
    var position = 0
    var remaining = 8

    init(_ bytes: [UInt8], from start: Int, codec: String) {
        self.bytes = bytes
        self.start = start
        self.codec = codec
        position = start
    }

    mutating func next(_ width: Int) throws -> UInt64 {
        var value: UInt64 = 0
        var wanted = width
        while wanted > 0 {
            guard position < bytes.count else { throw CodecError.truncatedChunk(codec: codec) }
            let take = min(wanted, remaining)
            let bits = (UInt64(bytes[position]) >> UInt64(remaining - take)) & ((1 << UInt64(take)) - 1)
            value = value << UInt64(take) | bits
            wanted -= take
            remaining -= take
            if remaining == 0 {
                position += 1
                remaining = 8
            }
        }
        return value
    }
}

/// One number of an n-bit element as its datatype declares it.
public enum NBitNumber: Sendable, Equatable {
    case integer(signed: Bool)
    case float(FloatFormat)

    var json: JSON {
        switch self {
        case .integer(let signed): return .object([("signed", .bool(signed))])
        case .float(let format):
            let fields = [format.signPosition, format.exponentPosition, format.exponentSize, format.mantissaPosition, format.mantissaSize]
            return .object([("float_format", .array(fields.map { .int(Int64($0)) } + [.int(Int64(format.exponentBias))]))])
        }
    }

    init?(json: JSON) {
        if case .bool(let signed)? = json["signed"] {
            self = .integer(signed: signed)
            return
        }
        let numbers = (json["float_format"]?.arrayValue ?? []).compactMap { $0.int64Value }.compactMap { Int(exactly: $0) }
        guard numbers.count == 6, numbers[0..<5].allSatisfy({ (0...64).contains($0) }), (0...Int(UInt32.max)).contains(numbers[5]) else { return nil }
        self = .float(
            FloatFormat(
                signPosition: numbers[0], exponentPosition: numbers[1], exponentSize: numbers[2], mantissaPosition: numbers[3],
                mantissaSize: numbers[4], exponentBias: UInt64(numbers[5])))
    }
}

/// Writes values of a few bits each, most significant bit first: what `PackedBits` reads.
struct PackedBitsWriter {
    private var bytes: [UInt8] = []
    private var pending: UInt64 = 0
    private var pendingBits = 0

    /// Appends the low `bits` bits of `value`.
    mutating func append(_ value: UInt64, bits: Int) {
        var remaining = bits
        while remaining > 0 {
            let take = min(remaining, 8 - pendingBits)
            pending = pending << UInt64(take) | ((value >> UInt64(remaining - take)) & ((1 << UInt64(take)) - 1))
            pendingBits += take
            remaining -= take
            if pendingBits == 8 {
                bytes.append(UInt8(pending))
                (pending, pendingBits) = (0, 0)
            }
        }
    }

    /// The bytes written, the last one padded with zero bits.
    func finished() -> [UInt8] {
        pendingBits > 0 ? bytes + [UInt8(pending << UInt64(8 - pendingBits))] : bytes
    }
}

extension [UInt8] {
    /// The `size`-byte number at `offset`, little- or big-endian.
    func element(at offset: Int, size: Int, bigEndian: Bool) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<size { value = value << 8 | UInt64(self[offset + (bigEndian ? index : size - 1 - index)]) }
        return value
    }

    /// Writes the low `size` bytes of `value` at `offset`, little- or big-endian.
    mutating func writeElement(_ value: UInt64, at offset: Int, size: Int, bigEndian: Bool) {
        for index in 0..<size {
            let shift = UInt64(bigEndian ? size - 1 - index : index) * 8
            self[offset + index] = UInt8(truncatingIfNeeded: value >> shift)
        }
    }

    /// Appends the low `size` bytes of `value`, little- or big-endian.
    mutating func appendElement(_ value: UInt64, size: Int, bigEndian: Bool) {
        for index in 0..<size {
            let shift = UInt64(bigEndian ? size - 1 - index : index) * 8
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }
}

/// libhdf5's n-bit filter (5, H5Znbit.c). Client data: [parameter count, stored as is,
/// elements, then the element's description]: class 1 (a number: size, order (0 little-endian),
/// precision, offset), 2 (an array: size, then its base's description), 3 (a compound: size,
/// member count, then each member's offset and description, in member order) or 4 (bytes kept as
/// they are: size). Each number's `precision` significant bits (from bit `offset` of its
/// container) are packed most significant first, kept bytes 8 bits each, element after element
/// in one bit stream. Decoded values are what libhdf5's conversion to the full type gives:
/// integers shifted down and sign-extended, floats of their own format as IEEE 754 numbers.
/// What the client data do not say (signedness, float formats) comes from the datatype, one
/// `NBitNumber` per number in the order the description lists them.
enum NBit {
    /// One part of an element, at `offset` bytes into the enclosing element.
    indirect enum Part {
        case number(offset: Int, Element)
        case bytes(offset: Int, size: Int)
        case array(offset: Int, count: Int, base: Part)
        case compound(offset: Int, size: Int, members: [Part])

        /// What the bit stream holds, in stream order: numbers and bytes kept as they are.
        enum Leaf {
            case number(Element)
            case bytes(Int)
        }

        /// Bytes the part occupies.
        var size: Int {
            switch self {
            case .number(_, let element): element.size
            case .bytes(_, let size), .compound(_, let size, _): size
            case .array(_, let count, let base): count * base.size
            }
        }

        func at(_ offset: Int) -> Part {
            switch self {
            case .number(_, let element): .number(offset: offset, element)
            case .bytes(_, let size): .bytes(offset: offset, size: size)
            case .array(_, let count, let base): .array(offset: offset, count: count, base: base)
            case .compound(_, let size, let members): .compound(offset: offset, size: size, members: members)
            }
        }

        /// Calls `body` with each leaf and its byte offset, for the part placed at `base`, in the
        /// order the filter's bit stream holds them; the one walk decoding, converting and
        /// encoding share.
        func forEachLeaf(at base: Int, _ body: (Int, Leaf) throws -> Void) rethrows {
            switch self {
            case .number(let offset, let element): try body(base + offset, .number(element))
            case .bytes(let offset, let size): try body(base + offset, .bytes(size))
            case .array(let offset, let count, let element):
                for index in 0..<count { try element.forEachLeaf(at: base + offset + index * element.size, body) }
            case .compound(let offset, _, let members):
                for member in members { try member.forEachLeaf(at: base + offset, body) }
            }
        }

        /// `forEachLeaf` over `count` consecutive elements of this part.
        func forEachLeaf(ofElements count: Int, _ body: (Int, Leaf) throws -> Void) rethrows {
            for index in 0..<count { try forEachLeaf(at: index * size, body) }
        }
    }

    /// The element described from client data index 3 on.
    static func element(_ data: [UInt32], numbers: [NBitNumber]) throws -> Part {
        var index = 3
        var next = 0
        var parts = 0
        func word() throws -> Int {
            guard index < data.count else { throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) end early") }
            index += 1
            return Int(data[index - 1])
        }
        func part(depth: Int) throws -> Part {
            parts += 1
            guard depth < 16, parts <= 4096 else { throw CodecError.invalidParameters(codec: "nbit", reason: "a type nested past 16 levels or 4,096 parts") }
            switch try word() {
            case 1:
                let (size, order, precision, offset) = (try word(), try word(), try word(), try word())
                guard next < numbers.count else {
                    throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) describe more numbers than the datatype holds")
                }
                next += 1
                let (signed, format): (Bool, FloatFormat?) =
                    switch numbers[next - 1] {
                    case .integer(let signed): (signed, nil)
                    case .float(let format): (false, format)
                    }
                return .number(
                    offset: 0, try Element(size: size, bigEndian: order != 0, precision: precision, offset: offset, signed: signed, floatFormat: format))
            case 2:
                let size = try word()
                let base = try part(depth: depth + 1)
                guard base.size > 0, size % base.size == 0, size <= 1 << 28 else {
                    throw CodecError.invalidParameters(codec: "nbit", reason: "an array of \(size) bytes of \(base.size)-byte elements")
                }
                return .array(offset: 0, count: size / base.size, base: base)
            case 3:
                let (size, count) = (try word(), try word())
                guard size <= 1 << 28, count <= data.count else {
                    throw CodecError.invalidParameters(codec: "nbit", reason: "a compound of \(size) bytes and \(count) members")
                }
                var members: [Part] = []
                for _ in 0..<count {
                    let offset = try word()
                    let member = try part(depth: depth + 1)
                    guard offset + member.size <= size else {
                        throw CodecError.invalidParameters(codec: "nbit", reason: "a member at byte \(offset) past its \(size)-byte compound")
                    }
                    members.append(member.at(offset))
                }
                return .compound(offset: 0, size: size, members: members)
            case 4:
                let size = try word()
                guard size <= 1 << 28 else { throw CodecError.invalidParameters(codec: "nbit", reason: "\(size) bytes kept as they are") }
                return .bytes(offset: 0, size: size)
            case let kind:
                throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) name type class \(kind)")
            }
        }
        let element = try part(depth: 0)
        guard element.size > 0 else { throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) describe an empty element") }
        return element
    }

    static func decode(_ input: [UInt8], clientData data: [UInt32], numbers: [NBitNumber], limit: Int) throws -> [UInt8] {
        guard data.count >= 5 else { throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data)") }
        let element = try element(data, numbers: numbers)
        let elements = Int(data[2])
        let (total, overflow) = elements.multipliedReportingOverflow(by: element.size)
        guard !overflow, total <= limit else { throw CodecError.oversizedChunk(codec: "nbit", chunkBytes: limit) }
        if data[1] != 0 {
            // Stored as is: whole containers (libhdf5 packs nothing when every number is as
            // wide as its container), converted where their format is not numpy's.
            guard input.count >= total else { throw CodecError.truncatedChunk(codec: "nbit") }
            return converted(Array(input[0..<total]), element: element, elements: elements)
        }
        var reader = PackedBits(input, from: 0, codec: "nbit")
        var output = [UInt8](repeating: 0, count: total)
        try element.forEachLeaf(ofElements: elements) { at, leaf in
            switch leaf {
            case .number(let number):
                let container = try reader.next(number.precision) << UInt64(number.offset)
                output.writeElement(number.native(fromContainer: container), at: at, size: number.size, bigEndian: number.bigEndian)
            case .bytes(let size):
                for index in 0..<size { output[at + index] = UInt8(try reader.next(8)) }
            }
        }
        return output
    }

    /// Whole elements with every number converted from its container to the native type.
    static func converted(_ containers: [UInt8], element: Part, elements: Int) -> [UInt8] {
        var output = containers
        element.forEachLeaf(ofElements: elements) { at, leaf in
            guard case .number(let number) = leaf, !number.isNative else { return }
            let container = containers.element(at: at, size: number.size, bigEndian: number.bigEndian)
            output.writeElement(number.native(fromContainer: container), at: at, size: number.size, bigEndian: number.bigEndian)
        }
        return output
    }

    /// Native values packed as libhdf5's n-bit filter stores them (for synthesised fill chunks).
    static func encode(_ input: [UInt8], clientData data: [UInt32], numbers: [NBitNumber]) throws -> [UInt8] {
        guard data.count >= 5 else { throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data)") }
        let element = try element(data, numbers: numbers)
        let elements = input.count / element.size
        if data[1] != 0 {
            var output = Array(input[0..<(elements * element.size)])
            element.forEachLeaf(ofElements: elements) { at, leaf in
                guard case .number(let number) = leaf else { return }
                let native = input.element(at: at, size: number.size, bigEndian: number.bigEndian)
                output.writeElement(number.container(fromNative: native), at: at, size: number.size, bigEndian: number.bigEndian)
            }
            return output
        }
        var writer = PackedBitsWriter()
        element.forEachLeaf(ofElements: elements) { at, leaf in
            switch leaf {
            case .number(let number):
                let native = input.element(at: at, size: number.size, bigEndian: number.bigEndian)
                writer.append(number.container(fromNative: native) >> UInt64(number.offset), bits: number.precision)
            case .bytes(let size):
                for index in 0..<size { writer.append(UInt64(input[at + index]), bits: 8) }
            }
        }
        return writer.finished()
    }

    /// One n-bit element: its container and where its significant bits sit.
    struct Element {
        let size: Int
        let bigEndian: Bool
        let precision: Int
        let offset: Int
        let signed: Bool
        let floatFormat: FloatFormat?

        init(size: Int, bigEndian: Bool, precision: Int, offset: Int, signed: Bool, floatFormat: FloatFormat?) throws {
            guard (1...8).contains(size), precision >= 1, offset >= 0, precision + offset <= size * 8 else {
                throw CodecError.invalidParameters(codec: "nbit", reason: "a \(size)-byte type of \(precision) bits at offset \(offset)")
            }
            if let format = floatFormat, !([2, 4, 8].contains(size) && format.fits(bits: size * 8)) {
                throw CodecError.invalidParameters(codec: "nbit", reason: "a \(size)-byte float format \(format) that does not fit its container")
            }
            (self.size, self.bigEndian, self.precision, self.offset, self.signed, self.floatFormat) = (size, bigEndian, precision, offset, signed, floatFormat)
        }

        /// The value a container holds, as the native type's bits.
        func native(fromContainer container: UInt64) -> UInt64 {
            guard let format = floatFormat else {
                let mask: UInt64 = precision == 64 ? ~0 : (1 << UInt64(precision)) - 1
                var value = (container >> UInt64(offset)) & mask
                if signed, precision < 64, value & (1 << UInt64(precision - 1)) != 0 { value |= ~0 << UInt64(precision) }
                return value
            }
            let value = format.value(container)
            switch size {
            case 2: return UInt64(Float16(value).bitPattern)
            case 4: return UInt64(Float(value).bitPattern)
            default: return value.bitPattern
            }
        }

        /// The container holding a native value (the inverse of `native(fromContainer:)` for
        /// every value the container can hold).
        func container(fromNative native: UInt64) -> UInt64 {
            guard let format = floatFormat else {
                let mask: UInt64 = precision == 64 ? ~0 : (1 << UInt64(precision)) - 1
                return (native & mask) << UInt64(offset)
            }
            let value: Double
            switch size {
            case 2: value = Double(Float16(bitPattern: UInt16(truncatingIfNeeded: native)))
            case 4: value = Double(Float(bitPattern: UInt32(truncatingIfNeeded: native)))
            default: value = Double(bitPattern: native)
            }
            return format.bits(value)
        }

        /// Whether the container already holds the native value (a full-width integer, an IEEE float).
        var isNative: Bool {
            offset == 0 && precision == size * 8 && (floatFormat == nil || floatFormat == FloatFormat.ieee(bytes: size))
        }
    }
}

/// libhdf5's scale-offset filter (6, H5Zscaleoffset.c). Client data: [scale type (0 decimal
/// scale of floats, 2 integers), scale factor, elements, class (0 integer, 1 float), size,
/// signed (unused: sums wrap alike), order (0 little-endian), fill value defined, fill value bytes from index 8]. A chunk
/// is a 21-byte header (4-byte minimum bits, the minimum's size, the minimum) and each element's
/// `minbits` bits, most significant first; a value of all ones is the fill value.
enum ScaleOffset {
    static let headerBytes = 21

    static func decode(_ input: [UInt8], clientData data: [UInt32], limit: Int) throws -> [UInt8] {
        guard data.count >= 8 else { throw CodecError.invalidParameters(codec: "scaleoffset", reason: "client data \(data)") }
        let scaleType = data[0]
        let elements = Int(data[2])
        let isFloat = data[3] == 1
        let size = Int(data[4])
        let bigEndian = data[6] != 0
        let fillDefined = data[7] == 1
        guard [1, 2, 4, 8].contains(size), !isFloat || (scaleType == 0 && (size == 4 || size == 8)), isFloat || scaleType == 2 else {
            throw CodecError.invalidParameters(codec: "scaleoffset", reason: "scale type \(scaleType) of a \(size)-byte \(isFloat ? "float" : "integer")")
        }
        guard elements.multipliedReportingOverflow(by: size).partialValue <= limit, elements <= limit else {
            throw CodecError.oversizedChunk(codec: "scaleoffset", chunkBytes: limit)
        }
        guard input.count >= headerBytes else { throw CodecError.truncatedChunk(codec: "scaleoffset") }
        let minbits = Int(input[0]) | Int(input[1]) << 8 | Int(input[2]) << 16 | Int(input[3]) << 24
        guard minbits <= size * 8 else {
            throw CodecError.corruptChunk(codec: "scaleoffset", reason: "\(minbits) bits per value of a \(size)-byte type")
        }
        let minimumBytes = min(Int(input[4]), 8)
        var minimum: UInt64 = 0
        for index in 0..<minimumBytes { minimum |= UInt64(input[5 + index]) << UInt64(index * 8) }
        let width = UInt64(size * 8)
        let mask: UInt64 = width == 64 ? ~0 : (1 << width) - 1
        if minbits == size * 8 {
            // Stored at full precision, in the machine's order when written (little-endian here).
            guard input.count - headerBytes >= elements * size else { throw CodecError.truncatedChunk(codec: "scaleoffset") }
            var output = Array(input[headerBytes..<(headerBytes + elements * size)])
            if bigEndian { for start in stride(from: 0, to: output.count, by: size) { output[start..<(start + size)].reverse() } }
            return output
        }
        // The fill value: client data words, least significant byte first, from index 8.
        var fill: UInt64 = 0
        for index in 0..<size {
            let word = 8 + index / 4
            guard word < data.count else { break }
            fill |= UInt64((data[word] >> UInt32((index % 4) * 8)) & 0xff) << UInt64(index * 8)
        }
        let allOnes: UInt64 = minbits == 64 ? ~0 : (1 << UInt64(minbits)) - 1
        var reader = PackedBits(input, from: headerBytes, codec: "scaleoffset")
        var output: [UInt8] = []
        output.reserveCapacity(elements * size)
        for _ in 0..<elements {
            let stored = minbits == 0 ? 0 : try reader.next(minbits)
            var value: UInt64
            if fillDefined && stored == allOnes {
                value = fill
            } else if !isFloat {
                // Two's complement: the sum wraps at the type's width, signed or not.
                value = (stored &+ minimum) & mask
            } else if size == 4 {
                let scale = Float.pow10(Int(Int32(bitPattern: data[1])))
                let result = Float(Int32(truncatingIfNeeded: stored)) / scale + Float(bitPattern: UInt32(truncatingIfNeeded: minimum))
                value = UInt64(result.bitPattern)
            } else {
                let scale = Double.pow10(Int(Int32(bitPattern: data[1])))
                let result = Double(Int64(bitPattern: stored)) / scale + Double(bitPattern: minimum)
                value = result.bitPattern
            }
            output.appendElement(value, size: size, bigEndian: bigEndian)
        }
        return output
    }
}

extension BinaryFloatingPoint {
    /// 10^exponent as libhdf5 computes it (powf / pow of 10 and the scale factor).
    static func pow10(_ exponent: Int) -> Self {
        Self(Foundation.pow(10.0, Double(exponent)))
    }
}
