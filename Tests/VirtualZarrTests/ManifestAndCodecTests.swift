import ByteSource
@testable import HDF5Mapping
import HDF5Metadata
import JSONValue
@testable import VirtualZarr
import XCTest

final class ManifestTests: XCTestCase {
    func testTenMillionChunksFitInFourHundredMegabytes() {
        var manifest = ChunkManifest(gridShape: [10_000, 1_000])
        for linear in stride(from: 0, to: manifest.count, by: 1) {
            manifest[linear] = .reference(object: UInt32(linear % 365), offset: UInt64(linear) * 4096, length: 4000)
        }
        XCTAssertEqual(manifest.count, 10_000_000)
        XCTAssertEqual(manifest[9_999_999], .reference(object: UInt32(9_999_999 % 365), offset: 9_999_999 * 4096, length: 4000))
        XCTAssertLessThan(manifest.memoryFootprint, 400_000_000)
        XCTAssertLessThan(manifest.memoryFootprint, 201_000_000, "20 bytes per chunk: object id, offset, length")
    }

    func testAGridBeyondWhatAManifestIndexesIsRefusedWithItsShape() {
        let shape: [UInt64] = [1 << 30, 1 << 30], chunks: [UInt64] = [1, 1]
        XCTAssertThrowsError(try ChunkManifest.empty(shape: shape, chunks: chunks)) { error in
            XCTAssertEqual(
                error as? MappingError,
                .gridTooLarge(gridShape: [1 << 30, 1 << 30], shape: shape, chunks: chunks, maxChunks: ChunkManifest.maxChunks))
        }
        XCTAssertEqual(try ChunkManifest.empty(shape: [10, 3], chunks: [4, 3]).gridShape, [3, 1])
    }

    func testGridIndexingAndSharedInlineFill() {
        var manifest = ChunkManifest(gridShape: [3, 4])
        XCTAssertEqual(manifest.linearIndex([2, 3]), 11)
        XCTAssertNil(manifest.linearIndex([3, 0]))
        // As HDF5 chunk tables hold them: unsigned, in a slice of one flat array.
        let table: [UInt64] = [9, 2, 3, 0, 3, UInt64.max, 1]
        XCTAssertEqual(manifest.linearIndex(table[1..<3]), 11)
        XCTAssertNil(manifest.linearIndex(table[2..<4]))
        XCTAssertNil(manifest.linearIndex(table[5..<7]), "a coordinate beyond Int is outside the grid")
        XCTAssertNil(manifest.linearIndex(table[4..<7]), "rank mismatch")
        XCTAssertEqual(manifest.coordinates(7), [1, 3])
        manifest[5] = .reference(object: 1, offset: 10, length: 20)
        manifest.fillMissing(with: [1, 2, 3])
        XCTAssertEqual(manifest[0], .inline([1, 2, 3]))
        XCTAssertEqual(manifest[11], .inline([1, 2, 3]))
        XCTAssertEqual(manifest[5], .reference(object: 1, offset: 10, length: 20))
        XCTAssertLessThan(manifest.memoryFootprint, 12 * 20 + 3 + 64, "the fill chunk is stored once")
    }
}

final class CodecTests: XCTestCase {
    func testPipelinesRoundTripAndFletcherDetectsCorruption() throws {
        let raw = (0..<4000).map { UInt8(truncatingIfNeeded: ($0 * 7) / 13) }
        for pipeline: [Codec] in [[.zlib(level: 4)], [.shuffle(elementSize: 4), .zlib(level: 6)], [.shuffle(elementSize: 8), .zlib(level: 1), .fletcher32]] {
            let stored = try ChunkEncoder.encode(raw, pipeline: pipeline)
            XCTAssertNotEqual(stored, raw)
            XCTAssertEqual(try ChunkDecoder.decode(stored, pipeline: pipeline, decodedSize: raw.count), raw, "\(pipeline)")
        }
        var stored = try ChunkEncoder.encode(raw, pipeline: [.fletcher32])
        stored[10] ^= 0x40
        XCTAssertThrowsError(try ChunkDecoder.decode(stored, pipeline: [.fletcher32], decodedSize: raw.count)) { error in
            XCTAssertEqual(error as? CodecError, .checksumMismatch)
        }
        XCTAssertThrowsError(try ChunkDecoder.decode([1, 2, 3, 4], pipeline: [.zlib(level: 4)], decodedSize: 100))
    }

    /// libaec divides a scanline by the block size before it checks either: szip client data with
    /// a block of 0 pixels stopped the process with SIGFPE (found by tools/fuzz/run codecs).
    func testSzipParametersLibaecWouldDivideByAreRefusedNotRun() {
        let hostile: [[UInt32]] = [[141, 0, 32, 64], [141, 8, 32, 0], [141, 7, 32, 64], [141, 8, 0, 64], [141, 128, 32, 256], [141, 32, 32, 16]]
        for data in hostile {
            let filter = HDF5Filter(kind: .szip, clientData: data)
            XCTAssertThrowsError(try ChunkDecoder.decode([64, 0, 0, 0, 1, 2, 3, 4], pipeline: [.hdf5(filter)], decodedSize: 64), "\(data)") {
                guard case CodecError.invalidParameters(codec: "szip", _) = $0 else { return XCTFail("\(data): \($0)") }
            }
        }
    }

    /// n-bit of a compound with every kind of member libhdf5 lists: 17 bits from bit 3 of an
    /// int32, a big-endian float of HDF5's test format, 3 bytes kept as they are, an array of two
    /// uint16 and an int8. The chunk and the values are libhdf5's (h5py wrote the chunk and read
    /// it back; the decoded element keeps each member's byte order).
    func testNBitDecodesCompoundsWithArraysStringsAndFloatsOfTheirOwnFormatAsLibhdf5() throws {
        let clientData: [UInt32] = [35, 0, 4, 3, 16, 5, 0, 1, 4, 0, 17, 3, 4, 1, 4, 1, 20, 7, 8, 4, 3, 11, 2, 4, 1, 2, 0, 16, 0, 15, 1, 1, 0, 8, 0]
        let testFloat = FloatFormat(signPosition: 26, exponentPosition: 20, exponentSize: 6, mantissaPosition: 7, mantissaSize: 13, exponentBias: 31)
        let numbers: [NBitNumber] = [.integer(signed: true), .float(testFloat), .integer(signed: false), .integer(signed: true)]
        let stored = Self.bytes("f8306080030b10000000003fe7d122fedb9e1e5e800380057f7f06179b6e00000000380047fdfc183b6db710000002a0031ff0")
        let expected = Self.bytes(
            "60f0ffffc040000061620000000700fc48f4ffffbfedb80078797a0e001500fd30f8ffffbf36dc000000001c002300fe18fcffff3edb6c007100002a003100ff")
        let filter = HDF5Filter(kind: .nbit, clientData: clientData, numbers: numbers)
        XCTAssertEqual(try ChunkDecoder.decode(stored, pipeline: [.hdf5(filter)], decodedSize: 64), expected)
        // Packing the values again gives what libhdf5 stored (fill chunks are packed this way).
        XCTAssertEqual(try filter.encode(expected), stored)
        // The datatype must account for every number the description lists.
        XCTAssertThrowsError(
            try ChunkDecoder.decode(
                stored, pipeline: [.hdf5(HDF5Filter(kind: .nbit, clientData: clientData, numbers: [.integer(signed: true)]))], decodedSize: 64))
    }

    private static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    func testAZlibStreamLargerThanItsChunkIsRefusedBeforeItIsHeld() throws {
        // 64 MiB of zeros deflate to about 64 KiB: a chunk declared as 4096 bytes must not
        // make the decoder allocate the rest.
        let bomb = try ChunkEncoder.encode([UInt8](repeating: 0, count: 64 << 20), pipeline: [.zlib(level: 9)])
        XCTAssertLessThan(bomb.count, 1 << 20)
        XCTAssertThrowsError(try ChunkDecoder.decode(bomb, pipeline: [.zlib(level: 9)], decodedSize: 4096)) { error in
            XCTAssertEqual(error as? CodecError, .oversizedStream(chunkBytes: 4096))
            XCTAssertEqual("\(error)", "zlib: the stream decodes to more than the chunk's 4096 bytes")
        }
        // Exactly the chunk's size, and the size with a Fletcher-32 checksum after it, decode.
        let exact = try ChunkEncoder.encode([UInt8](repeating: 7, count: 4096), pipeline: [.zlib(level: 1)])
        XCTAssertEqual(try ChunkDecoder.decode(exact, pipeline: [.zlib(level: 1)], decodedSize: 4096).count, 4096)
        let checked = try ChunkEncoder.encode([UInt8](repeating: 7, count: 4096), pipeline: [.fletcher32, .zlib(level: 1)])
        XCTAssertEqual(try ChunkDecoder.decode(checked, pipeline: [.fletcher32, .zlib(level: 1)], decodedSize: 4096).count, 4096)
        // zlib's own reason is kept: a header naming compression method 7.
        XCTAssertThrowsError(try ChunkDecoder.decode([0x77, 0x01] + exact.dropFirst(2), pipeline: [.zlib(level: 1)], decodedSize: 4096)) { error in
            XCTAssertTrue("\(error)".contains("incorrect header check") || "\(error)".contains("unknown compression method"), "\(error)")
        }
    }

    func testAnObjectKeepsItsParsedLocation() {
        var object = ObjectInfo(url: "s3://bucket/dir/a.nc", size: 10)
        XCTAssertEqual(object.location, .s3(bucket: "bucket", key: "dir/a.nc"))
        object.url = "https://host/a.nc"
        XCTAssertEqual(object.location, .http(url: "https://host/a.nc"), "a new url is parsed again")
        XCTAssertEqual(ObjectInfo(url: "/data/a.nc", size: 1).location, .local(path: "/data/a.nc"))
        XCTAssertNil(ObjectInfo(url: "ftp://host/a.nc", size: 1).location)
        XCTAssertThrowsError(try Location("s3:///key")) { XCTAssertEqual(($0 as? Location.Problem)?.reason, "no bucket name") }
    }

    func testEveryDataTypeHasOneSpellingThatReadsBack() {
        var types: [ZarrDataType] = [.bool, .variableString, .fixedBytes(8), .opaque(3)]
        for size in [1, 2, 4, 8] {
            for big in [false, true] { types += [.integer(size: size, signed: true, bigEndian: big), .integer(size: size, signed: false, bigEndian: big)] }
        }
        for size in [2, 4, 8] { types += [.float(size: size), .float(size: size, bigEndian: true)] }
        for type in types {
            XCTAssertEqual(ZarrDataType(v2: type.v2String), type, type.v2String)
        }
        XCTAssertEqual(ZarrDataType.integer(size: 1, signed: true, bigEndian: true).v2String, "|i1", "one byte has no order")
        XCTAssertEqual(ZarrDataType.float(size: 4, bigEndian: true).v3, .string("float32"))
        for bad in ["<f3", "<i16", "|S0", "f4", "", "<x4", "|b2"] { XCTAssertNil(ZarrDataType(v2: bad), bad) }
    }

    func testContiguousSplitTilesTheBytesExactly() {
        let chunk = ContiguousSplit.chunkShape(shape: [1000, 500, 20], itemSize: 4, threshold: 16 << 20, filtered: false)
        XCTAssertEqual(chunk, [250, 500, 20], "the largest divisor of 1000 rows whose chunk fits 16 MiB")
        XCTAssertEqual(1000 % chunk[0], 0)
        XCTAssertEqual(ContiguousSplit.chunkShape(shape: [1000, 500, 20], itemSize: 4, threshold: 16 << 20, filtered: true), [1000, 500, 20])
        let prime = ContiguousSplit.chunkShape(shape: [7, 3_000_000], itemSize: 8, threshold: 16 << 20, filtered: false)
        XCTAssertEqual(prime[0], 1)
        XCTAssertEqual(3_000_000 % prime[1], 0)
        XCTAssertLessThanOrEqual(prime[1] * 8, 16 << 20)
    }

    /// A hostile header's prime axis (2^61 - 1) under a large threshold took one division per
    /// candidate row, about 2^40 of them; the search now stops and falls back to rows of one.
    func testAPrimeAxisEndsTheDivisorSearchAtItsBound() {
        let mersenne: UInt64 = (1 << 61) - 1
        XCTAssertEqual(ContiguousSplit.chunkShape(shape: [mersenne, 1], itemSize: 1, threshold: 1 << 40), [1, 1])
        XCTAssertEqual(ContiguousSplit.chunkShape(shape: [1 << 50, 1], itemSize: 1, threshold: 1 << 40), [1 << 40, 1], "a divisor in reach is still found")
    }
}

final class ByteSwapTests: XCTestCase {
    func testBigEndianMembersAreServedLittleEndianAndSwappedElementByElement() throws {
        let fields: JSON = .array([
            .array([.string("a"), .string(">i2")]), .array([.string("flag"), .string("|u1")]),
            .array([.string("v"), .string(">f4"), .array([.int(2)])]), .array([.string(""), .string("|V1")]),
        ])
        let (swap, served) = try XCTUnwrap(ByteSwap.littleEndian(.structured(fields, size: 12)))
        XCTAssertEqual(
            served.v2,
            .array([
                .array([.string("a"), .string("<i2")]), .array([.string("flag"), .string("|u1")]),
                .array([.string("v"), .string("<f4"), .array([.int(2)])]), .array([.string(""), .string("|V1")]),
            ]))
        XCTAssertEqual(swap.runs, [ByteSwap.Run(offset: 0, width: 2, count: 1), ByteSwap.Run(offset: 3, width: 4, count: 2)])
        var bytes: [UInt8] = [0x01, 0x02, 9, 0x3F, 0x80, 0, 0, 0x40, 0, 0, 0, 7] + [0x00, 0x05, 8, 0xBF, 0x80, 0, 0, 0, 0, 0, 0, 6]
        swap.apply(&bytes)
        XCTAssertEqual(bytes, [0x02, 0x01, 9, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40, 7] + [0x05, 0x00, 8, 0, 0, 0x80, 0xBF, 0, 0, 0, 0, 6])
        // Nothing big-endian, or fields that do not add up to the item: no swap.
        XCTAssertNil(ByteSwap.littleEndian(.structured(.array([.array([.string("a"), .string("<i2")])]), size: 2)))
        XCTAssertNil(ByteSwap.littleEndian(.structured(.array([.array([.string("a"), .string(">i2")])]), size: 4)))
    }
}
