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
    /// n-bit: whether the integers are signed (the client data do not say; the datatype does),
    /// so decoded values are sign-extended as libhdf5's conversion to the full type does.
    public var signedIntegers: Bool
    /// n-bit: the floats' format within their container (the datatype's, not the client data's);
    /// decoded values are IEEE 754 numbers of the container's size, as libhdf5 converts them.
    public var floatFormat: FloatFormat?

    public init(kind: Kind, clientData: [UInt32], signedIntegers: Bool = false, floatFormat: FloatFormat? = nil) {
        self.kind = kind
        self.clientData = clientData
        self.signedIntegers = signedIntegers
        self.floatFormat = floatFormat
    }

    /// The configuration's id in manifests and caches; no Zarr reader knows it, and no store
    /// zarrmount writes names it (such arrays are left out, or served decoded).
    static let jsonID = "zarrmount.hdf5_filter"

    var json: JSON {
        var members: [(String, JSON)] = [
            ("id", .string(Self.jsonID)), ("filter", .string(kind.rawValue)), ("filter_id", .int(Int64(kind.id))),
            ("client_data", .array(clientData.map { .int(Int64($0)) })),
        ]
        if signedIntegers { members.append(("signed", .bool(true))) }
        if let format = floatFormat {
            let fields = [format.signPosition, format.exponentPosition, format.exponentSize, format.mantissaPosition, format.mantissaSize]
            members.append(("float_format", .array(fields.map { .int(Int64($0)) } + [.int(Int64(format.exponentBias))])))
        }
        return .object(members)
    }

    init?(json: JSON) {
        guard let name = json["filter"]?.stringValue, let kind = Kind(rawValue: name) else { return nil }
        var data: [UInt32] = []
        for value in json["client_data"]?.arrayValue ?? [] {
            guard let number = value.int64Value, let word = UInt32(exactly: number) else { return nil }
            data.append(word)
        }
        var format: FloatFormat?
        if let fields = json["float_format"]?.arrayValue {
            let numbers = fields.compactMap { $0.int64Value }.compactMap { Int(exactly: $0) }
            guard numbers.count == 6, numbers[0..<5].allSatisfy({ (0...64).contains($0) }), (0...Int(UInt32.max)).contains(numbers[5]) else { return nil }
            format = FloatFormat(
                signPosition: numbers[0], exponentPosition: numbers[1], exponentSize: numbers[2], mantissaPosition: numbers[3],
                mantissaSize: numbers[4], exponentBias: UInt64(numbers[5]))
        }
        self.init(kind: kind, clientData: data, signedIntegers: json["signed"] == .bool(true), floatFormat: format)
    }

    /// A fill value stored in the dataset's type (one container), as this filter's decoded chunks
    /// hold it; nil when the filter does not convert values (every filter but n-bit).
    public func nativeFill(_ bytes: [UInt8]) -> [UInt8]? {
        guard kind == .nbit, clientData.count >= 8,
            let element = try? NBit.Element(
                size: Int(clientData[4]), bigEndian: clientData[5] != 0, precision: Int(clientData[6]), offset: Int(clientData[7]),
                signed: signedIntegers, floatFormat: floatFormat),
            bytes.count == element.size
        else { return nil }
        return element.converted(containers: bytes[...])
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
        case .nbit: return try NBit.decode(input, clientData: clientData, signed: signedIntegers, floatFormat: floatFormat, limit: limit)
        }
    }

    /// The chunk as the filter stores `input` (for synthesised fill chunks).
    func encode(_ input: [UInt8]) throws -> [UInt8] {
        switch kind {
        case .lz4: return try HDF5LZ4.encode(input)
        case .lzf: return LZF.encodeLiterals(input)
        case .szip: return try SzipFilter.encode(input, clientData: clientData)
        case .bitshuffle: return try Bitshuffle.encode(input, clientData: clientData)
        case .nbit: return try NBit.encode(input, clientData: clientData, signed: signedIntegers, floatFormat: floatFormat)
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

extension [UInt8] {
    /// Appends the low `size` bytes of `value`, little- or big-endian.
    mutating func appendElement(_ value: UInt64, size: Int, bigEndian: Bool) {
        for index in 0..<size {
            let shift = UInt64(bigEndian ? size - 1 - index : index) * 8
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }
}

/// libhdf5's n-bit filter (5, H5Znbit.c), for integer and float types: client data [parameter
/// count, stored as is, elements, class (1: atomic), size, order (0 little-endian), precision,
/// offset]; each element's `precision` significant bits (those from bit `offset` of its container)
/// are packed, most significant first. Decoded values are what libhdf5's conversion to the full
/// type gives: integers shifted down and sign-extended, floats in `floatFormat` as IEEE 754 numbers.
enum NBit {
    static func decode(_ input: [UInt8], clientData data: [UInt32], signed: Bool, floatFormat: FloatFormat?, limit: Int) throws -> [UInt8] {
        guard data.count >= 8, data[3] == 1 else {
            throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) describe no atomic type")
        }
        let elements = Int(data[2])
        let element = try Element(
            size: Int(data[4]), bigEndian: data[5] != 0, precision: Int(data[6]), offset: Int(data[7]), signed: signed, floatFormat: floatFormat)
        guard elements.multipliedReportingOverflow(by: element.size).partialValue <= limit, elements <= limit else {
            throw CodecError.oversizedChunk(codec: "nbit", chunkBytes: limit)
        }
        if data[1] != 0 {
            // Stored as is: full containers (libhdf5 packs nothing when precision is the size).
            guard input.count >= elements * element.size else { throw CodecError.truncatedChunk(codec: "nbit") }
            return element.converted(containers: input[0..<(elements * element.size)])
        }
        var reader = PackedBits(input, from: 0, codec: "nbit")
        var output: [UInt8] = []
        output.reserveCapacity(elements * element.size)
        for _ in 0..<elements {
            output.appendElement(
                element.native(fromContainer: try reader.next(element.precision) << UInt64(element.offset)), size: element.size, bigEndian: element.bigEndian)
        }
        return output
    }

    /// Native values packed as libhdf5's n-bit filter stores them (for synthesised fill chunks).
    static func encode(_ input: [UInt8], clientData data: [UInt32], signed: Bool, floatFormat: FloatFormat?) throws -> [UInt8] {
        guard data.count >= 8, data[3] == 1 else {
            throw CodecError.invalidParameters(codec: "nbit", reason: "client data \(data) describe no atomic type")
        }
        let element = try Element(
            size: Int(data[4]), bigEndian: data[5] != 0, precision: Int(data[6]), offset: Int(data[7]), signed: signed, floatFormat: floatFormat)
        var containers: [UInt64] = []
        var start = 0
        while start + element.size <= input.count {
            var native: UInt64 = 0
            for index in 0..<element.size {
                native = native << 8 | UInt64(input[start + (element.bigEndian ? index : element.size - 1 - index)])
            }
            containers.append(element.container(fromNative: native))
            start += element.size
        }
        var output: [UInt8] = []
        if data[1] != 0 {
            for container in containers { output.appendElement(container, size: element.size, bigEndian: element.bigEndian) }
            return output
        }
        var pending: UInt64 = 0
        var pendingBits = 0
        let mask: UInt64 = element.precision == 64 ? ~0 : (1 << UInt64(element.precision)) - 1
        for container in containers {
            var value = (container >> UInt64(element.offset)) & mask
            var remaining = element.precision
            while remaining > 0 {
                let take = min(remaining, 8 - pendingBits)
                let bits = (value >> UInt64(remaining - take)) & ((1 << UInt64(take)) - 1)
                pending = pending << UInt64(take) | bits
                pendingBits += take
                remaining -= take
                value &= remaining == 0 ? 0 : (1 << UInt64(remaining)) - 1
                if pendingBits == 8 {
                    output.append(UInt8(pending))
                    (pending, pendingBits) = (0, 0)
                }
            }
        }
        if pendingBits > 0 { output.append(UInt8(pending << UInt64(8 - pendingBits))) }
        return output
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

        /// Whole containers, each converted to the native type.
        func converted(containers: ArraySlice<UInt8>) -> [UInt8] {
            let isNative =
                floatFormat.map { $0 == FloatFormat.ieee(bytes: size) && offset == 0 && precision == size * 8 } ?? (offset == 0 && precision == size * 8)
            if isNative { return Array(containers) }
            var output: [UInt8] = []
            output.reserveCapacity(containers.count)
            var start = containers.startIndex
            while start + size <= containers.endIndex {
                var container: UInt64 = 0
                for index in 0..<size {
                    let byte = containers[start + (bigEndian ? index : size - 1 - index)]
                    container = container << 8 | UInt64(byte)
                }
                output.appendElement(native(fromContainer: container), size: size, bigEndian: bigEndian)
                start += size
            }
            return output
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
