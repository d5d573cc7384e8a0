import TestSupport
import XCTest

@testable import ZarrFS

/// The chunk cache's and readahead's decisions, driven without fetchers or tasks. The random
/// runs hold the plan against a plain reference model of an LRU cache after every event.
final class ChunkCachePlanTests: XCTestCase {
    typealias Key = ChunkCachePlan.Key
    typealias Unit = ChunkCachePlan.Unit

    /// Chunk file `inode` (1...) is one stored chunk of `size` bytes at `inode * 1000`.
    private func unit(_ inode: UInt64, size: UInt64 = 100) -> Unit {
        Unit(key: Key(inode: inode, part: 0), object: 0, offset: inode * 1000, length: size, decoding: nil, chunkLength: size)
    }

    func testAMissStartsOneFetchThatOthersJoinAndAHitAnswersFromMemory() {
        var plan = ChunkCachePlan(budget: 10_000, readahead: 0, partSize: 1 << 20)
        let (first, starts) = plan.request(unit(3), parts: 1, firstUnit: { _ in nil })
        XCTAssertEqual(first, .wait(Key(inode: 3, part: 0)))
        XCTAssertEqual(starts, [unit(3)])
        let (second, none) = plan.request(unit(3), parts: 1, firstUnit: { _ in nil })
        XCTAssertEqual(second, .wait(Key(inode: 3, part: 0)))
        XCTAssertEqual(none, [], "a fetch in flight is joined, not started again")
        plan.finished(Key(inode: 3, part: 0), bytes: [7, 7])
        XCTAssertEqual(plan.request(unit(3), parts: 1, firstUnit: { _ in nil }).0, .cached([7, 7]))
        XCTAssertEqual(plan.statistics.misses, 1)
        XCTAssertEqual(plan.statistics.joined, 1)
        XCTAssertEqual(plan.statistics.hits, 1)
        XCTAssertEqual(plan.statistics.bytesFetched, 100)
        XCTAssertEqual(plan.statistics.inFlight, 0)
    }

    func testSequentialReadersGetReadaheadForwardAndBackwardAndRandomOnesNone() {
        var plan = ChunkCachePlan(budget: 1 << 20, readahead: 3, partSize: 1 << 20)
        let files: (UInt64) -> Unit? = { $0 <= 20 ? self.unit($0) : nil }
        XCTAssertEqual(plan.request(unit(5), parts: 1, firstUnit: files).1.map(\.key.inode), [5])
        // 6 right after 5: a sequential reader; 7, 8, 9 are fetched ahead.
        XCTAssertEqual(plan.request(unit(6), parts: 1, firstUnit: files).1.map(\.key.inode), [6, 7, 8, 9])
        // 7 is on its way: joined; 10 keeps the window three ahead.
        XCTAssertEqual(plan.request(unit(7), parts: 1, firstUnit: files).1.map(\.key.inode), [10])
        // Backwards from 15 (after 16): 14, 13, 12.
        _ = plan.request(unit(16), parts: 1, firstUnit: files)
        XCTAssertEqual(plan.request(unit(15), parts: 1, firstUnit: files).1.map(\.key.inode), [15, 14, 13, 12])

        var random = ChunkCachePlan(budget: 1 << 20, readahead: 3, partSize: 1 << 20)
        for inode: UInt64 in [40, 3, 90, 17, 55] {
            XCTAssertEqual(random.request(unit(inode), parts: 1, firstUnit: { self.unit($0) }).1.map(\.key.inode), [inode])
        }
        XCTAssertEqual(random.statistics.readahead, 0)
    }

    func testTheReadaheadWindowGrowsWithASequentialRunUpToEightTimesAndRandomReadsDoNotGrowIt() {
        var plan = ChunkCachePlan(budget: 1 << 30, readahead: 2, partSize: 1 << 20)
        XCTAssertEqual((1...7).map { plan.readaheadWindow(run: $0) }, [2, 2, 4, 4, 8, 8, 16])
        XCTAssertEqual(plan.readaheadWindow(run: 10_000), 16, "at most eight times --readahead")
        XCTAssertEqual(ChunkCachePlan(budget: 1 << 30, readahead: 0, partSize: 1 << 20).readaheadWindow(run: 50), 0)

        // One reader through 60 chunk files in order, each fetch landing before the next read:
        // how far ahead of the reader the fetches reach after each read.
        let files: (UInt64) -> Unit? = { $0 <= 60 ? self.unit($0) : nil }
        var reach: [UInt64] = []
        var furthest: UInt64 = 0
        for inode: UInt64 in 1...40 {
            let (_, starts) = plan.request(unit(inode), parts: 1, firstUnit: files)
            for start in starts {
                furthest = max(furthest, start.key.inode)
                plan.finished(start.key, bytes: [1])
            }
            reach.append(furthest - inode)
        }
        XCTAssertEqual(Array(reach.prefix(8)), [0, 2, 4, 4, 8, 8, 16, 16])
        XCTAssertEqual(reach.max(), 16)
        XCTAssertEqual(reach[20], 16, "the window stays open while the reader goes on")

        // Random readers that happen to hit a neighbour now and then keep the base window.
        var random = ChunkCachePlan(budget: 1 << 30, readahead: 2, partSize: 1 << 20)
        var fetchedAhead = 0
        for inode: UInt64 in [50, 51, 9, 30, 31, 70, 12, 13, 90] {
            fetchedAhead += random.request(unit(inode), parts: 1, firstUnit: { self.unit($0) }).1.count - 1
        }
        XCTAssertEqual(fetchedAhead, 0 + 2 + 0 + 0 + 2 + 0 + 0 + 2 + 0)
    }

    func testReadaheadStopsAtAQuarterOfTheBudgetInFlight() {
        var plan = ChunkCachePlan(budget: 1000, readahead: 8, partSize: 1 << 20)
        let files: (UInt64) -> Unit? = { self.unit($0, size: 100) }
        _ = plan.request(unit(1), parts: 1, firstUnit: files)
        let (_, starts) = plan.request(unit(2), parts: 1, firstUnit: files)
        // 200 bytes already in flight, a quarter of 1000 is 250: one more 100-byte fetch.
        XCTAssertEqual(starts.map(\.key.inode), [2, 3])
        XCTAssertEqual(plan.inFlightBytes, 300)
    }

    /// The order in which xarray + dask (2 threads) read T2's 365 daily chunk files for
    /// `ds.T2.mean("Time")` through a mount, recorded with strace: runs of chunk indices, each
    /// read backwards, in blocks of its own order.
    private let daskMeanOrder: [UInt64] = [
        (255, 240), (207, 192), (239, 208), (63, 48), (39, 32), (47, 40), (31, 12), (9, 8), (11, 10), (7, 0), (127, 64), (159, 128),
        (191, 160), (319, 256), (351, 320), (363, 352), (364, 364),
    ].flatMap { (high: UInt64, low: UInt64) in (low...high).reversed().map { $0 + 1 } }

    /// Replays `order` over chunk files 1...365 (one array) with each fetch landing `latency`
    /// reads after it starts; returns the reads that had to wait and the fetches started.
    private func replay(_ order: [UInt64], sweeping: Bool, latency: Int = 7, budget: Int = 1 << 30) -> (waits: Int, fetches: [UInt64]) {
        var plan = ChunkCachePlan(budget: budget, readahead: 8, partSize: 1 << 20)
        let files: (UInt64) -> Unit? = { (1...365).contains($0) ? self.unit($0) : nil }
        let chunkFiles: (UInt64) -> ClosedRange<UInt64>? = { sweeping && (1...365).contains($0) ? 1...365 : nil }
        var landing: [(at: Int, key: Key)] = []
        var waits = 0
        var fetches: [UInt64] = []
        for (time, inode) in order.enumerated() {
            for arrived in landing where arrived.at <= time { plan.finished(arrived.key, bytes: [1]) }
            landing.removeAll { $0.at <= time }
            let (answer, starts) = plan.request(unit(inode), parts: 1, firstUnit: files, chunkFiles: chunkFiles)
            if case .wait = answer { waits += 1 }
            for start in starts {
                fetches.append(start.key.inode)
                landing.append((time + latency, start.key))
            }
        }
        return (waits, fetches)
    }

    func testAReaderGoingThroughAnArrayInDasksBlocksHasTheRestOfItSweptAhead() {
        XCTAssertEqual(daskMeanOrder.count, 365)
        XCTAssertEqual(Set(daskMeanOrder), Set(1...365))
        let chunkwise = replay(daskMeanOrder, sweeping: false)
        let swept = replay(daskMeanOrder, sweeping: true)
        // Readahead alone: every block's start is a miss, and its next reads wait for the window.
        XCTAssertGreaterThanOrEqual(chunkwise.waits, 50)
        XCTAssertLessThanOrEqual(swept.waits, 20, "once an eighth of the array is read in runs, the rest is on its way")
        for run in [chunkwise, swept] {
            XCTAssertEqual(run.fetches.count, 365, "each chunk file is fetched once")
            XCTAssertEqual(Set(run.fetches), Set(1...365))
        }
    }

    func testRandomReadersAndArraysTooLargeForTheCacheAreNotSwept() {
        // Every chunk file once, in an order with no run of eight: nothing is fetched ahead of
        // what readers ask for, beyond runs of two or three.
        var random = SplitMix64(seed: 7)
        var order = Array(UInt64(1)...365)
        for index in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(index, Int(random.next() % UInt64(index + 1))) }
        let scattered = replay(order, sweeping: true)
        let unswept = replay(order, sweeping: false)
        XCTAssertEqual(scattered.fetches, unswept.fetches, "random readers never sweep")
        // The blocks of a reduction over an array whose chunks would fill more than half the
        // cache (365 chunks of 100 bytes, a budget of 60,000 bytes) are read ahead, not swept.
        XCTAssertEqual(replay(daskMeanOrder, sweeping: true, budget: 60_000).fetches, replay(daskMeanOrder, sweeping: false, budget: 60_000).fetches)
    }

    func testAPartOfALargeChunkFetchesTheNextPartsAhead() {
        var plan = ChunkCachePlan(budget: 1 << 30, readahead: 2, partSize: 100)
        let part0 = Unit(key: Key(inode: 9, part: 0), object: 1, offset: 5000, length: 100, decoding: nil, chunkLength: 950)
        let (_, starts) = plan.request(part0, parts: 10, firstUnit: { _ in nil })
        XCTAssertEqual(starts.map(\.key.part), [0, 1, 2, 3, 4], "at least four parts ahead")
        XCTAssertEqual(starts.last, Unit(key: Key(inode: 9, part: 4), object: 1, offset: 5400, length: 100, decoding: nil, chunkLength: 950))
        let part8 = Unit(key: Key(inode: 9, part: 8), object: 1, offset: 5800, length: 100, decoding: nil, chunkLength: 950)
        let (_, tail) = plan.request(part8, parts: 10, firstUnit: { _ in nil })
        XCTAssertEqual(tail.map(\.length), [100, 50], "the last part is what is left of the chunk")
    }

    func testAnAssemblyIsStartedOnceAndJoined() {
        var plan = ChunkCachePlan(budget: 1 << 20, readahead: 0, partSize: 1 << 20)
        let key = Key(inode: 4, part: 0)
        XCTAssertTrue(plan.requestAssembled(key).start)
        XCTAssertEqual(plan.requestAssembled(key).answer, .wait(key))
        XCTAssertFalse(plan.requestAssembled(key).start)
        plan.finished(key, bytes: [1, 2, 3])
        XCTAssertEqual(plan.requestAssembled(key).answer, .cached([1, 2, 3]))
        XCTAssertEqual(plan.statistics.bytesFetched, 0, "assembling counts its source chunks, not itself")
    }

    func testRandomEventsAgreeWithAReferenceLRUAndKeepEveryInvariant() {
        var random = SplitMix64(seed: 20)
        for run in 0..<200 {
            let budget = Int(random.next() % 3000) + 100
            let readahead = Int(random.next() % 4)
            var plan = ChunkCachePlan(budget: budget, readahead: readahead, partSize: 1 << 20)
            let files = UInt64(random.next() % 30) + 2
            let sizes = (0...files).map { _ in UInt64(random.next() % 400) + 1 }
            let firstUnit: (UInt64) -> Unit? = { $0 >= 1 && $0 <= files ? self.unit($0, size: sizes[Int($0)]) : nil }
            // The reference: keys in use order (oldest first) with their sizes; what is in flight.
            var lru: [(Key, Int)] = []
            var inFlight: Set<Key> = []
            var requests = 0
            for step in 0..<300 {
                let where_ = "run \(run) step \(step)"
                if inFlight.isEmpty || random.next() % 3 != 0 {
                    // A reader: the next file most of the time (sequential), else any.
                    let inode = random.next() % 4 == 0 ? UInt64(random.next() % files) + 1 : UInt64(step % Int(files)) + 1
                    requests += 1
                    let (answer, starts) = plan.request(unit(inode, size: sizes[Int(inode)]), parts: 1, firstUnit: firstUnit)
                    let key = Key(inode: inode, part: 0)
                    if let index = lru.firstIndex(where: { $0.0 == key }) {
                        XCTAssertEqual(answer, .cached([UInt8](repeating: UInt8(inode), count: lru[index].1)), where_)
                        lru.append(lru.remove(at: index))
                    } else {
                        XCTAssertEqual(answer, .wait(key), where_)
                    }
                    for start in starts {
                        XCTAssertFalse(inFlight.contains(start.key), "\(where_): \(start.key) started twice")
                        XCTAssertFalse(lru.contains { $0.0 == start.key }, "\(where_): \(start.key) is cached, yet fetched")
                        inFlight.insert(start.key)
                    }
                    XCTAssertLessThanOrEqual(inFlight.count, ChunkCachePlan.maxInFlight, where_)
                } else {
                    // A fetch ends, now and then failing.
                    let key = inFlight.randomElement(using: &random)!
                    inFlight.remove(key)
                    if random.next() % 8 == 0 {
                        plan.finished(key, bytes: nil)
                    } else {
                        let size = Int(sizes[Int(key.inode)])
                        plan.finished(key, bytes: [UInt8](repeating: UInt8(key.inode), count: size))
                        if size <= budget {
                            lru.append((key, size))
                            while lru.reduce(0, { $0 + $1.1 }) > budget { lru.removeFirst() }
                        }
                    }
                }
                XCTAssertEqual(plan.cachedKeys, Set(lru.map(\.0)), "\(where_): the cache holds what an LRU of \(budget) bytes would")
                XCTAssertEqual(plan.statistics.cachedBytes, lru.reduce(0) { $0 + $1.1 }, where_)
                XCTAssertLessThanOrEqual(plan.statistics.cachedBytes, budget, where_)
                XCTAssertEqual(Set(plan.inFlight.keys), inFlight, where_)
                XCTAssertEqual(plan.statistics.inFlight, inFlight.count, where_)
            }
            XCTAssertEqual(plan.statistics.hits + plan.statistics.misses + plan.statistics.joined, requests, "run \(run)")
        }
    }
}
