import XCTest

@testable import Scanner
@testable import VirtualZarr

/// Which arrays `CodecProof` still reads a chunk of, given the chunks proven ahead while the
/// files were scanned: pure, no store.
final class CodecProofTests: XCTestCase {
    /// Two files along a time axis of 2: T2 (zlib) and U (zlib + shuffle), one chunk of
    /// 10 × 10 float32 per file, file 0's chunks first.
    private func dataset() -> VirtualDataset {
        func array(_ path: String, codecs: [Codec], base: UInt64) -> VirtualArray {
            var manifest = ChunkManifest(gridShape: [2, 1])
            manifest[0] = .reference(object: 0, offset: base, length: 300)
            manifest[1] = .reference(object: 1, offset: base + 1000, length: 310)
            return VirtualArray(
                path: path, dtype: .float(size: 4), shape: [2, 100], chunkShape: [1, 100], codecs: codecs, fillValue: .null,
                fillBytes: nil, dimensionNames: ["Time", "x"], attributes: [], manifest: manifest, origin: "test")
        }
        return VirtualDataset(
            objects: [ObjectInfo(url: "/d/a.nc", size: 10_000), ObjectInfo(url: "/d/b.nc", size: 10_000)],
            groups: [VirtualGroup(path: "", attributes: [])],
            arrays: [array("T2", codecs: [.zlib(level: 4)], base: 100), array("U", codecs: [.shuffle(elementSize: 4), .zlib(level: 4)], base: 500)])
    }

    private func proven(_ entries: [(url: String, offset: UInt64, length: UInt64, codecs: [Codec])], decodedSize: Int = 400) -> CodecProof.ProvenAhead {
        var ahead = CodecProof.ProvenAhead()
        for entry in entries {
            ahead.chains[CodecProof.ProvenChunk(url: entry.url, offset: entry.offset, length: entry.length, decodedSize: decodedSize)] = entry.codecs
        }
        return ahead
    }

    func testWithNothingProvenAheadEveryArrayIsTriedOnItsFirstStoredChunk() {
        let trials = CodecProof.trials(dataset())
        XCTAssertEqual(trials.map(\.arrayIndex), [0, 1])
        XCTAssertEqual(trials.map(\.object.url), ["/d/a.nc", "/d/a.nc"])
        XCTAssertEqual(trials.map(\.offset), [100, 500])
        XCTAssertEqual(trials.map(\.decodedSize), [400, 400])
    }

    func testAChunkProvenAheadUnderTheArraysChainStandsForItsTrial() {
        // The second file finished first: its chunk of T2 was proven, not the first stored one.
        let ahead = proven([("/d/b.nc", 1100, 310, [.zlib(level: 4)])])
        let trials = CodecProof.trials(dataset(), provenAhead: ahead)
        XCTAssertEqual(trials.map(\.arrayIndex), [1], "T2 is proven; U still needs its trial")
        XCTAssertEqual(trials.first?.offset, 500)
    }

    func testAProvenChunkCountsOnlyWithTheSameChainSizeAndPlace() {
        // The same place under another chain (the file said shuffle + zlib there).
        XCTAssertEqual(CodecProof.trials(dataset(), provenAhead: proven([("/d/b.nc", 1100, 310, [.shuffle(elementSize: 4), .zlib(level: 4)])])).count, 2)
        // Another decoded size (another chunk shape).
        XCTAssertEqual(CodecProof.trials(dataset(), provenAhead: proven([("/d/b.nc", 1100, 310, [.zlib(level: 4)])], decodedSize: 800)).count, 2)
        // Another length, another offset, another object.
        XCTAssertEqual(CodecProof.trials(dataset(), provenAhead: proven([("/d/b.nc", 1100, 311, [.zlib(level: 4)])])).count, 2)
        XCTAssertEqual(CodecProof.trials(dataset(), provenAhead: proven([("/d/b.nc", 1101, 310, [.zlib(level: 4)])])).count, 2)
        XCTAssertEqual(CodecProof.trials(dataset(), provenAhead: proven([("/d/c.nc", 1100, 310, [.zlib(level: 4)])])).count, 2)
    }

    func testBothArraysProvenAheadLeaveNothingToRead() {
        let ahead = proven([("/d/a.nc", 100, 300, [.zlib(level: 4)]), ("/d/a.nc", 500, 300, [.shuffle(elementSize: 4), .zlib(level: 4)])])
        XCTAssertTrue(CodecProof.trials(dataset(), provenAhead: ahead).isEmpty)
    }
}
