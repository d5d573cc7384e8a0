import Synchronization
import VirtualZarr

/// Fetches a stored chunk's bytes from its object, failing when the object changed since the
/// scan (the implementation checks the identity recorded in `ObjectInfo`).
public protocol ChunkFetching: Sendable {
    func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8]
}

public struct ChunkReaderStatistics: Sendable, Equatable {
    public var hits = 0
    public var misses = 0
    /// Reads that joined a fetch already in flight for the same chunk.
    public var joined = 0
    public var inFlight = 0
    public var bytesFetched: UInt64 = 0
    public var errors = 0
    /// Fetches started ahead of a sequential reader.
    public var readahead = 0
    /// Stored chunks that failed their check (`--verify-chunks`) and were not served.
    public var verifyFailures = 0
    public var cachedBytes = 0
}

/// The read path of chunk files: the first read of a chunk fetches it whole, concurrent reads
/// of the same chunk share that fetch, and chunks stay in an LRU cache within a byte budget.
/// A large chunk served as stored is fetched and cached in parts, so a reader gets its first
/// bytes after one part arrives and the rest streams in parallel behind it.
public final class ChunkReader: Sendable {
    private let objects: [ObjectInfo]
    private let fetcher: any ChunkFetching
    private let budget: Int
    private let state = Mutex(State())
    /// Chunks (or parts of a large chunk) fetched ahead of a sequential reader (0: none), and
    /// where the next chunk files are.
    private let readahead: Int
    private let neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)?
    /// Stored chunks longer than twice this are handled in parts of this size.
    private let partSize: UInt64
    /// The check of a stored chunk file before it is served, by inode (nil: none).
    private let verification: (@Sendable (UInt64) -> ZarrTree.Decoding?)?
    /// How an assembled chunk file (array, linear index) is put together (`ZarrTree.assembly`).
    private let assembly: (@Sendable (Int, Int) -> ZarrTree.Assembly?)?
    static let maxInFlight = 256
    /// Source chunks fetched at once for one assembled chunk.
    static let assemblyWidth = 32

    /// Readahead stops while this many bytes are on their way, so what it brings in cannot
    /// push out of the cache what readers are still using (LRU evicts what they are done with).
    private var readaheadBytes: UInt64 { UInt64(budget / 4) }

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
    struct Unit {
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

    private struct State {
        var cache: [Key: (bytes: [UInt8], lastUse: UInt64)] = [:]
        var inFlight: [Key: Task<[UInt8], any Error>] = [:]
        var clock: UInt64 = 0
        /// Uses in order, oldest first: (key, clock at that use). An entry is current when the
        /// cache still holds the key with that clock; stale ones are skipped on eviction, so
        /// evicting the least recently used unit is amortised O(1).
        var uses: [(key: Key, clock: UInt64)] = []
        var usesStart = 0
        var statistics = ChunkReaderStatistics()
        /// Stored bytes of the fetches under way.
        var inFlightBytes: UInt64 = 0
        /// The chunk files readers (not readahead) asked for last, oldest first, and how often
        /// each is in that window: what tells a sequential reader from random ones.
        var recentReads: [UInt64] = []
        var recentStart = 0
        var recentCounts: [UInt64: Int] = [:]
        static let recentWindow = 512

        mutating func noteRead(_ inode: UInt64) {
            recentReads.append(inode)
            recentCounts[inode, default: 0] += 1
            if recentReads.count - recentStart > Self.recentWindow {
                let oldest = recentReads[recentStart]
                recentStart += 1
                if recentCounts[oldest] == 1 { recentCounts.removeValue(forKey: oldest) } else { recentCounts[oldest]! -= 1 }
                if recentStart > 4096 {
                    recentReads.removeFirst(recentStart)
                    recentStart = 0
                }
            }
        }

        func readRecently(_ inode: UInt64) -> Bool { recentCounts[inode] != nil }

        func present(_ key: Key) -> Bool { cache[key] != nil || inFlight[key] != nil }

        /// The cached bytes of `key`, counted as a hit and made the most recently used.
        mutating func hit(_ key: Key) -> [UInt8]? {
            guard let cached = cache[key] else { return nil }
            clock += 1
            cache[key]?.lastUse = clock
            touch(key)
            statistics.hits += 1
            return cached.bytes
        }

        mutating func touch(_ key: Key) {
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

        mutating func evictOldest() -> Bool {
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

    /// `neighbour` finds the file of an inode (the chunk files of an array have consecutive
    /// inodes in row-major order), for readahead.
    public init(objects: [ObjectInfo], fetcher: any ChunkFetching, cacheBytes: Int, readahead: Int = 0,
                neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)? = nil, partSize: UInt64 = 8 << 20,
                verification: (@Sendable (UInt64) -> ZarrTree.Decoding?)? = nil,
                assembly: (@Sendable (Int, Int) -> ZarrTree.Assembly?)? = nil) {
        self.verification = verification
        self.assembly = assembly
        self.objects = objects
        self.readahead = max(0, readahead)
        self.neighbour = neighbour
        self.fetcher = fetcher
        self.budget = max(0, cacheBytes)
        self.partSize = max(1, partSize)
    }

    public var statistics: ChunkReaderStatistics { state.withLock { $0.statistics } }

    /// Bytes `offset..<offset+size` of the file `entry` (clipped at its end); within one unit
    /// they share the cached unit's storage (no copy).
    public func read(_ entry: ZarrTree.Entry, offset: UInt64, size: Int) async throws -> ArraySlice<UInt8> {
        switch entry.content {
        case .directory:
            return []
        case .bytes(let bytes):
            return Self.slice(bytes, offset: offset, size: size)
        case .chunk(let object, let chunkOffset, let length, let decoding):
            let fileSize = decoding?.servedSize ?? length
            guard offset < fileSize, size > 0 else { return [] }
            let end = min(fileSize, offset + UInt64(size))
            let check = decoding == nil ? verification?(entry.inode) : nil
            guard check == nil, let parts = partCount(length: length, decoding: decoding) else {
                let unit = Unit(key: Key(inode: entry.inode, part: 0), object: object, offset: chunkOffset, length: length, decoding: decoding,
                                chunkLength: length, verification: check)
                let whole = try await bytes(of: unit, parts: 1)
                return whole[Int(offset)..<Int(end)]
            }
            var result: ArraySlice<UInt8> = []
            for part in (offset / partSize)...((end - 1) / partSize) {
                let start = part * partSize
                let unit = Unit(key: Key(inode: entry.inode, part: UInt32(part)), object: object, offset: chunkOffset + start,
                                length: min(partSize, length - start), decoding: nil, chunkLength: length)
                let bytes = try await self.bytes(of: unit, parts: parts)
                let slice = bytes[Int(max(offset, start) - start)..<Int(min(end, start + unit.length) - start)]
                if result.isEmpty { result = slice } else { result.append(contentsOf: slice) }
            }
            return result
        case .assembled(let array, let linear, let fileSize):
            guard offset < fileSize, size > 0 else { return [] }
            let whole = try await assembledBytes(entry.inode, array: array, linear: linear, size: fileSize)
            return whole[Int(offset)..<Int(min(fileSize, offset + UInt64(size)))]
        }
    }

    /// The bytes `read` would give, when memory can answer right now (metadata, inline and
    /// cached chunks), or nil. Most reads of a sequential reader hit chunks readahead brought
    /// in, and the FUSE thread answers those itself instead of starting a task.
    public func cachedRead(_ entry: ZarrTree.Entry, offset: UInt64, size: Int) -> ArraySlice<UInt8>? {
        switch entry.content {
        case .directory:
            return []
        case .bytes(let bytes):
            return Self.slice(bytes, offset: offset, size: size)
        case .chunk(_, _, let length, let decoding):
            guard partCount(length: length, decoding: decoding) == nil || verification?(entry.inode) != nil else { return nil }
            let fileSize = decoding?.servedSize ?? length
            guard offset < fileSize, size > 0 else { return [] }
            let key = Key(inode: entry.inode, part: 0)
            let whole: [UInt8]? = state.withLock { state in
                guard let cached = state.hit(key) else { return nil }
                readAheadChunks(&state, after: entry.inode)
                state.noteRead(entry.inode)
                return cached
            }
            return whole.map { $0[Int(offset)..<Int(min(fileSize, offset + UInt64(size)))] }
        case .assembled(_, _, let fileSize):
            guard offset < fileSize, size > 0 else { return [] }
            let whole: [UInt8]? = state.withLock { state in
                guard let cached = state.hit(Key(inode: entry.inode, part: 0)) else { return nil }
                state.noteRead(entry.inode)
                return cached
            }
            return whole.map { $0[Int(offset)..<Int(min(fileSize, offset + UInt64(size)))] }
        }
    }

    /// An assembled chunk file: cached whole once put together; concurrent readers share the work.
    private func assembledBytes(_ inode: UInt64, array: Int, linear: Int, size: UInt64) async throws -> [UInt8] {
        enum Plan { case hit([UInt8]), wait(Task<[UInt8], any Error>) }
        let key = Key(inode: inode, part: 0)
        let plan: Plan = state.withLock { state in
            defer { state.noteRead(inode) }
            if let cached = state.hit(key) { return .hit(cached) }
            if let running = state.inFlight[key] {
                state.statistics.joined += 1
                return .wait(running)
            }
            state.statistics.misses += 1
            state.statistics.inFlight += 1
            let task = Task {
                do {
                    guard let plan = self.assembly?(array, linear) else {
                        throw ChunkReadError(description: "chunk file \(inode) has no assembly plan")
                    }
                    let bytes = try await self.assemble(plan, size: size)
                    self.finish(key, bytes: bytes, storedLength: 0)
                    return bytes
                } catch {
                    self.finish(key, bytes: nil, storedLength: 0)
                    throw error
                }
            }
            state.inFlight[key] = task
            return .wait(task)
        }
        switch plan {
        case .hit(let bytes): return bytes
        case .wait(let task): return try await task.value
        }
    }

    /// Puts a served chunk together: its fill, then every source chunk's region, each source
    /// chunk fetched and decoded once through the cache (it may serve several chunk files).
    private func assemble(_ plan: ZarrTree.Assembly, size: UInt64) async throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(size))
        for _ in 0..<(Int(size) / max(plan.itemSize, 1)) { out += plan.fill }
        let pieces = plan.pieces
        var next = 0
        try await withThrowingTaskGroup(of: (Int, [UInt8]?).self) { group in
            func launch() {
                let index = next
                next += 1
                let piece = pieces[index]
                let decodedSize = piece.chunkShape.reduce(plan.sourceItemSize) { $0 * Int($1) }
                switch piece.content {
                case .stored(let object, let offset, let length):
                    let unit = Unit(key: .source(object: object, offset: offset), object: object, offset: offset, length: length,
                                    decoding: ZarrTree.Decoding(pipeline: piece.codecs, size: UInt64(decodedSize)), chunkLength: length)
                    let unpacking = plan.unpacking
                    group.addTask {
                        let decoded = try await self.bytes(of: unit, parts: 1)
                        guard let unpacking else { return (index, decoded) }
                        do { return (index, try unpacking.unpack(decoded, object: object)) } catch {
                            throw ChunkReadError(description: "a source chunk cannot be unpacked: \(error)")
                        }
                    }
                case .inline(let bytes):
                    group.addTask {
                        // Unpacked grids hold no inline source chunks (Regridding.unpacked).
                        guard plan.unpacking == nil else { throw ChunkReadError(description: "an inline source chunk of an unpacked variable") }
                        do { return (index, try ChunkDecoder.decode(bytes, pipeline: piece.codecs, decodedSize: decodedSize)) } catch {
                            throw ChunkReadError(description: "an inline source chunk does not decode: \(error)")
                        }
                    }
                case .fill:
                    group.addTask { (index, nil) }
                }
            }
            while next < min(Self.assemblyWidth, pieces.count) { launch() }
            while let (index, decoded) = try await group.next() {
                let piece = pieces[index]
                if let decoded {
                    let needed = piece.chunkShape.reduce(plan.itemSize) { $0 * Int($1) }
                    guard decoded.count >= needed else {
                        throw ChunkReadError(description: "a source chunk decodes to \(decoded.count) bytes, expected \(needed)")
                    }
                    Regridding.copy(piece, from: decoded, into: &out, servedChunkShape: plan.chunkShape, itemSize: plan.itemSize)
                } else if case .fill(let element) = piece.content, element != plan.fill {
                    Regridding.fill(piece, element: element, into: &out, servedChunkShape: plan.chunkShape)
                }
                if next < pieces.count { launch() }
            }
        }
        return out
    }

    /// Bytes `offset..<offset+size` of an in-memory file, clipped at its end.
    private static func slice(_ bytes: [UInt8], offset: UInt64, size: Int) -> ArraySlice<UInt8> {
        guard offset < UInt64(bytes.count), size > 0 else { return [] }
        return bytes[Int(offset)..<min(bytes.count, Int(offset) + size)]
    }

    /// How many parts a chunk is handled in, or nil for one whole unit: decoded chunks must be
    /// whole to decode, and small ones gain nothing.
    private func partCount(length: UInt64, decoding: ZarrTree.Decoding?) -> UInt32? {
        guard decoding == nil, length > 2 * partSize else { return nil }
        return UInt32((length + partSize - 1) / partSize)
    }

    private func bytes(of unit: Unit, parts: UInt32) async throws -> [UInt8] {
        enum Plan { case hit([UInt8]), wait(Task<[UInt8], any Error>) }
        let plan: Plan = state.withLock { state in
            let plan: Plan
            if let cached = state.hit(unit.key) {
                plan = .hit(cached)
            } else if let running = state.inFlight[unit.key] {
                state.statistics.joined += 1
                plan = .wait(running)
            } else {
                state.statistics.misses += 1
                plan = .wait(startFetch(&state, unit))
            }
            // Source chunks of assembled files (inode 0) are neither read by readers nor neighbours.
            guard unit.key.inode != 0 else { return plan }
            if parts > 1 { readAheadParts(&state, after: unit, parts: parts) } else { readAheadChunks(&state, after: unit.key.inode) }
            state.noteRead(unit.key.inode)
            return plan
        }
        switch plan {
        case .hit(let bytes): return bytes
        case .wait(let task): return try await task.value
        }
    }

    /// A read of the chunk file right after one a reader read recently looks like a sequential
    /// reader: keep the next `readahead` chunk files fetched or on their way. Right before one,
    /// it looks like a reader going backwards (dask often schedules the last chunk first):
    /// fetch the previous ones. Only readers' own reads count, not what is cached or was
    /// fetched ahead: random readers over a large cache would otherwise find a cached
    /// neighbour most of the time and multiply the traffic.
    private func readAheadChunks(_ state: inout State, after inode: UInt64) {
        guard readahead > 0, let neighbour, inode > 0 else { return }
        let step: Int64
        if state.readRecently(inode - 1) { step = 1 }
        else if state.readRecently(inode + 1) { step = -1 }
        else { return }
        for distance in 1...Int64(readahead) {
            let signed = Int64(inode) + step * distance
            guard signed > 0 else { return }
            let next = UInt64(signed)
            if state.present(Key(inode: next, part: 0)) { continue }
            guard state.inFlight.count < Self.maxInFlight, state.inFlightBytes < readaheadBytes,
                  let entry = neighbour(next), case .chunk(let object, let offset, let length, let decoding) = entry.content
            else { return }
            state.statistics.readahead += 1
            let check = decoding == nil ? verification?(next) : nil
            let firstLength = partCount(length: length, decoding: decoding) == nil || check != nil ? length : partSize
            _ = startFetch(&state, Unit(key: Key(inode: next, part: 0), object: object, offset: offset, length: firstLength,
                                        decoding: decoding, chunkLength: length, verification: check))
        }
    }

    /// Whoever reads one part of a large chunk file nearly always reads the rest: keep the next
    /// `readahead` parts (at least 4) fetched or on their way.
    private func readAheadParts(_ state: inout State, after unit: Unit, parts: UInt32) {
        let window = UInt32(max(4, readahead))
        let base = unit.offset - UInt64(unit.key.part) * partSize
        var part = unit.key.part + 1
        while part < parts, part <= unit.key.part + window {
            let key = Key(inode: unit.key.inode, part: part)
            if !state.present(key) {
                guard state.inFlight.count < Self.maxInFlight, state.inFlightBytes < readaheadBytes else { return }
                state.statistics.readahead += 1
                let start = UInt64(part) * partSize
                _ = startFetch(&state, Unit(key: key, object: unit.object, offset: base + start,
                                            length: min(partSize, unit.chunkLength - start), decoding: nil, chunkLength: unit.chunkLength))
            }
            part += 1
        }
    }

    /// Starts fetching (and decoding) one unit; the task itself files the result in the cache,
    /// so fetches nobody waits for (readahead) finish the same way.
    private func startFetch(_ state: inout State, _ unit: Unit) -> Task<[UInt8], any Error> {
        state.statistics.inFlight += 1
        state.inFlightBytes += unit.length
        let info = objects[Int(unit.object)]
        let fetcher = self.fetcher
        let task = Task {
            do {
                let bytes = try await Self.fetchAndDecode(fetcher, info, object: unit.object, offset: unit.offset, length: unit.length,
                                                          decoding: unit.decoding, verification: unit.verification)
                self.finish(unit.key, bytes: bytes, storedLength: unit.length)
                return bytes
            } catch {
                self.finish(unit.key, bytes: nil, storedLength: unit.length, failedCheck: error is ChunkCheckError)
                throw error
            }
        }
        state.inFlight[unit.key] = task
        return task
    }

    private static func fetchAndDecode(_ fetcher: any ChunkFetching, _ info: ObjectInfo, object: UInt32, offset: UInt64, length: UInt64,
                                       decoding: ZarrTree.Decoding?, verification: ZarrTree.Decoding? = nil) async throws -> [UInt8] {
        let stored = try await fetcher.fetch(info, offset: offset, length: length)
        guard stored.count == Int(length) else {
            throw ChunkReadError(description: "\(info.url): chunk at \(offset) came back with \(stored.count) of \(length) bytes")
        }
        if let verification {
            // The stored bytes are served only once they decode, checks included, to the
            // chunk's size: a body of the right length with other bytes is an error.
            do {
                let decoded = try ChunkDecoder.decode(stored, pipeline: verification.pipeline, decodedSize: Int(verification.size))
                guard decoded.count == Int(verification.size) else {
                    throw ChunkCheckError(description: "decodes to \(decoded.count) bytes, expected \(verification.size)")
                }
            } catch {
                throw ChunkCheckError(description: "\(info.url): chunk at \(offset) (\(length) bytes) fails its check: \(error)")
            }
            return stored
        }
        guard let decoding else { return stored }
        // Decoding runs once per fetch, off the FUSE thread; a failure (bad checksum, corrupt
        // stream) is an error, never wrong bytes.
        let decoded: [UInt8]
        do {
            decoded = try ChunkDecoder.decode(stored, pipeline: decoding.pipeline, decodedSize: Int(decoding.size))
        } catch {
            throw ChunkReadError(description: "\(info.url): chunk at \(offset) (\(length) bytes) does not decode: \(error)")
        }
        guard decoded.count == Int(decoding.size) else {
            throw ChunkReadError(description: "\(info.url): chunk at \(offset) decodes to \(decoded.count) bytes, expected \(decoding.size)")
        }
        if let unpacking = decoding.unpacking {
            do { return try unpacking.unpack(decoded, object: object) } catch {
                throw ChunkReadError(description: "\(info.url): chunk at \(offset) cannot be unpacked: \(error)")
            }
        }
        return decoded
    }

    /// Files a finished fetch: `storedLength` bytes were asked for, `bytes` came (nil: failed,
    /// with `failedCheck` when the bytes came but failed `--verify-chunks`).
    private func finish(_ key: Key, bytes: [UInt8]?, storedLength: UInt64, failedCheck: Bool = false) {
        state.withLock { state in
            guard state.inFlight.removeValue(forKey: key) != nil else { return }
            state.statistics.inFlight -= 1
            state.inFlightBytes -= storedLength
            guard let bytes else {
                state.statistics.errors += 1
                if failedCheck { state.statistics.verifyFailures += 1 }
                return
            }
            state.statistics.bytesFetched += storedLength
            guard bytes.count <= budget else { return }
            state.clock += 1
            state.cache[key] = (bytes, state.clock)
            state.touch(key)
            state.statistics.cachedBytes += bytes.count
            while state.statistics.cachedBytes > budget, state.evictOldest() {}
        }
    }
}

public struct ChunkReadError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// A stored chunk that failed its check under `--verify-chunks` (EIO, never served).
public struct ChunkCheckError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
