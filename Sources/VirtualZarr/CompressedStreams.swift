import CBlosc
import CBzip2
import CLZ4
import CZstd

/// The general-purpose compressors behind HDF5's plugin filters (zstd, bzip2, Blosc, LZ4),
/// each bounded: a stream never decodes past `limit` bytes, and a stream that would is refused
/// with `CodecError.oversizedChunk` before the excess is held.
enum CompressedStreams {
    // MARK: zstd

    static func zstdDecompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        // One byte past the limit tells a stream that fills the limit from one that would pass it.
        var output = [UInt8](repeating: 0, count: limit + 1)
        let result = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in ZSTD_decompress(out.baseAddress, out.count, source.baseAddress, source.count) }
        }
        if ZSTD_isError(result) != 0 {
            if czstd_error_is_destination_full(result) != 0 { throw CodecError.oversizedChunk(codec: "zstd", chunkBytes: limit) }
            if czstd_error_is_truncated(result) != 0 { throw CodecError.truncatedChunk(codec: "zstd") }
            throw CodecError.corruptChunk(codec: "zstd", reason: String(cString: ZSTD_getErrorName(result)))
        }
        guard result <= limit else { throw CodecError.oversizedChunk(codec: "zstd", chunkBytes: limit) }
        output.removeSubrange(result...)
        return output
    }

    static func zstdCompress(_ input: [UInt8], level: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let result = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in ZSTD_compress(out.baseAddress, out.count, source.baseAddress, source.count, Int32(level)) }
        }
        guard ZSTD_isError(result) == 0 else { throw CodecError.encodingFailed(codec: "zstd", status: Int(bitPattern: UInt(result))) }
        output.removeSubrange(result...)
        return output
    }

    /// One zstd frame of exactly `size` bytes (bitshuffle's blocks).
    static func zstdBlock(_ input: ArraySlice<UInt8>, size: Int, codec: String) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: size)
        let result = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in ZSTD_decompress(out.baseAddress, out.count, source.baseAddress, source.count) }
        }
        if ZSTD_isError(result) != 0 {
            if czstd_error_is_destination_full(result) != 0 { throw CodecError.oversizedChunk(codec: codec, chunkBytes: size) }
            if czstd_error_is_truncated(result) != 0 { throw CodecError.truncatedChunk(codec: codec) }
            throw CodecError.corruptChunk(codec: codec, reason: "zstd: " + String(cString: ZSTD_getErrorName(result)))
        }
        guard result == size else { throw CodecError.corruptChunk(codec: codec, reason: "a zstd block decodes to \(result) bytes, not \(size)") }
        return output
    }

    // MARK: bzip2

    static func bz2Decompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: limit + 1)
        var length = output.count
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in cbzip2_decompress(out.baseAddress, &length, source.baseAddress, source.count) }
        }
        switch status {
        case BZ_OK: break
        case BZ_OUTBUFF_FULL: throw CodecError.oversizedChunk(codec: "bz2", chunkBytes: limit)
        case BZ_UNEXPECTED_EOF: throw CodecError.truncatedChunk(codec: "bz2")
        case BZ_DATA_ERROR_MAGIC: throw CodecError.corruptChunk(codec: "bz2", reason: "not a bzip2 stream")
        case BZ_DATA_ERROR: throw CodecError.corruptChunk(codec: "bz2", reason: "the stream's checks fail")
        default: throw CodecError.corruptChunk(codec: "bz2", reason: "libbz2 status \(status)")
        }
        guard length <= limit else { throw CodecError.oversizedChunk(codec: "bz2", chunkBytes: limit) }
        output.removeSubrange(length...)
        return output
    }

    static func bz2Compress(_ input: [UInt8], level: Int) throws -> [UInt8] {
        // bzip2's documented worst case: 1% and 600 bytes more than the input.
        var output = [UInt8](repeating: 0, count: input.count + input.count / 100 + 601)
        var length = output.count
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                cbzip2_compress(out.baseAddress, &length, source.baseAddress, source.count, Int32(min(max(level, 1), 9)))
            }
        }
        guard status == BZ_OK else { throw CodecError.encodingFailed(codec: "bz2", status: Int(status)) }
        output.removeSubrange(length...)
        return output
    }

    // MARK: Blosc

    static func bloscDecompress(_ input: [UInt8], limit: Int) throws -> [UInt8] {
        // A Blosc header is 16 bytes; its stored size (bytes 12..15) longer than the chunk means
        // the chunk was cut short.
        if input.count >= 16 {
            let claimed = Int(input[12]) | Int(input[13]) << 8 | Int(input[14]) << 16 | Int(input[15]) << 24
            if claimed > input.count { throw CodecError.truncatedChunk(codec: "blosc") }
        }
        var decodedBytes = 0
        let valid = input.withUnsafeBytes { source in blosc_cbuffer_validate(source.baseAddress, source.count, &decodedBytes) }
        guard valid == 0 else {
            throw input.count < 16 ? CodecError.truncatedChunk(codec: "blosc") : CodecError.corruptChunk(codec: "blosc", reason: "not a Blosc buffer")
        }
        guard decodedBytes <= limit else { throw CodecError.oversizedChunk(codec: "blosc", chunkBytes: limit) }
        var output = [UInt8](repeating: 0, count: decodedBytes)
        guard decodedBytes > 0 else { return output }
        let produced = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in blosc_decompress_ctx(source.baseAddress, out.baseAddress, out.count, 1) }
        }
        guard produced == decodedBytes else {
            throw CodecError.corruptChunk(codec: "blosc", reason: "c-blosc status \(produced) decoding \(decodedBytes) bytes")
        }
        return output
    }

    static func bloscCompress(_ input: [UInt8], _ settings: Codec.Blosc) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: input.count + 16)
        let produced = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in
                blosc_compress_ctx(
                    Int32(settings.clevel), Int32(settings.shuffle), 1, source.count, source.baseAddress, out.baseAddress, out.count,
                    settings.cname, settings.blocksize, 1)
            }
        }
        guard produced > 0 else { throw CodecError.encodingFailed(codec: "blosc", status: Int(produced)) }
        output.removeSubrange(Int(produced)...)
        return output
    }

    // MARK: LZ4 blocks

    /// One LZ4 block that decodes to exactly `size` bytes (HDF5's lz4 and bitshuffle framings).
    static func lz4Block(_ input: ArraySlice<UInt8>, size: Int, codec: String) throws -> [UInt8] {
        guard input.count <= Int(Int32.max), size <= Int(Int32.max) else {
            throw CodecError.corruptChunk(codec: codec, reason: "an LZ4 block over 2 GiB")
        }
        var output = [UInt8](repeating: 0, count: size)
        let produced = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in clz4_decompress(source.baseAddress, out.baseAddress, Int32(source.count), Int32(size)) }
        }
        guard produced == size else {
            throw CodecError.corruptChunk(codec: codec, reason: produced < 0 ? "not an LZ4 block" : "an LZ4 block decodes to \(produced) bytes, not \(size)")
        }
        return output
    }

    static func lz4CompressBlock(_ input: ArraySlice<UInt8>, codec: String) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(LZ4_compressBound(Int32(input.count))))
        let produced = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in clz4_compress(source.baseAddress, out.baseAddress, Int32(source.count), Int32(out.count)) }
        }
        guard produced > 0 || input.isEmpty else { throw CodecError.encodingFailed(codec: codec, status: Int(produced)) }
        output.removeSubrange(Int(produced)...)
        return output
    }
}

/// zstd frames made and read with one pair of contexts kept for many frames: creating a context
/// per frame costs more than compressing a small one (the manifest file's blobs).
public final class ZstdFrames {
    private var compressionContext: OpaquePointer?
    private var decompressionContext: OpaquePointer?

    public init() {}

    deinit {
        ZSTD_freeCCtx(compressionContext)
        ZSTD_freeDCtx(decompressionContext)
    }

    /// `raw` as one frame (which declares its content size), or nil when zstd fails.
    public func compress(_ raw: [UInt8], level: Int32) -> [UInt8]? {
        if compressionContext == nil { compressionContext = ZSTD_createCCtx() }
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(raw.count))
        let written = output.withUnsafeMutableBytes { out in
            raw.withUnsafeBytes { source in
                ZSTD_compressCCtx(compressionContext, out.baseAddress, out.count, source.baseAddress, source.count, level)
            }
        }
        guard ZSTD_isError(written) == 0 else { return nil }
        output.removeSubrange(written...)
        return output
    }

    /// A zstd stream (one or more frames, declared sizes or not) decompressed, refusing to hold
    /// more than `limit` bytes of output (`CodecError.oversizedChunk`).
    public static func decompress(_ stream: [UInt8], limit: Int) throws -> [UInt8] {
        try CompressedStreams.zstdDecompress(stream, limit: limit)
    }

    /// The content size `frame` declares, or nil when it declares none (or is no frame).
    public static func declaredSize(_ frame: ArraySlice<UInt8>) -> UInt64? {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        return size >= ZSTD_CONTENTSIZE_ERROR ? nil : size
    }

    /// `frame` decompressed into exactly `size` bytes, or nil when it does not decode to that.
    public func decompress(_ frame: ArraySlice<UInt8>, size: Int) -> [UInt8]? {
        if decompressionContext == nil { decompressionContext = ZSTD_createDCtx() }
        var output = [UInt8](repeating: 0, count: size)
        let result = output.withUnsafeMutableBytes { out in
            frame.withUnsafeBytes { source in
                ZSTD_decompressDCtx(decompressionContext, out.baseAddress, out.count, source.baseAddress, source.count)
            }
        }
        return ZSTD_isError(result) == 0 && result == size ? output : nil
    }
}
