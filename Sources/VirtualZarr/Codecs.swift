import CZlib
import JSONValue

/// A step of a chunk's encoding pipeline, in the order the writer applied it.
public enum Codec: Sendable, Equatable {
    case zlib(level: Int)
    case shuffle(elementSize: Int)
    case fletcher32
    /// Zstandard frames (HDF5 filter 32015), numcodecs `zstd`.
    case zstd(level: Int)
    /// A bzip2 stream (HDF5 filter 307), numcodecs `bz2`.
    case bz2(level: Int)
    /// A Blosc 1 buffer (HDF5 filter 32001), numcodecs `blosc`: the buffer's header says how to
    /// decode it; the settings are the writer's, for readers that re-encode.
    case blosc(Blosc)
    /// An HDF5 filter no Zarr reader decodes (numcodecs has no codec for it or for its framing):
    /// zarrmount decodes it, so the decoded view serves it, and a stored store leaves it out.
    case hdf5(HDF5Filter)
    /// Any other numcodecs codec, as its configuration (from imported references); passed to
    /// readers untouched, never decoded here.
    case other(JSON)

    /// numcodecs' Blosc settings, as hdf5-blosc's client data gives them.
    public struct Blosc: Sendable, Equatable {
        /// blosclz, lz4, lz4hc, snappy, zlib or zstd.
        public var cname: String
        public var clevel: Int
        /// 0 none, 1 byte shuffle, 2 bit shuffle (numcodecs' and hdf5-blosc's codes agree).
        public var shuffle: Int
        /// 0: Blosc chooses.
        public var blocksize: Int

        public init(cname: String, clevel: Int, shuffle: Int, blocksize: Int = 0) {
            self.cname = cname
            self.clevel = clevel
            self.shuffle = shuffle
            self.blocksize = blocksize
        }

        /// hdf5-blosc's compressor codes (cd_values[6]), in its order.
        public static let compressorNames = ["blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd"]

        /// hdf5-blosc's client data: [filter revision, Blosc format, type size, chunk bytes,
        /// clevel, shuffle, compressor code]; the last three are optional (5, 1, blosclz).
        public init(hdf5ClientData data: [UInt32]) {
            let code = data.count > 6 ? Int(data[6]) : 0
            self.init(
                cname: code < Self.compressorNames.count ? Self.compressorNames[code] : "blosclz",
                clevel: data.count > 4 ? Int(data[4]) : 5, shuffle: data.count > 5 ? Int(data[5]) : 1)
        }
    }

    /// Zarr v2 / numcodecs configuration (what `init(numcodecs:)` reads back).
    public var numcodecsJSON: JSON {
        switch self {
        case .zlib(let level): return .object([("id", .string("zlib")), ("level", .int(Int64(level)))])
        case .shuffle(let size): return .object([("id", .string("shuffle")), ("elementsize", .int(Int64(size)))])
        case .fletcher32: return .object([("id", .string("fletcher32"))])
        case .zstd(let level): return .object([("id", .string("zstd")), ("level", .int(Int64(level)))])
        case .bz2(let level): return .object([("id", .string("bz2")), ("level", .int(Int64(level)))])
        case .blosc(let settings):
            return .object([
                ("id", .string("blosc")), ("cname", .string(settings.cname)), ("clevel", .int(Int64(settings.clevel))),
                ("shuffle", .int(Int64(settings.shuffle))), ("blocksize", .int(Int64(settings.blocksize))),
            ])
        case .hdf5(let filter): return filter.json
        case .other(let configuration): return configuration
        }
    }

    public init(numcodecs json: JSON) {
        func integer(_ key: String, _ fallback: Int) -> Int { Int(json[key]?.int64Value ?? Int64(fallback)) }
        switch json["id"]?.stringValue {
        case "zlib": self = .zlib(level: integer("level", 1))
        case "shuffle": self = .shuffle(elementSize: integer("elementsize", 4))
        case "fletcher32": self = .fletcher32
        case "zstd": self = .zstd(level: integer("level", 0))
        case "bz2": self = .bz2(level: integer("level", 1))
        case "blosc":
            self = .blosc(
                Blosc(
                    cname: json["cname"]?.stringValue ?? "lz4", clevel: integer("clevel", 5), shuffle: integer("shuffle", 1),
                    blocksize: integer("blocksize", 0)))
        case HDF5Filter.jsonID: self = HDF5Filter(json: json).map(Codec.hdf5) ?? .other(json)
        default: self = .other(json)
        }
    }

    /// Zarr v3 codec entry (numcodecs' registered names).
    var zarr3JSON: JSON {
        let configuration = numcodecsJSON
        let id = configuration["id"]?.stringValue ?? "unknown"
        return .object([
            ("name", .string(id.hasPrefix("numcodecs.") || id.hasPrefix("zarrmount.") ? id : "numcodecs." + id)),
            ("configuration", .object((configuration.objectValue ?? []).filter { $0.0 != "id" })),
        ])
    }

    /// The name a message gives the codec: numcodecs' id, or the HDF5 filter's name.
    public var name: String {
        if case .hdf5(let filter) = self { return filter.kind.rawValue }
        return numcodecsJSON["id"]?.stringValue ?? "unknown"
    }

    /// A pipeline as a message names it, in the order the writer applied it: "shuffle, zlib
    /// level 4", or "no compression or filters".
    public static func describe(_ pipeline: [Codec]) -> String {
        guard !pipeline.isEmpty else { return "no compression or filters" }
        return pipeline.map { codec in
            switch codec {
            case .zlib(let level), .zstd(let level), .bz2(let level): "\(codec.name) level \(level)"
            case .blosc(let settings): "blosc (\(settings.cname) level \(settings.clevel))"
            default: codec.name
            }
        }.joined(separator: ", ")
    }
}

/// Why chunk bytes could not be encoded, decoded or unpacked, with what is known of it.
public enum CodecError: Error, CustomStringConvertible, Sendable, Equatable {
    /// zlib refused the stream; `reason` is zlib's own message (`incorrect header check`).
    case corruptStream(reason: String)
    case truncatedStream
    /// The stream decodes past the chunk's size: corrupt or hostile, refused before it is held.
    case oversizedStream(chunkBytes: Int)
    /// zlib itself failed (`operation`: initialise, compress) with `status`.
    case zlibFailed(operation: String, status: Int32)
    case checksumMissing
    case checksumMismatch
    /// A shuffled buffer that is not a whole number of elements, which numcodecs refuses.
    case partialShuffle(bytes: Int, elementSize: Int)
    /// A codec zarrmount does not implement, given as its numcodecs configuration.
    case unsupportedCodec(JSON, encoding: Bool)
    /// `codec`'s decoder refused the chunk (corrupt, mislabelled or hostile); `reason` is its own.
    case corruptChunk(codec: String, reason: String)
    /// The chunk ends before `codec`'s stream does.
    case truncatedChunk(codec: String)
    /// `codec`'s stream decodes past the chunk's size: refused before the excess is held.
    case oversizedChunk(codec: String, chunkBytes: Int)
    /// Parameters (HDF5 client data) `codec` cannot have been written with.
    case invalidParameters(codec: String, reason: String)
    /// `codec`'s library failed to encode (a fill chunk), with its status.
    case encodingFailed(codec: String, status: Int)
    case noPacking(object: UInt32)
    case notUnpackable(dtype: String)
    /// A variable that cannot be served as asked, and what to do.
    case variable(path: String, problem: String)

    public var description: String {
        switch self {
        case .corruptStream(let reason): return "zlib: corrupt stream (\(reason))"
        case .truncatedStream: return "zlib: truncated stream"
        case .oversizedStream(let bytes): return "zlib: the stream decodes to more than the chunk's \(bytes) bytes"
        case .zlibFailed(let operation, let status): return "zlib: \(operation) failed (status \(status))"
        case .checksumMissing: return "fletcher32: chunk shorter than its checksum"
        case .checksumMismatch: return "fletcher32: checksum mismatch, chunk is corrupt"
        case .partialShuffle(let bytes, let size):
            return "shuffle: the buffer (\(bytes) bytes) is not a whole number of \(size)-byte elements, which Zarr readers' shuffle (numcodecs) refuses"
        case .unsupportedCodec(let configuration, let encoding):
            return "codec \(configuration.rendered()) is not \(encoding ? "encoded" : "decoded") by zarrmount"
        case .corruptChunk(let codec, let reason): return "\(codec): corrupt chunk (\(reason))"
        case .truncatedChunk(let codec): return "\(codec): the chunk ends before its stream does"
        case .oversizedChunk(let codec, let bytes): return "\(codec): the chunk decodes to more than its \(bytes) bytes"
        case .invalidParameters(let codec, let reason): return "\(codec): the filter's parameters are invalid (\(reason))"
        case .encodingFailed(let codec, let status): return "\(codec): encoding failed (status \(status))"
        case .noPacking(let object): return "no packing is known for object \(object) of an unpacked variable"
        case .notUnpackable(let dtype): return "values of type \(dtype) cannot be unpacked"
        case .variable(let path, let problem): return "\(path): \(problem)"
        }
    }
}

/// Decodes stored chunk bytes: the reverse of `pipeline`, last step first.
public enum ChunkDecoder {
    /// `asZarrReaders`: decode as numcodecs does, which refuses a shuffled buffer that is not a
    /// whole number of elements (HDF5, and zarrmount's own decoding, leave the trailing bytes).
    public static func decode(_ stored: [UInt8], pipeline: [Codec], decodedSize: Int, asZarrReaders: Bool = false) throws -> [UInt8] {
        var bytes = stored
        for codec in pipeline.reversed() {
            switch codec {
            case .zlib: bytes = try inflate(bytes, expectedSize: decodedSize)
            case .shuffle(let size):
                if asZarrReaders, size > 1, bytes.count % size != 0 {
                    throw CodecError.partialShuffle(bytes: bytes.count, elementSize: size)
                }
                bytes = unshuffle(bytes, elementSize: size)
            case .fletcher32: bytes = try stripFletcher32(bytes)
            // A step decodes to the chunk, or to the chunk and a Fletcher-32 checksum when that
            // filter ran first: more is corrupt or hostile.
            case .zstd: bytes = try CompressedStreams.zstdDecompress(bytes, limit: decodedSize + 4)
            case .bz2: bytes = try CompressedStreams.bz2Decompress(bytes, limit: decodedSize + 4)
            case .blosc: bytes = try CompressedStreams.bloscDecompress(bytes, limit: decodedSize + 4)
            case .hdf5(let filter): bytes = try filter.decode(bytes, limit: decodedSize + 4)
            case .other(let configuration): throw CodecError.unsupportedCodec(configuration, encoding: false)
            }
        }
        return bytes
    }

    static func inflate(_ input: [UInt8], expectedSize: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else { throw CodecError.zlibFailed(operation: "initialise", status: Z_STREAM_ERROR) }
        defer { inflateEnd(&stream) }
        // A chunk decodes to its own size (plus a Fletcher-32 checksum when that filter ran
        // first): more is a corrupt or hostile stream, refused before it is allocated.
        let limit = expectedSize + 4
        var output = [UInt8](repeating: 0, count: max(limit + 1, 64))
        var input = input
        var produced = 0
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inBuffer in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = UInt32(inBuffer.count)
            while status != Z_STREAM_END {
                if produced == output.count {
                    throw CodecError.oversizedStream(chunkBytes: expectedSize)
                }
                status = output.withUnsafeMutableBufferPointer { outBuffer -> Int32 in
                    stream.next_out = outBuffer.baseAddress! + produced
                    stream.avail_out = UInt32(outBuffer.count - produced)
                    let result = CZlib.inflate(&stream, Z_NO_FLUSH)
                    produced = outBuffer.count - Int(stream.avail_out)
                    return result
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 { throw CodecError.truncatedStream }
                if status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR {
                    let reason = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    throw CodecError.corruptStream(reason: reason)
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// HDF5's shuffle: byte k of every element was stored together; trailing bytes are left.
    static func unshuffle(_ input: [UInt8], elementSize: Int) -> [UInt8] {
        guard elementSize > 1, input.count >= elementSize else { return input }
        let count = input.count / elementSize
        var output = input
        for byte in 0..<elementSize {
            let base = byte * count
            for element in 0..<count { output[element * elementSize + byte] = input[base + element] }
        }
        return output
    }

    static func stripFletcher32(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count >= 4 else { throw CodecError.checksumMissing }
        let data = Array(input.dropLast(4))
        let stored = input.suffix(4)
        let computed = fletcher32(data)
        let storedValue =
            UInt32(stored[stored.startIndex]) | UInt32(stored[stored.startIndex + 1]) << 8
            | UInt32(stored[stored.startIndex + 2]) << 16 | UInt32(stored[stored.startIndex + 3]) << 24
        guard computed == storedValue else { throw CodecError.checksumMismatch }
        return data
    }

    /// libhdf5's Fletcher-32 (H5_checksum_fletcher32): 16-bit big-endian words.
    static func fletcher32(_ data: [UInt8]) -> UInt32 {
        var sum1: UInt32 = 0, sum2: UInt32 = 0
        var index = 0
        var remaining = data.count / 2
        while remaining > 0 {
            let block = min(remaining, 360)
            remaining -= block
            for _ in 0..<block {
                sum1 &+= UInt32(data[index]) << 8 | UInt32(data[index + 1])
                sum2 &+= sum1
                index += 2
            }
            sum1 = (sum1 & 0xffff) + (sum1 >> 16)
            sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        }
        if data.count % 2 == 1 {
            sum1 &+= UInt32(data[index]) << 8
            sum2 &+= sum1
            sum1 = (sum1 & 0xffff) + (sum1 >> 16)
            sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        }
        sum1 = (sum1 & 0xffff) + (sum1 >> 16)
        sum2 = (sum2 & 0xffff) + (sum2 >> 16)
        return (sum2 << 16) | sum1
    }
}

/// Encodes raw chunk bytes with a pipeline (used for synthesised fill chunks).
public enum ChunkEncoder {
    public static func encode(_ raw: [UInt8], pipeline: [Codec]) throws -> [UInt8] {
        var bytes = raw
        for codec in pipeline {
            switch codec {
            case .zlib(let level): bytes = try deflate(bytes, level: level)
            case .shuffle(let size): bytes = shuffle(bytes, elementSize: size)
            case .fletcher32:
                let sum = ChunkDecoder.fletcher32(bytes)
                bytes += [UInt8(sum & 0xff), UInt8((sum >> 8) & 0xff), UInt8((sum >> 16) & 0xff), UInt8(sum >> 24)]
            case .zstd(let level): bytes = try CompressedStreams.zstdCompress(bytes, level: level)
            case .bz2(let level): bytes = try CompressedStreams.bz2Compress(bytes, level: level)
            case .blosc(let settings): bytes = try CompressedStreams.bloscCompress(bytes, settings)
            case .hdf5(let filter): bytes = try filter.encode(bytes)
            case .other(let configuration): throw CodecError.unsupportedCodec(configuration, encoding: true)
            }
        }
        return bytes
    }

    static func shuffle(_ input: [UInt8], elementSize: Int) -> [UInt8] {
        guard elementSize > 1, input.count >= elementSize else { return input }
        let count = input.count / elementSize
        var output = input
        for byte in 0..<elementSize {
            for element in 0..<count { output[byte * count + element] = input[element * elementSize + byte] }
        }
        return output
    }

    static func deflate(_ input: [UInt8], level: Int) throws -> [UInt8] {
        var destinationLength = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(destinationLength))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { inp in
                compress2(out.baseAddress, &destinationLength, inp.baseAddress, uLong(inp.count), Int32(level))
            }
        }
        guard status == Z_OK else { throw CodecError.zlibFailed(operation: "compression", status: status) }
        output.removeSubrange(Int(destinationLength)...)
        return output
    }
}

extension Codec {
    /// The first codec of `pipeline` zarrmount does not implement (from imported references),
    /// or nil when it can decode the whole pipeline.
    public static func foreign(in pipeline: [Codec]) -> Codec? {
        pipeline.first { if case .other = $0 { return true } else { return false } }
    }

    /// The first codec of `pipeline` only zarrmount decodes (an HDF5 filter numcodecs has no
    /// codec for), or nil when Zarr readers can decode the whole pipeline.
    public static func decodedOnly(in pipeline: [Codec]) -> HDF5Filter? {
        for case .hdf5(let filter) in pipeline { return filter }
        return nil
    }

    /// Whether every chunk `pipeline` writes ends in four bytes that check its whole content: the
    /// last codec is zlib (an Adler-32 of the uncompressed bytes) or Fletcher-32. Two files'
    /// chunks are then told apart by those bytes alone. Of the checks `pipelineCarriesACheck`
    /// counts, bzip2's CRC is not in a stream's last bytes.
    public static func pipelineEndsInChecksum(_ pipeline: [Codec]) -> Bool {
        switch pipeline.last {
        case .zlib, .fletcher32: true
        default: false
        }
    }

    /// Whether decoding `pipeline` checks the bytes: zlib streams end in an Adler-32 of the
    /// data, bzip2 streams carry CRCs, Fletcher-32 is a checksum; a pipeline with a codec
    /// zarrmount cannot decode is not.
    public static func pipelineCarriesACheck(_ pipeline: [Codec]) -> Bool {
        var check = false
        for codec in pipeline {
            switch codec {
            case .zlib, .fletcher32, .bz2: check = true
            case .shuffle, .zstd, .blosc, .hdf5: break
            case .other: return false
            }
        }
        return check
    }
}
