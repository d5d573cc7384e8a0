import ByteSource
import VirtualZarr

/// libFuzzer entry point for the chunk decoders: the first bytes choose a codec and its
/// parameters (the client data a hostile file could declare), the rest is the stored chunk.
/// Every input must decode or fail with a typed `CodecError`: never crash, hang, or produce
/// more than the chunk's size (or, for steps that only rearrange bytes, the input's).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count >= 8 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: count))
    var header = input[0..<8].makeIterator()
    func next() -> UInt32 { UInt32(header.next() ?? 0) }
    let choice = next()
    let elementSize = Int([1, 2, 4, 8][Int(next() % 4)])
    let elements = Int(next()) << 4 | Int(next() & 0x0f)  // up to 4,095 elements
    let parameter = next()
    let extra = next()
    let decodedSize = elements * elementSize
    let stored = Array(input[8...])
    let precision = UInt32(1 + Int(parameter) % (elementSize * 8))
    let offset = UInt32(Int(extra) % (elementSize * 8 - Int(precision) + 1))
    let floatFormat = FloatFormat(
        signPosition: Int(extra % 64), exponentPosition: Int(parameter % 64), exponentSize: Int(1 + extra % 16),
        mantissaPosition: Int(parameter % 8), mantissaSize: Int(parameter % 53), exponentBias: UInt64(extra))
    let codec: Codec
    switch choice % 15 {
    case 0: codec = .zlib(level: 4)
    case 1: codec = .shuffle(elementSize: elementSize)
    case 2: codec = .fletcher32
    case 3: codec = .zstd(level: 3)
    case 4: codec = .bz2(level: 9)
    case 5: codec = .blosc(Codec.Blosc(cname: ["lz4", "zstd", "zlib", "blosclz"][Int(parameter % 4)], clevel: 5, shuffle: Int(extra % 3)))
    case 6: codec = .hdf5(HDF5Filter(kind: .lz4, clientData: [parameter]))
    case 7: codec = .hdf5(HDF5Filter(kind: .lzf, clientData: []))
    case 8:
        // szip: options mask, pixels per block, bits per pixel, pixels per scanline.
        codec = .hdf5(HDF5Filter(kind: .szip, clientData: [parameter, extra % 64, UInt32(elementSize * 8), UInt32(elements)]))
    case 9:
        // bitshuffle: version, block-size version, element size, block size, compression.
        codec = .hdf5(HDF5Filter(kind: .bitshuffle, clientData: [0, 4, UInt32(elementSize), parameter, extra % 4]))
    case 10:
        // scale-offset: integers, then floats (D-scale).
        let isFloat = elementSize >= 4 && extra & 1 == 1
        codec = .hdf5(
            HDF5Filter(
                kind: .scaleoffset,
                clientData: [
                    isFloat ? 0 : 2, parameter, UInt32(elements), isFloat ? 1 : 0, UInt32(elementSize), 1, extra & 2, extra & 4 == 0 ? 0 : 1, extra, parameter,
                ]))
    case 11:
        codec = .hdf5(
            HDF5Filter(
                kind: .nbit, clientData: [8, extra & 8, UInt32(elements), 1, UInt32(elementSize), extra & 2, precision, offset],
                numbers: [.integer(signed: extra & 16 != 0)]))
    case 12:
        codec = .hdf5(
            HDF5Filter(
                kind: .nbit, clientData: [8, extra & 8, UInt32(elements), 1, UInt32(elementSize), extra & 2, precision, offset],
                numbers: [.float(floatFormat)]))
    case 13:
        // n-bit of arrays and compounds: the description is the chunk's first `parameter % 64`
        // bytes, one word each, and the numbers alternate between integers and floats.
        let words = stored.prefix(Int(parameter % 64)).map { UInt32($0) }
        let numbers: [NBitNumber] = (0..<16).map { $0 % 2 == 0 ? .integer(signed: $0 % 4 == 0) : .float(floatFormat) }
        codec = .hdf5(HDF5Filter(kind: .nbit, clientData: [UInt32(words.count + 3), extra & 8, UInt32(elements)] + words, numbers: numbers))
    default:
        // A pipeline as HDF5 writes them: shuffle, then a compressor.
        do {
            let decoded = try ChunkDecoder.decode(stored, pipeline: [.shuffle(elementSize: elementSize), .zlib(level: 4)], decodedSize: decodedSize)
            if decoded.count != decodedSize { fatalError("shuffle+zlib decoded \(decoded.count) bytes, not \(decodedSize)") }
        } catch {}
        return 0
    }
    do {
        let decoded = try ChunkDecoder.decode(stored, pipeline: [codec], decodedSize: decodedSize)
        // A decompressor stops at the chunk's size (plus a Fletcher-32 checksum); a step that
        // rearranges bytes (shuffle) keeps its input's length, and callers check the final size.
        // fatalError, not precondition: its message survives -O.
        if decoded.count > max(decodedSize + 4, stored.count) {
            fatalError("\(codec) decoded \(decoded.count) bytes for a \(decodedSize)-byte chunk from \(stored.count) stored")
        }
    } catch {
        // A typed CodecError: the expected outcome for most inputs.
    }
    return 0
}
