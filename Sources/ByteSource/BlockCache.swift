import Logging
import Synchronization

/// A page cache in front of a slow source that turns many small metadata reads into a few large
/// ones.
///
/// Three things cut round trips and requests:
/// - the first fetch is large (`firstFetchSize`): the superblock, root group and most object
///   headers of a netCDF file sit together at its start;
/// - pages already fetched (or in flight) are never fetched again, so concurrent readers of the
///   same neighbourhood share one request;
/// - missing pages requested by concurrent readers in the same scheduling turn are batched, and
///   neighbours (gaps up to `mergeGapPages`) are merged into one ranged read.
public final class BlockCache<Base: RandomAccessSource>: RandomAccessSource {
    public struct Policy: Sendable, Equatable {
        public var pageSize: Int
        public var firstFetchSize: Int
        /// Missing pages separated by at most this many cached pages are fetched as one range.
        public var mergeGapPages: Int
        /// Above this the loaded pages are dropped; a file's metadata rarely comes close.
        public var maxCachedBytes: Int
        /// Scheduler turns a batch waits for concurrent readers to join before it is sent.
        public var batchingTurns: Int

        public init(
            pageSize: Int = 512, firstFetchSize: Int = 16 * 1024, mergeGapPages: Int = 8,
            maxCachedBytes: Int = 64 * 1024 * 1024, batchingTurns: Int = 3
        ) {
            precondition(pageSize > 0 && pageSize & (pageSize - 1) == 0, "page size must be a power of two")
            self.pageSize = pageSize
            self.firstFetchSize = max(firstFetchSize, pageSize)
            self.mergeGapPages = max(0, mergeGapPages)
            self.maxCachedBytes = maxCachedBytes
            self.batchingTurns = max(0, batchingTurns)
        }
    }

    public let base: Base
    public let policy: Policy
    public let statistics: ReadStatistics
    public var name: String { base.name }

    private let sourceSize: UInt64
    private let state = Mutex(BlockCacheState())

    private let logger: Logger?

    public init(
        _ base: Base, size: UInt64, policy: Policy = Policy(), statistics: ReadStatistics = ReadStatistics(),
        logger: Logger? = nil
    ) {
        self.base = base
        self.sourceSize = size
        self.policy = policy
        self.statistics = statistics
        self.logger = logger
    }

    public static func open(
        _ base: Base, policy: Policy = Policy(), statistics: ReadStatistics = ReadStatistics(),
        logger: Logger? = nil
    ) async throws -> BlockCache {
        BlockCache(base, size: try await base.size(), policy: policy, statistics: statistics, logger: logger)
    }

    public func size() async throws -> UInt64 { sourceSize }

    public func readWithoutWaiting(offset: UInt64, length: Int) -> [UInt8]? {
        guard length >= 0 else { return nil }
        guard offset < sourceSize, length > 0 else {
            statistics.record { $0.requests += 1 }
            return []
        }
        let clock = ReadRounds.clock
        guard
            let hit = loadedCopy(
                offset: offset, end: offset + min(UInt64(length), sourceSize - offset),
                issueRound: clock?.current ?? 0)
        else { return nil }
        statistics.record { $0.requests += 1 }
        clock?.advance(to: hit.readyRound)
        return hit.bytes
    }

    public func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        guard length >= 0 else { throw ByteSourceError(.invalidRange, source: name, offset: offset, length: length) }
        // Most reads land on pages already loaded: copy them under the lock, with no
        // bookkeeping beyond the copy.
        if let hit = readWithoutWaiting(offset: offset, length: length) { return hit }
        statistics.record { $0.requests += 1 }
        let end = offset + min(UInt64(length), sourceSize - offset)
        let pageSize = UInt64(policy.pageSize)
        let firstPage = offset / pageSize
        let lastPage = (end - 1) / pageSize
        let clock = ReadRounds.clock
        let issueRound = clock?.current ?? 0

        var pageBytes = [UInt64: ArraySlice<UInt8>]()
        var waits: [BlockCacheBatch] = []
        var readyRound = issueRound
        let opened = state.withLock { state -> BlockCacheBatch? in
            var opened: BlockCacheBatch?
            claim(
                firstPage...lastPage, issueRound: issueRound, state: &state, hits: &pageBytes, waits: &waits, readyRound: &readyRound,
                opened: &opened)
            return opened
        }
        // Fetching here rather than in a task of its own saves two thread hops per miss.
        if let opened { await run(opened) }

        for batch in waits {
            let (pages, round) = try await batch.wait()
            readyRound = max(readyRound, round)
            // A batch holds every page of its round (often hundreds); look up this read's few.
            for index in firstPage...lastPage where pageBytes[index] == nil {
                if let bytes = pages[index] { pageBytes[index] = bytes }
            }
        }
        clock?.advance(to: readyRound)

        var out = [UInt8]()
        out.reserveCapacity(Int(end - offset))
        var position = offset
        while position < end {
            let page = position / pageSize
            guard let bytes = pageBytes[page] else {
                throw ByteSourceError(.outOfRange, source: name, offset: position, length: Int(end - position))
            }
            let within = Int(position - page * pageSize)
            let take = min(bytes.count - within, Int(end - position))
            if take <= 0 { throw ByteSourceError(.outOfRange, source: name, offset: position, length: Int(end - position)) }
            let start = bytes.startIndex + within
            out.append(contentsOf: bytes[start..<(start + take)])
            position += UInt64(take)
        }
        return out
    }

    /// Takes bytes of the source fetched elsewhere (a listing that read each object's start),
    /// as if they were this cache's first fetch: they arrived in round 1, and no read-ahead
    /// follows. A partial last page is dropped unless it ends the source.
    public func seed(offset: UInt64, bytes: [UInt8]) {
        let pageSize = UInt64(policy.pageSize)
        guard offset % pageSize == 0, offset < sourceSize, !bytes.isEmpty else { return }
        let usable = min(UInt64(bytes.count), sourceSize - offset)
        statistics.record {
            $0.sourceReads += 1
            $0.bytesFetched += usable
        }
        state.withLock { state in
            state.fetchedAnything = true
            var start: UInt64 = 0
            while start < usable {
                let end = min(start + pageSize, usable)
                guard end - start == pageSize || offset + end == sourceSize else { break }
                let page = (offset + start) / pageSize
                if state.loaded[page] == nil, state.loading[page] == nil {
                    state.loaded[page] = LoadedPage(bytes: bytes[Int(start)..<Int(end)], readyRound: 1)
                    state.cachedBytes += Int(end - start)
                }
                start = end
            }
        }
    }

    /// A copy of `offset..<end` when every page of it is loaded, with the round the last of
    /// them arrived in.
    private func loadedCopy(offset: UInt64, end: UInt64, issueRound: Int) -> (bytes: [UInt8], readyRound: Int)? {
        let pageSize = UInt64(policy.pageSize)
        return state.withLock { state -> (bytes: [UInt8], readyRound: Int)? in
            var readyRound = issueRound
            var out = [UInt8]()
            var position = offset
            while position < end {
                let page = position / pageSize
                guard let loaded = state.loaded[page] else { return nil }
                let within = Int(position - page * pageSize)
                let take = min(loaded.bytes.count - within, Int(end - position))
                guard take > 0 else { return nil }
                if out.isEmpty { out.reserveCapacity(Int(end - offset)) }
                let start = loaded.bytes.startIndex + within
                out.append(contentsOf: loaded.bytes[start..<(start + take)])
                readyRound = max(readyRound, loaded.readyRound)
                position += UInt64(take)
            }
            return (out, readyRound)
        }
    }

    /// Starts fetching `ranges` in one batch (neighbours merged into single reads) without
    /// waiting; later reads of these bytes join the fetch. Callers that know several addresses
    /// at once (all children of a group) use it so coalescing does not depend on scheduling.
    public func prefetch(_ ranges: [ByteRange]) {
        prefetchTask(ranges)
    }

    /// `prefetch`, returning the task that fetches the pages nobody had asked for yet (nil when
    /// every page is cached or on its way), so a caller can wait for them to land.
    @discardableResult
    func prefetchTask(_ ranges: [ByteRange]) -> Task<Void, Never>? {
        let issueRound = ReadRounds.clock?.current ?? 0
        let pageSize = UInt64(policy.pageSize)
        var ignoredHits = [UInt64: ArraySlice<UInt8>]()
        var ignoredWaits: [BlockCacheBatch] = []
        var ignoredRound = 0
        let opened = state.withLock { state -> BlockCacheBatch? in
            var opened: BlockCacheBatch?
            for range in ranges where range.length > 0 && range.offset < sourceSize {
                let end = range.offset + min(UInt64(range.length), sourceSize - range.offset)
                claim(
                    (range.offset / pageSize)...((end - 1) / pageSize), issueRound: issueRound, state: &state,
                    hits: &ignoredHits, waits: &ignoredWaits, readyRound: &ignoredRound, opened: &opened, collectHits: false)
            }
            return opened
        }
        guard let opened else { return nil }
        return Task(executorPreference: SerialTaskExecutor.current) { await self.run(opened) }
    }

    /// For each page: a cached copy, a fetch in flight to join, or a place in the open batch.
    /// `opened` receives a batch this call created; the caller must `run` it.
    private func claim(
        _ pages: ClosedRange<UInt64>, issueRound: Int, state: inout BlockCacheState, hits: inout [UInt64: ArraySlice<UInt8>],
        waits: inout [BlockCacheBatch], readyRound: inout Int, opened: inout BlockCacheBatch?, collectHits: Bool = true
    ) {
        let pageSize = UInt64(policy.pageSize)
        var joined: [BlockCacheBatch] = []
        var added: [UInt64] = []
        for page in pages {
            if let hit = state.loaded[page] {
                if collectHits {
                    hits[page] = hit.bytes
                    readyRound = max(readyRound, hit.readyRound)
                }
            } else if let batch = state.loading[page] {
                if !joined.contains(where: { $0 === batch }) { joined.append(batch) }
            } else {
                added.append(page)
                if !state.fetchedAnything {
                    // The first fetch reads ahead: a file's metadata clusters at its start.
                    state.fetchedAnything = true
                    let extra = UInt64(policy.firstFetchSize) / pageSize
                    var ahead = page + 1
                    while ahead < page + extra, ahead * pageSize < sourceSize {
                        if state.loaded[ahead] == nil && state.loading[ahead] == nil { added.append(ahead) }
                        ahead += 1
                    }
                }
            }
        }
        if !added.isEmpty {
            let batch: BlockCacheBatch
            if let open = state.open {
                batch = open
            } else {
                batch = BlockCacheBatch()
                state.open = batch
                opened = batch
            }
            for page in added { state.loading[page] = batch }
            batch.content.withLock { $0.pages.formUnion(added) }
            if !joined.contains(where: { $0 === batch }) { joined.append(batch) }
        }
        for batch in joined {
            batch.content.withLock { $0.latestIssueRound = max($0.latestIssueRound, issueRound) }
            if !waits.contains(where: { $0 === batch }) { waits.append(batch) }
        }
    }

    /// Lets concurrent readers join the batch for a few scheduler turns, then fetches it and
    /// hands the pages to everyone waiting.
    private func run(_ batch: BlockCacheBatch) async {
        for _ in 0..<policy.batchingTurns { await Task.yield() }
        let (pages, issueRound) = state.withLock { state -> (Set<UInt64>, Int) in
            if state.open === batch { state.open = nil }
            return batch.content.withLock { ($0.pages, $0.latestIssueRound) }
        }
        let readyRound = issueRound + 1
        logger?.trace(
            "fetching pages",
            metadata: [
                "source": "\(name)", "round": "\(readyRound)",
                "pages": "\(pages.sorted().map { $0 * UInt64(policy.pageSize) })",
            ])
        do {
            let fetched = try await fetch(pages: pages.sorted())
            state.withLock { state in
                state.loaded.reserveCapacity(state.loaded.count + fetched.count)
                for (index, bytes) in fetched {
                    state.loaded[index] = LoadedPage(bytes: bytes, readyRound: readyRound)
                    state.cachedBytes += bytes.count
                }
                for index in pages where state.loading[index] === batch { state.loading[index] = nil }
                if state.cachedBytes > policy.maxCachedBytes {
                    state.loaded.removeAll(keepingCapacity: false)
                    state.cachedBytes = 0
                }
            }
            batch.finish(.success((fetched, readyRound)))
        } catch {
            state.withLock { state in for index in pages where state.loading[index] === batch { state.loading[index] = nil } }
            batch.finish(.failure(error))
        }
    }

    /// Fetches sorted page indices as few ranges as the merge gap allows, all handed to the
    /// source at once (one multi-range request where it can). Pages are slices of their range's
    /// one buffer: no copy per page.
    private func fetch(pages: [UInt64]) async throws -> [UInt64: ArraySlice<UInt8>] {
        guard !pages.isEmpty else { return [:] }
        var ranges: [(first: UInt64, last: UInt64)] = []
        for page in pages {
            if let last = ranges.last, page <= last.last + UInt64(policy.mergeGapPages) + 1 {
                ranges[ranges.count - 1].last = page
            } else {
                ranges.append((page, page))
            }
        }
        let pageSize = UInt64(policy.pageSize)
        let requests = ranges.map { range in
            ByteRange(offset: range.first * pageSize, length: Int(min((range.last - range.first + 1) * pageSize, sourceSize - range.first * pageSize)))
        }
        let fetched = try await base.read(ranges: requests)
        guard fetched.count == ranges.count else {
            throw ByteSourceError(.outOfRange, source: name, offset: requests.first?.offset ?? 0, length: requests.first?.length ?? 0)
        }
        statistics.record {
            $0.sourceReads += ranges.count
            $0.bytesFetched += UInt64(fetched.reduce(0) { $0 + $1.count })
        }
        var split = [UInt64: ArraySlice<UInt8>]()
        split.reserveCapacity(pages.count)
        for (range, bytes) in zip(ranges, fetched) {
            var page = range.first
            while page <= range.last {
                let from = Int((page - range.first) * pageSize)
                if from >= bytes.count { break }
                split[page] = bytes[from..<min(from + Int(pageSize), bytes.count)]
                page += 1
            }
        }
        return split
    }

    /// Records the deepest round any reader reached, for reports.
    public func noteRounds(_ rounds: Int) {
        statistics.record { $0.rounds = max($0.rounds, rounds) }
    }
}

// The cache's state types are not nested in the generic class: nested, they are generic too,
// and every dictionary operation on them looked up their metadata at run time.
fileprivate struct BlockCacheState {
    var loaded: [UInt64: LoadedPage] = [:]
    var loading: [UInt64: BlockCacheBatch] = [:]
    var open: BlockCacheBatch?
    var cachedBytes = 0
    var fetchedAnything = false
}

fileprivate struct LoadedPage {
    var bytes: ArraySlice<UInt8>
    var readyRound: Int
}

/// Pages requested in one scheduling turn, fetched together. The reader that opened it
/// fetches it in its own task (a prefetch opens it in a new one); readers that join wait.
fileprivate final class BlockCacheBatch: Sendable {
    typealias Outcome = Result<(pages: [UInt64: ArraySlice<UInt8>], readyRound: Int), any Error>
    struct Content {
        var pages: Set<UInt64> = []
        var latestIssueRound = 0
        var outcome: Outcome?
        var waiters: [CheckedContinuation<(pages: [UInt64: ArraySlice<UInt8>], readyRound: Int), any Error>] = []
    }
    let content = Mutex(Content())

    func wait() async throws -> (pages: [UInt64: ArraySlice<UInt8>], readyRound: Int) {
        if let done = content.withLock({ $0.outcome }) { return try done.get() }
        return try await withCheckedThrowingContinuation { continuation in
            let done = content.withLock { content -> Outcome? in
                if let outcome = content.outcome { return outcome }
                content.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(with: done) }
        }
    }

    func finish(_ outcome: Outcome) {
        let waiters = content.withLock { content in
            content.outcome = outcome
            defer { content.waiters = [] }
            return content.waiters
        }
        for waiter in waiters { waiter.resume(with: outcome) }
    }
}

extension BlockCache where Base == FileSource {
    /// `read` of a local file through a page cache of the default policy, with what it cost
    /// (`inspect` and `verify` report both). The read policy is the byte layer's; the reader
    /// (the HDF5 parser) only asks for bytes.
    public static func measuring<Result: Sendable>(
        path: String, logger: Logger? = nil, _ read: (BlockCache<FileSource>) async throws -> Result
    ) async throws -> (Result, ReadCounters) {
        let cache = try await BlockCache.open(try FileSource(path: path), logger: logger)
        let (result, rounds) = try await ReadRounds.measure { try await read(cache) }
        cache.noteRounds(rounds)
        return (result, cache.statistics.snapshot)
    }
}
