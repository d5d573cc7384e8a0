import ByteSource
import Foundation
import JSONValue
@testable import Scanner
import TestSupport
@testable import VirtualZarr
import XCTest

/// tools/make-fixtures.py' plugins/filters-plugins.h5: every filtered variable names, in its
/// attribute `oracle`, an unfiltered variable holding what h5py (with hdf5plugin) reads from it.
final class PluginFilterTests: XCTestCase {
    static let filtered: Set<String> = [
        "zstd", "zstd_shuffle", "zstd_fletcher32", "bzip2", "bzip2_edge", "blosc_blosclz", "blosc_lz4", "blosc_lz4hc", "blosc_zlib",
        "blosc_zstd", "blosc_bitshuffle", "blosc_noshuffle", "blosc_edge", "lz4", "lz4_blocks", "lz4_incompressible", "bitshuffle",
        "bitshuffle_lz4", "bitshuffle_zstd", "bitshuffle_leftover", "bitshuffle_small_blocks", "bitshuffle_bytes", "lzf", "lzf_shuffle",
        "lzf_edge", "szip", "szip_ec", "szip_float", "scaleoffset_int", "scaleoffset_short", "scaleoffset_float", "scaleoffset_double",
        "scaleoffset_deflate", "nbit", "nbit_float_be", "nbit_float_le", "nbit_double", "nbit_int_offset", "nbit_compound",
    ]

    struct Fixture {
        var dataset: VirtualDataset
        var warnings: [String]
        var fetch: ByteFetcher
    }

    static func scanned() async throws -> Fixture {
        let path = try VZTestData.fixtures().appendingPathComponent("plugins/filters-plugins.h5").path
        guard FileManager.default.fileExists(atPath: path) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("\(path) missing under CI: run tools/make-fixtures.py") }
            throw XCTSkip("no \(path): run tools/make-fixtures.py")
        }
        let summary = try await Scanner.scan(sources: [path], options: ScanOptions(), logger: VZTestData.logger)
        let file = try FileSource(path: path)
        return Fixture(
            dataset: summary.dataset, warnings: summary.dataset.warnings,
            fetch: { offset, length in try file.readSynchronously(offset: offset, length: length) })
    }

    func testEveryPluginFilterDecodesToWhatH5pyReads() async throws {
        let fixture = try await Self.scanned()
        var checked: Set<String> = []
        for array in fixture.dataset.arrays {
            guard case .string(let oracleName)? = array.attributes.first(where: { $0.0 == "oracle" })?.1 else { continue }
            let oracle = try XCTUnwrap(fixture.dataset.array(oracleName), "\(array.path)'s oracle \(oracleName)")
            XCTAssertEqual(oracle.codecs, [], "\(oracleName) is stored unfiltered")
            XCTAssertFalse(array.codecs.isEmpty, "\(array.path) is filtered")
            let decoded = try await ArrayValues.decoded(array, fetch: fixture.fetch, maxBytes: 1 << 24)
            let expected = try await ArrayValues.decoded(oracle, fetch: fixture.fetch, maxBytes: 1 << 24)
            XCTAssertEqual(decoded.count, expected.count, array.path)
            XCTAssertTrue(decoded == expected, "\(array.path) decodes to what h5py reads (\(array.codecs.map(\.name)))")
            checked.insert(array.path)
        }
        XCTAssertEqual(checked.intersection(Self.filtered), Self.filtered, "every plugin filter is decoded; warnings: \(fixture.warnings)")
    }

    func testNumcodecsCompatibleFiltersGetTheirCodecsAndTheOthersAreDecodedOnly() async throws {
        let fixture = try await Self.scanned()
        XCTAssertEqual(fixture.dataset.array("zstd")?.codecs, [.zstd(level: 5)])
        XCTAssertEqual(fixture.dataset.array("zstd_shuffle")?.codecs, [.shuffle(elementSize: 4), .zstd(level: 1)])
        XCTAssertEqual(fixture.dataset.array("bzip2")?.codecs, [.bz2(level: 9)])
        XCTAssertEqual(fixture.dataset.array("blosc_zstd")?.codecs, [.blosc(Codec.Blosc(cname: "zstd", clevel: 5, shuffle: 1))])
        XCTAssertEqual(fixture.dataset.array("blosc_bitshuffle")?.codecs, [.blosc(Codec.Blosc(cname: "lz4", clevel: 9, shuffle: 2))])
        for name in ["lz4", "lzf", "szip", "bitshuffle_lz4"] {
            let array = try XCTUnwrap(fixture.dataset.array(name), name)
            XCTAssertNotNil(Codec.decodedOnly(in: array.codecs), name)
        }
        // A stored store leaves the decoded-only ones out, saying which filter and what serves it.
        let store = ZarrStore(fixture.dataset, format: .v2)
        XCTAssertNil(store.dataset.array("lz4"))
        XCTAssertNotNil(store.dataset.array("zstd"))
        let warning = try XCTUnwrap(store.omitted.first { $0.hasPrefix("lz4 ") }, "\(store.omitted)")
        XCTAssertTrue(warning.contains("HDF5 filter 32004") && warning.contains("--decoded"), warning)
        // The decoded view serves every one of them with no codecs.
        let view = try DecodedView(fixture.dataset)
        XCTAssertEqual(view.dataset.array("lz4")?.codecs, [])
        XCTAssertEqual(view.pipelines["szip"], fixture.dataset.array("szip")?.codecs)
        XCTAssertEqual(ZarrStore(view.dataset, format: .v3).omitted.filter { $0.contains("HDF5 filter") }, [])
        // The manifest cache stores codecs as JSON and reads them back.
        for array in fixture.dataset.arrays {
            XCTAssertEqual(array.codecs.map { Codec(numcodecs: $0.numcodecsJSON) }, array.codecs, array.path)
        }
    }

    /// The first stored chunk of `name`, with the size it decodes to.
    static func firstChunk(_ name: String, in fixture: Fixture) async throws -> (stored: [UInt8], codecs: [Codec], decodedSize: Int) {
        let array = try XCTUnwrap(fixture.dataset.array(name), name)
        let linear = try XCTUnwrap(array.manifest.nextStored(from: 0, before: array.manifest.count))
        guard case .reference(_, let offset, let length) = array.manifest[linear] else { throw XCTSkip("\(name)'s first chunk is inline") }
        let stored = try await fixture.fetch(offset, Int(length))
        return (stored, array.codecs, DecodedView.decodedChunkSize(array))
    }

    func testTruncatedMutatedAndOversizedChunksGiveTypedErrorsNamingTheCodec() async throws {
        let fixture = try await Self.scanned()
        let cases: [(variable: String, codec: String)] = [
            ("zstd", "zstd"), ("bzip2", "bz2"), ("blosc_lz4", "blosc"), ("lz4_blocks", "lz4"), ("lzf", "lzf"), ("szip", "szip"),
            ("bitshuffle_lz4", "bitshuffle"), ("bitshuffle_zstd", "bitshuffle"), ("bitshuffle", "bitshuffle"),
            ("scaleoffset_int", "scaleoffset"), ("scaleoffset_float", "scaleoffset"), ("nbit", "nbit"),
            ("nbit_float_be", "nbit"), ("nbit_double", "nbit"), ("nbit_compound", "nbit"),
        ]
        var random = SplitMix64(seed: 16)
        for (variable, codec) in cases {
            let chunk = try await Self.firstChunk(variable, in: fixture)
            let pipeline = chunk.codecs
            let decoded = try ChunkDecoder.decode(chunk.stored, pipeline: pipeline, decodedSize: chunk.decodedSize)
            XCTAssertEqual(decoded.count, chunk.decodedSize, variable)
            // Cut short: a typed error that names the codec, or (formats with no length, such
            // as LZF, an empty zstd input, unshuffled bits) fewer bytes than the chunk's, which
            // every reader refuses; packed bits may end in a spare byte, whose loss changes nothing.
            for keep in [0, 1, chunk.stored.count / 2, chunk.stored.count - 1] {
                do {
                    let bytes = try ChunkDecoder.decode(Array(chunk.stored.prefix(keep)), pipeline: pipeline, decodedSize: chunk.decodedSize)
                    XCTAssertTrue(
                        bytes.count < chunk.decodedSize || bytes == decoded, "\(variable) cut to \(keep) of \(chunk.stored.count) bytes")
                } catch let error as CodecError {
                    XCTAssertTrue("\(error)".hasPrefix(codec + ":"), "\(variable) cut to \(keep) bytes: \(error)")
                }
            }
            // A chunk that decodes past the size it must have is refused.
            XCTAssertThrowsError(try ChunkDecoder.decode(chunk.stored, pipeline: pipeline, decodedSize: chunk.decodedSize / 2 - 8)) { error in
                guard let error = error as? CodecError else { return XCTFail("\(variable): \(error) is not a CodecError") }
                XCTAssertTrue("\(error)".hasPrefix(codec + ":"), "\(variable) with half its size: \(error)")
            }
            // Mutated: decodes to at most the chunk's size, or a CodecError; never a crash.
            for _ in 0..<200 {
                var mutated = chunk.stored
                for _ in 0...random.below(4) { mutated[random.below(mutated.count)] = UInt8(truncatingIfNeeded: random.next()) }
                do {
                    let bytes = try ChunkDecoder.decode(mutated, pipeline: pipeline, decodedSize: chunk.decodedSize)
                    XCTAssertLessThanOrEqual(bytes.count, chunk.decodedSize + 4, variable)
                } catch is CodecError {
                } catch {
                    XCTFail("\(variable): \(error) is not a CodecError")
                }
            }
        }
    }

    func testFillChunksEncodeAndDecodeBackThroughEveryFilter() throws {
        let raw = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) }
        let pipelines: [[Codec]] = [
            [.zstd(level: 3)], [.bz2(level: 9)], [.blosc(Codec.Blosc(cname: "lz4", clevel: 5, shuffle: 1))],
            [.hdf5(HDF5Filter(kind: .lz4, clientData: [0]))], [.hdf5(HDF5Filter(kind: .lzf, clientData: [4, 261, 1000]))],
            [.hdf5(HDF5Filter(kind: .szip, clientData: [169, 32, 8, 1000]))],
            [.hdf5(HDF5Filter(kind: .bitshuffle, clientData: [0, 4, 4, 0, 0]))],
            [.hdf5(HDF5Filter(kind: .bitshuffle, clientData: [0, 4, 2, 64, 2]))],
        ]
        for pipeline in pipelines {
            let encoded = try ChunkEncoder.encode(raw, pipeline: pipeline)
            XCTAssertEqual(try ChunkDecoder.decode(encoded, pipeline: pipeline, decodedSize: raw.count), raw, "\(pipeline)")
        }
    }
}
