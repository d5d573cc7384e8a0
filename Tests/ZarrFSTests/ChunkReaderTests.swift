import TestSupport
import ObjectStore
import StoreAdapter
import Synchronization
import VirtualZarr
import XCTest
@testable import ZarrFS

/// Serves chunks from memory, slowly, counting fetches; can be told the object changed.
final class MemoryFetcher: ChunkFetching {
    let data: [UInt8] = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    let fetches = Mutex(0)
    let changed = Mutex(false)

    struct Changed: Error {}

    func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        fetches.withLock { $0 += 1 }
        try await Task.sleep(for: .milliseconds(20))
        if changed.withLock({ $0 }) { throw Changed() }
        return Array(data[Int(offset)..<Int(offset + length)])
    }
}

final class ChunkReaderTests: XCTestCase {
    private func entry(_ inode: UInt64, offset: UInt64, length: UInt64) -> ZarrTree.Entry {
        ZarrTree.Entry(inode: inode, name: "0.0", content: .chunk(object: 0, offset: offset, length: length))
    }

    func testConcurrentReadsShareOneFetchAndSlicesAreExact() async throws {
        let fetcher = MemoryFetcher()
        let reader = ChunkReader(objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 1 << 20)
        let chunk = entry(10, offset: 1000, length: 4000)
        let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for i in 0..<16 { group.addTask { (i, try await reader.bytes(chunk, offset: UInt64(i * 100), size: 300)) } }
            var all: [(Int, [UInt8])] = []
            for try await result in group { all.append(result) }
            return all
        }
        for (i, bytes) in results { XCTAssertEqual(bytes, Array(fetcher.data[(1000 + i * 100)..<(1300 + i * 100)])) }
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 1)
        let tail = try await reader.bytes(chunk, offset: 3900, size: 1000)
        XCTAssertEqual(tail, Array(fetcher.data[4900..<5000]), "reads stop at the end of the chunk")
        XCTAssertEqual(reader.statistics.hits, 1)
        XCTAssertEqual(reader.statistics.misses + reader.statistics.joined, 16)
    }

    func testCacheStaysWithinItsBudgetAndEvictsTheLeastRecentlyUsed() async throws {
        let fetcher = MemoryFetcher()
        let reader = ChunkReader(objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 10_000)
        for i in 0..<4 { _ = try await reader.bytes(entry(UInt64(i), offset: UInt64(i) * 4000, length: 4000), offset: 0, size: 1) }
        XCTAssertLessThanOrEqual(reader.statistics.cachedBytes, 10_000)
        _ = try await reader.bytes(entry(3, offset: 12_000, length: 4000), offset: 0, size: 1)
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 4, "the most recent chunk is still cached")
        _ = try await reader.bytes(entry(0, offset: 0, length: 4000), offset: 0, size: 1)
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 5, "the oldest was evicted")
    }

    func testAFailedFetchIsAnErrorNotBytesAndIsRetriedNextTime() async throws {
        let fetcher = MemoryFetcher()
        fetcher.changed.withLock { $0 = true }
        let reader = ChunkReader(objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 1 << 20)
        do {
            _ = try await reader.bytes(entry(1, offset: 0, length: 100), offset: 0, size: 10)
            XCTFail("a changed object must not return bytes")
        } catch is MemoryFetcher.Changed {}
        XCTAssertEqual(reader.statistics.errors, 1)
        fetcher.changed.withLock { $0 = false }
        let bytes = try await reader.bytes(entry(1, offset: 0, length: 100), offset: 0, size: 10)
        XCTAssertEqual(bytes, Array(fetcher.data[0..<10]))
    }
}

final class StoreChunkFetcherTests: XCTestCase {
    func testLocalFileChangedAfterTheScanIsAnErrorNeverNewBytes() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-fetch-\(getpid())").path
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let listed = try LocalStore.describe(path)
        let object = ObjectInfo(url: path, size: listed.size, identity: listed.identity)
        let fetcher = StoreChunkFetcher(store: nil)
        let bytes = try await fetcher.fetch(object, offset: 10, length: 5)
        XCTAssertEqual(bytes, [10, 11, 12, 13, 14])
        try Data((0..<1000).map { UInt8(($0 + 1) % 251) }).write(to: URL(fileURLWithPath: path))
        // Rewritten within the clock's resolution, a file could keep its mtime; move it on.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: path)
        do {
            _ = try await fetcher.fetch(object, offset: 10, length: 5)
            XCTFail("an overwritten file must not serve its new bytes")
        } catch let error as ChunkFetchError {
            XCTAssertEqual(error.kind, .changed)
            XCTAssertEqual(FilesystemError(reading: error), .stale)
        }
    }
}

/// Serves one fixed stored chunk from memory.
final class StoredChunkFetcher: ChunkFetching {
    let stored: [UInt8]
    init(_ stored: [UInt8]) { self.stored = stored }
    func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        Array(stored[Int(offset)..<Int(offset + length)])
    }
}

final class DecodedChunkTests: XCTestCase {
    /// 1000 float32 values shuffled, deflated and checksummed the way libhdf5 writes them.
    let raw: [UInt8] = (0..<1000).flatMap { (i: Int) -> [UInt8] in withUnsafeBytes(of: Float(i) * 0.5) { Array($0) } }
    let pipeline: [Codec] = [.shuffle(elementSize: 4), .zlib(level: 4), .fletcher32]

    func testADecodedChunkFileIsTheRawBytesWithTheDecodedSize() async throws {
        let stored = try ChunkEncoder.encode(raw, pipeline: pipeline)
        XCTAssertNotEqual(stored.count, raw.count)
        let reader = ChunkReader(objects: [ObjectInfo(url: "o", size: UInt64(stored.count))], fetcher: StoredChunkFetcher(stored), cacheBytes: 1 << 20)
        let entry = ZarrTree.Entry(
            inode: 7, name: "0",
            content: .chunk(
                object: 0, offset: 0, length: UInt64(stored.count),
                decoding: .init(pipeline: pipeline, size: 4000)))
        XCTAssertEqual(entry.size, 4000)
        let whole = try await reader.bytes(entry, offset: 0, size: 1 << 20)
        XCTAssertEqual(whole, raw)
        let slice = try await reader.bytes(entry, offset: 3996, size: 100)
        XCTAssertEqual(slice, Array(raw[3996...]))
        XCTAssertEqual(reader.statistics.bytesFetched, UInt64(stored.count), "stored bytes are counted, once")
    }

    func testACorruptChunkIsAnErrorNeverWrongBytes() async throws {
        var stored = try ChunkEncoder.encode(raw, pipeline: pipeline)
        stored[stored.count / 2] ^= 0x40
        let reader = ChunkReader(
            objects: [ObjectInfo(url: "s3://b/k.nc", size: UInt64(stored.count))], fetcher: StoredChunkFetcher(stored), cacheBytes: 1 << 20)
        let entry = ZarrTree.Entry(
            inode: 7, name: "0",
            content: .chunk(
                object: 0, offset: 0, length: UInt64(stored.count),
                decoding: .init(pipeline: pipeline, size: 4000)))
        do {
            _ = try await reader.bytes(entry, offset: 0, size: 10)
            XCTFail("a corrupt chunk decoded")
        } catch {
            XCTAssertTrue("\(error)".contains("s3://b/k.nc"), "\(error)")
            XCTAssertEqual(FilesystemError(reading: error).errno, EIO)
        }
        XCTAssertEqual(reader.statistics.errors, 1)
    }

    func testLargeChunksAreFetchedAsEqualParts() {
        XCTAssertEqual(StoreChunkFetcher.parts(offset: 10, length: 100, partSize: 50), [10..<110])
        let parts = StoreChunkFetcher.parts(offset: 10, length: 250, partSize: 100)
        XCTAssertEqual(parts, [10..<110, 110..<210, 210..<260])
    }
}

final class ReadaheadTests: XCTestCase {
    func testASequentialReaderGetsTheNextChunksFetchedAheadARandomOneDoesNot() async throws {
        let fetcher = MemoryFetcher()
        let chunks = (0..<40).map { i in
            ZarrTree.Entry(inode: 100 + UInt64(i), name: "\(i)", content: .chunk(object: 0, offset: UInt64(i) * 1000, length: 1000))
        }
        let reader = ChunkReader(
            objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 1 << 20,
            readahead: 4, neighbour: { inode in inode >= 100 && inode < 140 ? chunks[Int(inode - 100)] : nil })
        // random access: chunk 20 alone starts nothing extra
        _ = try await reader.bytes(chunks[20], offset: 0, size: 10)
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 1)
        XCTAssertEqual(reader.statistics.readahead, 0)
        // chunk 21 right after 20: 22...25 are fetched ahead and then read from the cache
        _ = try await reader.bytes(chunks[21], offset: 0, size: 10)
        XCTAssertEqual(reader.statistics.readahead, 4)
        for i in 22...25 {
            let bytes = try await reader.bytes(chunks[i], offset: 0, size: 1000)
            XCTAssertEqual(bytes, Array(fetcher.data[(i * 1000)..<(i * 1000 + 1000)]), "chunk \(i)")
        }
        XCTAssertEqual(reader.statistics.misses, 2, "22...25 never waited for a fetch of their own")
        // 22 and 23 moved the window of four on by one each (26, 27); at 24, five reads in
        // order, the window doubled to eight (28...32), and 25 moved it on to 33.
        XCTAssertEqual(reader.statistics.readahead, 4 + 1 + 1 + 5 + 1, "the window moved on, and grew")
        // backwards: 10 then 9 fetches 8...5 ahead of the reader
        _ = try await reader.bytes(chunks[10], offset: 0, size: 10)
        _ = try await reader.bytes(chunks[9], offset: 0, size: 10)
        XCTAssertEqual(reader.statistics.readahead, 12 + 4)
        for i in (5...8).reversed() {
            let bytes = try await reader.bytes(chunks[i], offset: 0, size: 1000)
            XCTAssertEqual(bytes, Array(fetcher.data[(i * 1000)..<(i * 1000 + 1000)]), "chunk \(i)")
        }
        XCTAssertEqual(reader.statistics.misses, 4)
        // memory answers cached chunks without a task, and says nil for the others
        XCTAssertEqual(reader.cachedRead(chunks[9], offset: 10, size: 20).map(Array.init), Array(fetcher.data[9010..<9030]))
        XCTAssertNil(reader.cachedRead(chunks[35], offset: 0, size: 20))
        XCTAssertEqual(reader.cachedRead(chunks[9], offset: 5000, size: 20).map(Array.init), [], "past the end")
        // the end of the array: readahead stops where the neighbours end
        _ = try await reader.bytes(chunks[38], offset: 0, size: 10)
        _ = try await reader.bytes(chunks[39], offset: 0, size: 10)
        XCTAssertEqual(reader.statistics.errors, 0)
    }

    func testTheCacheEvictsInUseOrderOverManyUses() async throws {
        let fetcher = MemoryFetcher()
        let reader = ChunkReader(objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 3000)
        let chunks = (0..<5).map { i in ZarrTree.Entry(inode: UInt64(i), name: "\(i)", content: .chunk(object: 0, offset: UInt64(i) * 1000, length: 1000)) }
        for i in 0..<3 { _ = try await reader.bytes(chunks[i], offset: 0, size: 1) }
        for _ in 0..<10_000 { _ = try await reader.bytes(chunks[0], offset: 0, size: 1) }
        _ = try await reader.bytes(chunks[3], offset: 0, size: 1)  // evicts 1, the least recently used
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 4)
        _ = try await reader.bytes(chunks[0], offset: 0, size: 1)
        _ = try await reader.bytes(chunks[2], offset: 0, size: 1)
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 4, "0 and 2 stayed")
        _ = try await reader.bytes(chunks[1], offset: 0, size: 1)
        XCTAssertEqual(fetcher.fetches.withLock { $0 }, 5, "1 was evicted")
        XCTAssertLessThanOrEqual(reader.statistics.cachedBytes, 3000)
    }
}

extension ChunkReader {
    /// `read` as an array, for comparisons.
    func bytes(_ entry: ZarrTree.Entry, offset: UInt64, size: Int) async throws -> [UInt8] {
        Array(try await read(entry, offset: offset, size: size))
    }
}

final class LargeChunkTests: XCTestCase {
    func testALargeChunkIsReadInPartsAndAReadWaitsOnlyForItsOwn() async throws {
        let fetcher = MemoryFetcher()
        let chunk = ZarrTree.Entry(inode: 5, name: "0", content: .chunk(object: 0, offset: 500, length: 10_500))
        let reader = ChunkReader(
            objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 1 << 20,
            readahead: 2, neighbour: { _ in nil }, partSize: 1000)
        // a read inside part 3 fetches part 3 and starts the parts after it
        let middle = try await reader.bytes(chunk, offset: 3100, size: 200)
        XCTAssertEqual(middle, Array(fetcher.data[3600..<3800]))
        XCTAssertEqual(reader.statistics.misses, 1)
        XCTAssertEqual(reader.statistics.readahead, 4, "at least 4 parts ahead")
        // a read across parts 4 and 5 is stitched from both, and they were already on their way
        let across = try await reader.bytes(chunk, offset: 4900, size: 300)
        XCTAssertEqual(across, Array(fetcher.data[5400..<5700]))
        XCTAssertEqual(reader.statistics.misses, 1)
        // the short last part and a read clipped at the end of the file
        let last = try await reader.bytes(chunk, offset: 10_400, size: 1000)
        XCTAssertEqual(last, Array(fetcher.data[10_900..<11_000]))
        let whole = try await reader.bytes(chunk, offset: 0, size: 20_000)
        XCTAssertEqual(whole, Array(fetcher.data[500..<11_000]))
        XCTAssertEqual(reader.statistics.bytesFetched, 10_500, "every byte fetched once")
        XCTAssertEqual(reader.statistics.errors, 0)
    }
}

final class ReadaheadBudgetTests: XCTestCase {
    func testReadaheadKeepsGoingWhenTheCacheIsFullButBoundsWhatIsInFlight() async throws {
        let fetcher = MemoryFetcher()
        let chunks = (0..<80).map { i in
            ZarrTree.Entry(inode: 100 + UInt64(i), name: "\(i)", content: .chunk(object: 0, offset: UInt64(i) * 1000, length: 1000))
        }
        // 8 KB of cache: full after 8 chunks; at most 2 KB (a quarter) on the way ahead
        let reader = ChunkReader(
            objects: [ObjectInfo(url: "o", size: 100_000)], fetcher: fetcher, cacheBytes: 8000,
            readahead: 8, neighbour: { inode in inode >= 100 && inode < 180 ? chunks[Int(inode - 100)] : nil })
        for i in 0..<80 {
            let bytes = try await reader.bytes(chunks[i], offset: 0, size: 1000)
            XCTAssertEqual(bytes, Array(fetcher.data[(i * 1000)..<(i * 1000 + 1000)]), "chunk \(i)")
            XCTAssertLessThanOrEqual(reader.statistics.inFlight, 3)
        }
        XCTAssertLessThan(reader.statistics.misses, 20, "a reader far past the cache's size still finds its chunks fetched ahead")
        XCTAssertLessThanOrEqual(reader.statistics.cachedBytes, 8000)
    }

    func testRandomReadersOverALargeCacheDoNotMultiplyTheTraffic() async throws {
        let chunkLength: UInt64 = 1000
        let chunks = (0..<5000).map { i in
            ZarrTree.Entry(inode: 100 + UInt64(i), name: "\(i)", content: .chunk(object: 0, offset: UInt64(i) * chunkLength, length: chunkLength))
        }
        let reader = ChunkReader(
            objects: [ObjectInfo(url: "o", size: 5_000_000)], fetcher: SyntheticFetcher(), cacheBytes: 64 << 20,
            readahead: 8, neighbour: { inode in inode >= 100 && inode < 5100 ? chunks[Int(inode - 100)] : nil })
        // 32 readers, each reading 100 chunk files picked at random (seeded), whole.
        let served = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for readerIndex in 0..<32 {
                group.addTask {
                    var generator = SplitMix64(seed: UInt64(readerIndex) + 1)
                    var bytes: UInt64 = 0
                    for _ in 0..<100 {
                        let chunk = chunks[Int(generator.next() % UInt64(chunks.count))]
                        bytes += UInt64(try await reader.bytes(chunk, offset: 0, size: Int(chunkLength)).count)
                    }
                    return bytes
                }
            }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(served, 3200 * chunkLength)
        let fetched = reader.statistics.bytesFetched + UInt64(reader.statistics.inFlight) * chunkLength
        XCTAssertLessThanOrEqual(Double(fetched) / Double(served), 1.2, "fetched \(fetched) for \(served) served; readahead \(reader.statistics.readahead)")
    }
}

/// Chunk bytes computed from their offset, without a delay.
final class SyntheticFetcher: ChunkFetching {
    func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        [UInt8](repeating: UInt8(truncatingIfNeeded: offset / 1000), count: Int(length))
    }
}
