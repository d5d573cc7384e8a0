@testable import ByteSource
import Synchronization
import XCTest

/// An in-memory source that records every read it serves, optionally failing the first ones.
final class RecordingSource: RandomAccessSource {
    let name = "recording"
    let bytes: [UInt8]
    let reads = Mutex<[(offset: UInt64, length: Int)]>([])
    let failuresLeft: Mutex<Int>
    let delay: Duration

    init(size: Int, failures: Int = 0, delay: Duration = .zero) {
        bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        failuresLeft = Mutex(failures)
        self.delay = delay
    }

    struct Injected: Error {}

    func size() async throws -> UInt64 { UInt64(bytes.count) }

    func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        reads.withLock { $0.append((offset, length)) }
        if delay > .zero { try await Task.sleep(for: delay) }
        let fail = failuresLeft.withLock { left -> Bool in
            if left > 0 { left -= 1; return true }
            return false
        }
        if fail { throw Injected() }
        let start = Int(min(offset, UInt64(bytes.count)))
        return Array(bytes[start..<min(start + length, bytes.count)])
    }
}

final class BlockCacheTests: XCTestCase {
    private func policy(page: Int = 1024, first: Int = 1024) -> BlockCache<RecordingSource>.Policy {
        .init(pageSize: page, firstFetchSize: first, mergeGapPages: 1, maxCachedBytes: 1 << 20, batchingTurns: 4)
    }

    func testReturnsExactBytesAcrossPageBoundaries() async throws {
        let source = RecordingSource(size: 10_000)
        let cache = try await BlockCache.open(source, policy: policy())
        let got = try await cache.read(offset: 1000, length: 3000)
        XCTAssertEqual(got, Array(source.bytes[1000..<4000]))
        let tail = try await cache.read(offset: 9_990, length: 100)
        XCTAssertEqual(tail, Array(source.bytes[9_990..<10_000]), "a read past the end is cut at the end")
        let past = try await cache.read(offset: 20_000, length: 10)
        XCTAssertEqual(past, [])
    }

    func testCachedPagesAreNotFetchedAgain() async throws {
        let source = RecordingSource(size: 8192)
        let cache = try await BlockCache.open(source, policy: policy())
        _ = try await cache.read(offset: 0, length: 100)
        _ = try await cache.read(offset: 200, length: 100)
        _ = try await cache.read(offset: 1000, length: 20)
        XCTAssertEqual(source.reads.withLock { $0.count }, 1)
        XCTAssertEqual(cache.statistics.snapshot.requests, 3)
        XCTAssertEqual(cache.statistics.snapshot.sourceReads, 1)
    }

    func testPrefetchedNeighboursAreCoalescedIntoOneRequest() async throws {
        let source = RecordingSource(size: 64 * 1024)
        let cache = try await BlockCache.open(source, policy: policy())
        _ = try await cache.read(offset: 0, length: 10)  // the first fetch is special; get it out of the way
        let offsets: [UInt64] = [4096, 5120, 6144, 7168, 8192, 30_000]
        cache.prefetch(offsets.map { ByteRange(offset: $0, length: 100) })
        let results = try await withThrowingTaskGroup(of: (UInt64, [UInt8]).self) { group in
            for offset in offsets { group.addTask { (offset, try await cache.read(offset: offset, length: 100)) } }
            var all: [(UInt64, [UInt8])] = []
            for try await result in group { all.append(result) }
            return all
        }
        for (offset, bytes) in results { XCTAssertEqual(bytes, Array(source.bytes[Int(offset)..<Int(offset) + 100])) }
        let reads = source.reads.withLock { $0 }
        XCTAssertEqual(reads.count, 3, "one first fetch, one merged range and one distant page, not one per page: \(reads)")
        let later = reads.dropFirst().sorted { $0.offset < $1.offset }
        XCTAssertEqual(later.first?.offset, 4096)
        XCTAssertEqual(later.first?.length, 5 * 1024)
        XCTAssertEqual(later.last?.offset, 29_696)
    }

    func testConcurrentReadsOfOnePageShareOneFetch() async throws {
        let source = RecordingSource(size: 64 * 1024, delay: .milliseconds(20))
        let cache = try await BlockCache.open(source, policy: policy())
        _ = try await cache.read(offset: 0, length: 10)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 { group.addTask { _ = try await cache.read(offset: 10_000, length: 8) } }
            try await group.waitForAll()
        }
        XCTAssertEqual(source.reads.withLock { $0.count }, 2)
    }

    func testFailedFetchIsReportedAndCanBeRetried() async throws {
        let source = RecordingSource(size: 4096, failures: 1)
        let cache = try await BlockCache.open(source, policy: policy())
        do {
            _ = try await cache.read(offset: 0, length: 16)
            XCTFail("the injected failure must surface")
        } catch is RecordingSource.Injected {}
        let bytes = try await cache.read(offset: 0, length: 16)
        XCTAssertEqual(bytes, Array(source.bytes[0..<16]))
    }

    func testAFailedBatchFailsEveryReaderWaitingOnIt() async throws {
        let source = RecordingSource(size: 64 * 1024, failures: 1, delay: .milliseconds(20))
        let cache = try await BlockCache.open(source, policy: policy())
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<8 {
                group.addTask {
                    do { _ = try await cache.read(offset: UInt64(index * 100), length: 50); return true } catch { return false }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.filter { $0 }.count, 0, "readers that joined the failed fetch get its error, not bytes")
        XCTAssertEqual(source.reads.withLock { $0.count }, 1)
        let bytes = try await cache.read(offset: 300, length: 50)
        XCTAssertEqual(bytes, Array(source.bytes[300..<350]))
    }

    func testAPrefetchNobodyWaitsForStillLandsInTheCache() async throws {
        let source = RecordingSource(size: 64 * 1024)
        let cache = try await BlockCache.open(source, policy: policy())
        _ = try await cache.read(offset: 0, length: 10)
        let landing = try XCTUnwrap(cache.prefetchTask([ByteRange(offset: 20_000, length: 100)]), "the page was neither cached nor asked for")
        await landing.value
        let bytes = try await cache.read(offset: 20_010, length: 50)
        XCTAssertEqual(bytes, Array(source.bytes[20_010..<20_060]))
        XCTAssertEqual(source.reads.withLock { $0.count }, 2, "the read is served from the prefetched page")
    }

    func testRoundsCountDependentReadsNotConcurrentOnes() async throws {
        let source = RecordingSource(size: 1 << 20)
        let cache = try await BlockCache.open(source, policy: policy())
        let (_, sequential) = try await ReadRounds.measure {
            _ = try await cache.read(offset: 0, length: 10)
            _ = try await cache.read(offset: 100_000, length: 10)
            _ = try await cache.read(offset: 200_000, length: 10)
        }
        XCTAssertEqual(sequential, 3)
        let (_, concurrent) = try await ReadRounds.measure {
            _ = try await ReadRounds.concurrentMap([300_000, 400_000, 500_000, 600_000] as [UInt64]) { offset in
                try await cache.read(offset: offset, length: 10)
            }
        }
        XCTAssertEqual(concurrent, 1)
        let (_, cached) = try await ReadRounds.measure { _ = try await cache.read(offset: 5, length: 10) }
        XCTAssertLessThanOrEqual(cached, 1, "a cached page is ready at the round it was fetched in")
    }

    /// A read answered without waiting is the same read: the same bytes, counted, at the round
    /// its pages arrived in; bytes not cached are not fetched by it.
    func testReadWithoutWaitingAnswersOnlyFromTheCacheAndIsCounted() async throws {
        let source = RecordingSource(size: 10_000)
        let cache = try await BlockCache.open(source, policy: policy())
        XCTAssertNil(cache.readWithoutWaiting(offset: 0, length: 10))
        XCTAssertTrue(source.reads.withLock { $0.isEmpty }, "nothing is fetched for it")
        let (_, rounds) = try await ReadRounds.measure {
            _ = try await cache.read(offset: 0, length: 10)
            let (hit, hitRounds) = ReadRounds.$clock.withValue(RoundClock()) {
                (cache.readWithoutWaiting(offset: 100, length: 800), ReadRounds.clock!.current)
            }
            XCTAssertEqual(hit, Array(source.bytes[100..<900]))
            XCTAssertEqual(hitRounds, 1, "the round its pages arrived in")
        }
        XCTAssertEqual(rounds, 1)
        XCTAssertNil(cache.readWithoutWaiting(offset: 1000, length: 100), "the first fetch was one page: the second is not cached")
        XCTAssertEqual(cache.readWithoutWaiting(offset: 20_000, length: 10), [])
        XCTAssertEqual(cache.statistics.snapshot.requests, 3, "the read, the hit and the empty read past the end")
        XCTAssertEqual(source.reads.withLock { $0.count }, 1)
    }

    /// Bytes a listing fetched stand for the first fetch: read without a request, in round 1,
    /// with no read-ahead after them; a partial page that does not end the source is dropped.
    func testSeededBytesAreTheFirstFetch() async throws {
        let source = RecordingSource(size: 10_000)
        let cache = try await BlockCache.open(source, policy: policy(page: 1024, first: 4096))
        cache.seed(offset: 0, bytes: Array(source.bytes[0..<2500]))
        let (head, rounds) = try await ReadRounds.measure { try await cache.read(offset: 10, length: 2000) }
        XCTAssertEqual(head, Array(source.bytes[10..<2010]))
        XCTAssertEqual(rounds, 1)
        XCTAssertTrue(source.reads.withLock { $0.isEmpty })
        XCTAssertEqual(cache.statistics.snapshot.sourceReads, 1)
        XCTAssertEqual(cache.statistics.snapshot.bytesFetched, 2500)
        let (tail, later) = try await ReadRounds.measure { try await cache.read(offset: 2100, length: 100) }
        XCTAssertEqual(tail, Array(source.bytes[2100..<2200]))
        XCTAssertEqual(later, 1)
        XCTAssertEqual(source.reads.withLock { $0.map(\.offset) }, [2048], "the dropped partial page, alone: no read-ahead")

        let small = RecordingSource(size: 700)
        let whole = try await BlockCache.open(small, policy: policy(page: 512, first: 4096))
        whole.seed(offset: 0, bytes: small.bytes)
        let all = try await whole.read(offset: 0, length: 700)
        XCTAssertEqual(all, small.bytes)
        XCTAssertTrue(small.reads.withLock { $0.isEmpty }, "a partial last page that ends the source is kept")
    }
}

final class FileSourceTests: XCTestCase {
    func testReadsRangesAndReportsMissingFiles() async throws {
        let path = NSTemporaryDirectory() + "/zarrmount-filesource-\(getpid())"
        let content = (0..<5000).map { UInt8($0 % 251) }
        FileManager.default.createFile(atPath: path, contents: Data(content))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = try FileSource(path: path)
        let size = try await source.size()
        XCTAssertEqual(size, 5000)
        let middle = try await source.read(offset: 4000, length: 2000)
        XCTAssertEqual(middle, Array(content[4000..<5000]))
        XCTAssertThrowsError(try FileSource(path: path + ".missing")) { error in
            XCTAssertTrue("\(error)".contains(".missing"), "the error names the file: \(error)")
        }
    }
}

final class SerialTaskExecutorTests: XCTestCase {
    private final class Tally: Sendable {
        let running = Atomic<Int>(0)
        let mostAtOnce = Atomic<Int>(0)
        let steps = Atomic<Int>(0)

        func step() {
            let now = running.add(1, ordering: .sequentiallyConsistent).newValue
            _ = mostAtOnce.max(now, ordering: .sequentiallyConsistent)
            var spin = 0
            for i in 0..<20_000 { spin &+= i }  // long enough for a second thread to come in
            precondition(spin != 1)
            running.subtract(1, ordering: .sequentiallyConsistent)
            steps.add(1, ordering: .relaxed)
        }

        func work(_ index: Int) async throws {
            for turn in 0..<10 {
                step()
                if (index + turn) % 3 == 0 { try await Task.sleep(for: .milliseconds(1)) } else { await Task.yield() }
            }
        }
    }

    /// Child tasks, `async let`, unstructured tasks started with `SerialTaskExecutor.current`,
    /// and tasks resuming after a sleep (woken from another thread) all run on the file's
    /// executor, one job at a time, and all of them run.
    func testAFilesTasksRunOneAtATime() async throws {
        let tally = Tally()
        let sawExecutor = try await SerialTaskExecutor.run { () async throws -> Bool in
            let unstructured = (0..<8).map { index in
                Task(executorPreference: SerialTaskExecutor.current) { try await tally.work(100 + index) }
            }
            async let side: Void = tally.work(200)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<32 { group.addTask { try await tally.work(index) } }
                try await group.waitForAll()
            }
            try await side
            for task in unstructured { try await task.value }
            return SerialTaskExecutor.current != nil
        }
        XCTAssertTrue(sawExecutor)
        XCTAssertEqual(tally.steps.load(ordering: .relaxed), (32 + 1 + 8) * 10)
        XCTAssertEqual(tally.mostAtOnce.load(ordering: .relaxed), 1, "two of one file's jobs ran at once")
    }
}
