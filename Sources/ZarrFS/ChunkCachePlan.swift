/// The chunk cache's and readahead's decisions, apart from the tasks that carry them out (as
/// async-http-client's `HTTPConnectionPool.StateMachine` is apart from its channels). Each
/// event returns what to do: answer from the cache, wait for a fetch in flight, and which
/// fetches to start. `ChunkReader` calls it under its lock and starts the fetches after
/// releasing it. Pure: tested without fetchers, tasks or FUSE.
struct ChunkCachePlan {
    /// One cached unit: a whole chunk (part 0 of a small chunk) or one part of a large one.
    /// Source chunks of assembled chunk files (which have no inode of their own) are cached
    /// under inode 0, by object (`part`) and offset.
    struct Key: Hashable {
        var inode: UInt64
        var part: UInt32
        var sourceOffset: UInt64 = 0

        /// The key of a source chunk of an assembled file: `object`'s chunk at `offset`.
        static func source(object: UInt32, offset: UInt64) -> Key { Key(inode: 0, part: object, sourceOffset: offset) }
    }

    /// Where a unit's bytes are and how they are turned into file bytes.
    struct Unit: Equatable {
        var key: Key
        var object: UInt32
        var offset: UInt64
        var length: UInt64
        var decoding: ZarrTree.Decoding?
        /// The whole stored chunk's length (equal to `length` unless this is a part).
        var chunkLength: UInt64
        /// Decoded to check the stored bytes, which are then served (`--verify-chunks`).
        var verification: ZarrTree.Decoding? = nil
    }

    enum Answer: Equatable {
        case cached([UInt8])
        /// The unit's fetch is in flight (joined, or among the fetches to start): wait for it.
        case wait(Key)
    }

    /// Bytes the cache may hold.
    let budget: Int
    /// Chunks (or parts of a large chunk) fetched ahead of a sequential reader (0: none).
    let readahead: Int
    let partSize: UInt64
    static let maxInFlight = 256

    private(set) var statistics = ChunkReaderStatistics()
    private var cache: [Key: (bytes: [UInt8], lastUse: UInt64)] = [:]
    /// Keys being fetched (or assembled), each with its stored length.
    private(set) var inFlight: [Key: UInt64] = [:]
    private var clock: UInt64 = 0
    /// Uses in order, oldest first: (key, clock at that use). An entry is current when the
    /// cache still holds the key with that clock; stale ones are skipped on eviction, so
    /// evicting the least recently used unit is amortised O(1).
    private var uses: [(key: Key, clock: UInt64)] = []
    private var usesStart = 0
    /// Stored bytes of the fetches under way.
    private(set) var inFlightBytes: UInt64 = 0
    /// The chunk files readers (not readahead) asked for last, oldest first, and how often
    /// each is in that window: what tells a sequential reader from random ones.
    private var recentReads: [UInt64] = []
    private var recentStart = 0
    private var recentCounts: [UInt64: Int] = [:]
    /// For each chunk file in that window, the longest run of neighbouring files readers went
    /// through in order (forwards or backwards) that ended at it: how sure the plan is that a
    /// reader is sequential, and so how far ahead to fetch.
    private var recentRuns: [UInt64: Int] = [:]
    static let recentWindow = 512
    /// The recent reads' chunk files, counted by array (by the array's first chunk-file inode),
    /// and the array each was counted in.
    private var recentPerArray: [UInt64: Int] = [:]
    private var recentArrayOf: [UInt64: UInt64] = [:]
    /// Arrays a reader is sweeping (`sweepAhead`), each with its chunk files still to fetch,
    /// the nearest to where the sweep began last; and arrays found too large to sweep.
    private var sweeps: [UInt64: [UInt64]] = [:]
    private var unsweepable: Set<UInt64> = []
    /// The readahead window grows to at most this many times `readahead`.
    static let maxWindowGrowth = 8

    init(budget: Int, readahead: Int, partSize: UInt64) {
        self.budget = max(0, budget)
        self.readahead = max(0, readahead)
        self.partSize = max(1, partSize)
    }

    /// Readahead stops while this many bytes are on their way, so what it brings in cannot
    /// push out of the cache what readers are still using (LRU evicts what they are done with).
    var readaheadBytes: UInt64 { UInt64(budget / 4) }

    var cachedKeys: Set<Key> { Set(cache.keys) }

    // MARK: Events

    /// A reader needs `unit` (of a chunk file handled in `parts` parts). `firstUnit` gives the
    /// first unit of another chunk file by inode, or nil when it has no stored chunk (for
    /// readahead). Returns the answer and the fetches to start, the unit's own first.
    mutating func request(
        _ unit: Unit, parts: UInt32, firstUnit: (UInt64) -> Unit?, chunkFiles: (UInt64) -> ClosedRange<UInt64>? = { _ in nil }
    ) -> (Answer, [Unit]) {
        var starts: [Unit] = []
        let answer: Answer
        if let cached = hit(unit.key) {
            answer = .cached(cached)
        } else if inFlight[unit.key] != nil {
            statistics.joined += 1
            answer = .wait(unit.key)
        } else {
            statistics.misses += 1
            start(unit)
            starts.append(unit)
            answer = .wait(unit.key)
        }
        // Source chunks of assembled files (inode 0) are neither read by readers nor neighbours.
        guard unit.key.inode != 0 else { return (answer, starts) }
        if parts > 1 {
            starts += readAheadParts(after: unit, parts: parts)
        } else {
            starts += readAheadChunks(after: unit.key.inode, firstUnit: firstUnit)
        }
        let run = sequentialRun(at: unit.key.inode).length
        noteRead(unit.key.inode, run: run, array: chunkFiles(unit.key.inode))
        if parts == 1 { starts += sweepAhead(from: unit.key.inode, run: run, chunkFiles: chunkFiles, firstUnit: firstUnit) }
        return (answer, starts)
    }

    /// A reader asks for a whole chunk file only if memory has it; a hit counts as a read (and
    /// may start readahead), a miss changes nothing.
    mutating func cachedRequest(
        _ key: Key, readAhead: Bool, firstUnit: (UInt64) -> Unit?, chunkFiles: (UInt64) -> ClosedRange<UInt64>? = { _ in nil }
    ) -> ([UInt8]?, [Unit]) {
        guard let cached = hit(key) else { return (nil, []) }
        var starts = readAhead ? readAheadChunks(after: key.inode, firstUnit: firstUnit) : []
        let run = sequentialRun(at: key.inode).length
        noteRead(key.inode, run: run, array: chunkFiles(key.inode))
        if readAhead { starts += sweepAhead(from: key.inode, run: run, chunkFiles: chunkFiles, firstUnit: firstUnit) }
        return (cached, starts)
    }

    /// A reader needs an assembled chunk file: from the cache, joining its assembly, or
    /// starting it (`start` true: the caller assembles it and reports with `finished`).
    mutating func requestAssembled(_ key: Key) -> (answer: Answer, start: Bool) {
        defer { noteRead(key.inode) }
        if let cached = hit(key) { return (.cached(cached), false) }
        if inFlight[key] != nil {
            statistics.joined += 1
            return (.wait(key), false)
        }
        statistics.misses += 1
        statistics.inFlight += 1
        inFlight[key] = 0
        return (.wait(key), true)
    }

    /// A fetch (or assembly) ended: `bytes` came (nil: it failed, with `failedCheck` when the
    /// bytes came but failed `--verify-chunks`). Cached within the budget, evicting the least
    /// recently used.
    mutating func finished(_ key: Key, bytes: [UInt8]?, failedCheck: Bool = false) {
        guard let storedLength = inFlight.removeValue(forKey: key) else { return }
        statistics.inFlight -= 1
        inFlightBytes -= storedLength
        guard let bytes else {
            statistics.errors += 1
            if failedCheck { statistics.verifyFailures += 1 }
            return
        }
        statistics.bytesFetched += storedLength
        guard bytes.count <= budget else { return }
        clock += 1
        cache[key] = (bytes, clock)
        touch(key)
        statistics.cachedBytes += bytes.count
        while statistics.cachedBytes > budget, evictOldest() {}
    }

    // MARK: Decisions

    private mutating func start(_ unit: Unit) {
        statistics.inFlight += 1
        inFlightBytes += unit.length
        inFlight[unit.key] = unit.length
    }

    /// The run of neighbouring chunk files readers went through in order that a read of `inode`
    /// extends: its direction (0 when neither neighbour was read recently) and length,
    /// counting this read.
    private func sequentialRun(at inode: UInt64) -> (step: Int64, length: Int) {
        if inode > 1, let before = recentRuns[inode - 1] { return (1, before + 1) }
        if let after = recentRuns[inode + 1] { return (-1, after + 1) }
        return (0, 1)
    }

    /// How many chunk files ahead of a sequential reader to keep fetched or on their way after
    /// a run of `run` reads: `readahead`, doubled for every `readahead` reads the run goes on
    /// past its first, up to `maxWindowGrowth` times it (two neighbours read by random
    /// readers by chance get no more than `readahead`). A reader that has gone through many chunk files
    /// in order is likely to go on (a reduction over a year of daily chunks reads all 365), and
    /// at a 20 ms round trip eight chunks in flight leave it waiting on the network.
    func readaheadWindow(run: Int) -> Int {
        guard readahead > 0 else { return 0 }
        var window = readahead
        var doublings = (run - 1) / readahead
        while doublings > 0, window * 2 <= readahead * Self.maxWindowGrowth {
            window *= 2
            doublings -= 1
        }
        return window
    }

    /// A read of the chunk file right after one a reader read recently looks like a sequential
    /// reader: keep the next chunk files fetched or on their way (`readaheadWindow`, which
    /// grows with the run). Right before one, it looks like a reader going backwards (dask
    /// often schedules the last chunk first): fetch the previous ones. Only readers' own reads
    /// count, not what is cached or was fetched ahead: random readers over a large cache would
    /// otherwise find a cached neighbour most of the time and multiply the traffic.
    private mutating func readAheadChunks(after inode: UInt64, firstUnit: (UInt64) -> Unit?) -> [Unit] {
        guard readahead > 0, inode > 0 else { return [] }
        let (step, run) = sequentialRun(at: inode)
        guard step != 0 else { return [] }
        var starts: [Unit] = []
        for distance in 1...Int64(readaheadWindow(run: run)) {
            let signed = Int64(inode) + step * distance
            guard signed > 0 else { break }
            let next = UInt64(signed)
            if present(Key(inode: next, part: 0)) { continue }
            guard inFlight.count < Self.maxInFlight, inFlightBytes < readaheadBytes, let unit = firstUnit(next) else { break }
            statistics.readahead += 1
            start(unit)
            starts.append(unit)
        }
        return starts
    }

    /// A reader going in runs through a good part of an array reads all of it: a reduction over
    /// a year of daily chunks reads every one, but dask takes them in blocks (16 at a time,
    /// backwards, the blocks in an order of its own), so each block's start lands where no
    /// readahead reached. Once recent reads hold an eighth of an array's chunk files (and at
    /// least twice `readahead`), and this read goes on a run of `readahead`, every chunk file
    /// of the array not yet fetched is fetched, the nearest first, within the readahead
    /// limits. An array whose stored chunks would fill more than half the cache is not swept.
    private mutating func sweepAhead(
        from inode: UInt64, run: Int, chunkFiles: (UInt64) -> ClosedRange<UInt64>?, firstUnit: (UInt64) -> Unit?
    ) -> [Unit] {
        guard readahead > 0, let files = chunkFiles(inode), files.contains(inode) else { return [] }
        let array = files.lowerBound
        if sweeps[array] == nil {
            let count = files.upperBound - files.lowerBound + 1
            guard !unsweepable.contains(array), run >= readahead, count <= UInt64(Self.maxSweptChunkFiles),
                let read = recentPerArray[array], read >= max(2 * readahead, Int(count / 8))
            else { return [] }
            var pending: [(distance: UInt64, inode: UInt64)] = []
            var bytes: UInt64 = 0
            for candidate in files {
                guard let unit = firstUnit(candidate) else { continue }
                bytes += unit.chunkLength
                if !present(Key(inode: candidate, part: 0)) {
                    pending.append((candidate > inode ? candidate - inode : inode - candidate, candidate))
                }
            }
            guard bytes <= UInt64(budget / 2) else {
                unsweepable.insert(array)
                return []
            }
            // Popped from the end: the farthest first in the array, the nearest last.
            sweeps[array] = pending.sorted { ($0.distance, $0.inode) > ($1.distance, $1.inode) }.map(\.inode)
        }
        var starts: [Unit] = []
        while let next = sweeps[array]?.last {
            if present(Key(inode: next, part: 0)) {
                sweeps[array]?.removeLast()
                continue
            }
            guard inFlight.count < Self.maxInFlight, inFlightBytes < readaheadBytes, let unit = firstUnit(next) else { break }
            sweeps[array]?.removeLast()
            statistics.readahead += 1
            start(unit)
            starts.append(unit)
        }
        return starts
    }

    /// Arrays of more chunk files than this are not swept: the recent reads could never hold an
    /// eighth of them, and the sweep's list stays small.
    static let maxSweptChunkFiles = 8 * recentWindow

    /// Whoever reads one part of a large chunk file nearly always reads the rest: keep the next
    /// `readahead` parts (at least 4) fetched or on their way.
    private mutating func readAheadParts(after unit: Unit, parts: UInt32) -> [Unit] {
        let window = UInt32(max(4, readahead))
        let base = unit.offset - UInt64(unit.key.part) * partSize
        var starts: [Unit] = []
        var part = unit.key.part + 1
        while part < parts, part <= unit.key.part + window {
            let key = Key(inode: unit.key.inode, part: part)
            if !present(key) {
                guard inFlight.count < Self.maxInFlight, inFlightBytes < readaheadBytes else { break }
                statistics.readahead += 1
                let start = UInt64(part) * partSize
                let next = Unit(
                    key: key, object: unit.object, offset: base + start, length: min(partSize, unit.chunkLength - start),
                    decoding: nil, chunkLength: unit.chunkLength)
                self.start(next)
                starts.append(next)
            }
            part += 1
        }
        return starts
    }

    // MARK: Bookkeeping

    private func present(_ key: Key) -> Bool { cache[key] != nil || inFlight[key] != nil }

    private mutating func noteRead(_ inode: UInt64, run: Int = 1, array: ClosedRange<UInt64>? = nil) {
        recentReads.append(inode)
        recentCounts[inode, default: 0] += 1
        recentRuns[inode] = max(recentRuns[inode] ?? 0, run)
        if recentCounts[inode] == 1, let array, array.contains(inode) {
            recentPerArray[array.lowerBound, default: 0] += 1
            recentArrayOf[inode] = array.lowerBound
        }
        if recentReads.count - recentStart > Self.recentWindow {
            let oldest = recentReads[recentStart]
            recentStart += 1
            if recentCounts[oldest] == 1 {
                recentCounts.removeValue(forKey: oldest)
                recentRuns.removeValue(forKey: oldest)
                if let array = recentArrayOf.removeValue(forKey: oldest) {
                    recentPerArray[array]! -= 1
                    if recentPerArray[array] == 0 { recentPerArray.removeValue(forKey: array) }
                }
            } else {
                recentCounts[oldest]! -= 1
            }
            if recentStart > 4096 {
                recentReads.removeFirst(recentStart)
                recentStart = 0
            }
        }
    }

    /// The cached bytes of `key`, counted as a hit and made the most recently used.
    private mutating func hit(_ key: Key) -> [UInt8]? {
        guard let cached = cache[key] else { return nil }
        clock += 1
        cache[key]?.lastUse = clock
        touch(key)
        statistics.hits += 1
        return cached.bytes
    }

    private mutating func touch(_ key: Key) {
        uses.append((key, clock))
        if uses.count - usesStart > 4 * cache.count + 4096 {
            // Mostly stale entries (hits re-append): keep only the current ones, in order.
            uses = cache.map { ($0.key, $0.value.lastUse) }.sorted { $0.1 < $1.1 }
            usesStart = 0
        } else if usesStart > 4096 && usesStart * 2 > uses.count {
            uses.removeFirst(usesStart)
            usesStart = 0
        }
    }

    private mutating func evictOldest() -> Bool {
        while usesStart < uses.count {
            let (key, stamp) = uses[usesStart]
            usesStart += 1
            if let entry = cache[key], entry.lastUse == stamp {
                cache.removeValue(forKey: key)
                statistics.cachedBytes -= entry.bytes.count
                return true
            }
        }
        return false
    }
}
