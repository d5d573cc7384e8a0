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
    public var cachedBytes = 0
}

/// The read path of chunk files: the first read of a chunk fetches it whole, concurrent reads
/// of the same chunk share that fetch, and chunks stay in an LRU cache within a byte budget.
public final class ChunkReader: Sendable {
    private let objects: [ObjectInfo]
    private let fetcher: any ChunkFetching
    private let budget: Int
    private let state = Mutex(State())
    /// Chunks fetched ahead of a sequential reader (0: none), and where the next ones are.
    private let readahead: Int
    private let neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)?
    static let maxInFlight = 256

    private struct State {
        var cache: [UInt64: (bytes: [UInt8], lastUse: UInt64)] = [:]
        var inFlight: [UInt64: Task<[UInt8], any Error>] = [:]
        var clock: UInt64 = 0
        /// Uses in order, oldest first: (inode, clock at that use). An entry is current when the
        /// cache still holds the inode with that clock; stale ones are skipped on eviction, so
        /// evicting the least recently used chunk is amortised O(1).
        var uses: [(inode: UInt64, clock: UInt64)] = []
        var usesStart = 0

        mutating func touch(_ inode: UInt64) {
            uses.append((inode, clock))
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
                let (inode, stamp) = uses[usesStart]
                usesStart += 1
                if let entry = cache[inode], entry.lastUse == stamp {
                    cache.removeValue(forKey: inode)
                    statistics.cachedBytes -= entry.bytes.count
                    return true
                }
            }
            return false
        }
        var statistics = ChunkReaderStatistics()
    }

    /// `neighbour` finds the file of an inode (the chunk files of an array have consecutive
    /// inodes in row-major order), for readahead.
    public init(objects: [ObjectInfo], fetcher: any ChunkFetching, cacheBytes: Int, readahead: Int = 0,
                neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)? = nil) {
        self.objects = objects
        self.readahead = max(0, readahead)
        self.neighbour = neighbour
        self.fetcher = fetcher
        self.budget = max(0, cacheBytes)
    }

    public var statistics: ChunkReaderStatistics { state.withLock { $0.statistics } }

    /// Bytes `offset..<offset+size` of the file `entry` (clipped at its end).
    public func read(_ entry: ZarrTree.Entry, offset: UInt64, size: Int) async throws -> [UInt8] {
        let whole: [UInt8]
        switch entry.content {
        case .directory: return []
        case .bytes(let bytes): whole = bytes
        case .chunk(let object, let chunkOffset, let length, let decoding):
            whole = try await chunk(entry.inode, object: object, offset: chunkOffset, length: length, decoding: decoding)
        }
        guard offset < UInt64(whole.count), size > 0 else { return [] }
        let start = Int(offset)
        return Array(whole[start..<min(whole.count, start + size)])
    }

    private func chunk(_ inode: UInt64, object: UInt32, offset: UInt64, length: UInt64, decoding: ZarrTree.Decoding?) async throws -> [UInt8] {
        enum Plan { case hit([UInt8]), wait(Task<[UInt8], any Error>) }
        let plan: Plan = state.withLock { state in
            state.clock += 1
            let plan: Plan
            if let cached = state.cache[inode] {
                state.cache[inode]?.lastUse = state.clock
                state.touch(inode)
                state.statistics.hits += 1
                plan = .hit(cached.bytes)
            } else if let running = state.inFlight[inode] {
                state.statistics.joined += 1
                plan = .wait(running)
            } else {
                state.statistics.misses += 1
                plan = .wait(startFetch(&state, inode: inode, object: object, offset: offset, length: length, decoding: decoding))
            }
            readAhead(&state, after: inode)
            return plan
        }
        switch plan {
        case .hit(let bytes): return bytes
        case .wait(let task): return try await task.value
        }
    }

    /// An access right after its predecessor (cached or on its way) looks like a sequential
    /// reader: keep the next `readahead` chunks fetched or on their way.
    private func readAhead(_ state: inout State, after inode: UInt64) {
        guard readahead > 0, let neighbour, inode > 0, state.cache[inode - 1] != nil || state.inFlight[inode - 1] != nil else { return }
        for next in (inode + 1)...(inode + UInt64(readahead)) where state.cache[next] == nil && state.inFlight[next] == nil {
            guard state.inFlight.count < Self.maxInFlight, state.statistics.cachedBytes < budget / 2,
                  let entry = neighbour(next), case .chunk(let object, let offset, let length, let decoding) = entry.content
            else { return }
            state.statistics.readahead += 1
            _ = startFetch(&state, inode: next, object: object, offset: offset, length: length, decoding: decoding)
        }
    }

    /// Starts fetching (and decoding) one chunk; the task itself files the result in the cache,
    /// so fetches nobody waits for (readahead) finish the same way.
    private func startFetch(_ state: inout State, inode: UInt64, object: UInt32, offset: UInt64, length: UInt64,
                            decoding: ZarrTree.Decoding?) -> Task<[UInt8], any Error> {
        state.statistics.inFlight += 1
        let info = objects[Int(object)]
        let fetcher = self.fetcher
        let task = Task {
            do {
                let bytes = try await Self.fetchAndDecode(fetcher, info, offset: offset, length: length, decoding: decoding)
                self.finish(inode, bytes: bytes, storedLength: length)
                return bytes
            } catch {
                self.finish(inode, bytes: nil, storedLength: 0)
                throw error
            }
        }
        state.inFlight[inode] = task
        return task
    }

    private static func fetchAndDecode(_ fetcher: any ChunkFetching, _ info: ObjectInfo, offset: UInt64, length: UInt64,
                                       decoding: ZarrTree.Decoding?) async throws -> [UInt8] {
        let stored = try await fetcher.fetch(info, offset: offset, length: length)
        guard stored.count == Int(length) else {
            throw ChunkReadError(description: "\(info.url): chunk at \(offset) came back with \(stored.count) of \(length) bytes")
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
        return decoded
    }

    private func finish(_ inode: UInt64, bytes: [UInt8]?, storedLength: UInt64) {
        state.withLock { state in
            guard state.inFlight.removeValue(forKey: inode) != nil else { return }
            state.statistics.inFlight -= 1
            guard let bytes else {
                state.statistics.errors += 1
                return
            }
            state.statistics.bytesFetched += storedLength
            guard bytes.count <= budget else { return }
            state.clock += 1
            state.cache[inode] = (bytes, state.clock)
            state.touch(inode)
            state.statistics.cachedBytes += bytes.count
            while state.statistics.cachedBytes > budget, state.evictOldest() {}
        }
    }
}

public struct ChunkReadError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
