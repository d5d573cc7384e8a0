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
    public var cachedBytes = 0
}

/// The read path of chunk files: the first read of a chunk fetches it whole, concurrent reads
/// of the same chunk share that fetch, and chunks stay in an LRU cache within a byte budget.
public final class ChunkReader: Sendable {
    private let objects: [ObjectInfo]
    private let fetcher: any ChunkFetching
    private let budget: Int
    private let state = Mutex(State())

    private struct State {
        var cache: [UInt64: (bytes: [UInt8], lastUse: UInt64)] = [:]
        var inFlight: [UInt64: Task<[UInt8], any Error>] = [:]
        var clock: UInt64 = 0
        var statistics = ChunkReaderStatistics()
    }

    public init(objects: [ObjectInfo], fetcher: any ChunkFetching, cacheBytes: Int) {
        self.objects = objects
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
            if let cached = state.cache[inode] {
                state.cache[inode]?.lastUse = state.clock
                state.statistics.hits += 1
                return .hit(cached.bytes)
            }
            if let running = state.inFlight[inode] {
                state.statistics.joined += 1
                return .wait(running)
            }
            state.statistics.misses += 1
            state.statistics.inFlight += 1
            let info = objects[Int(object)]
            let fetcher = self.fetcher
            let task = Task {
                let stored = try await fetcher.fetch(info, offset: offset, length: length)
                guard stored.count == Int(length) else {
                    throw ChunkReadError(description: "\(info.url): chunk at \(offset) came back with \(stored.count) of \(length) bytes")
                }
                guard let decoding else { return stored }
                // Decoding runs once per fetch, off the FUSE thread; a failure (bad checksum,
                // corrupt stream) is an error, never wrong bytes.
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
            state.inFlight[inode] = task
            return .wait(task)
        }
        switch plan {
        case .hit(let bytes): return bytes
        case .wait(let task):
            do {
                let bytes = try await task.value
                finish(inode, bytes: bytes, storedLength: length)
                return bytes
            } catch {
                finish(inode, bytes: nil, storedLength: 0)
                throw error
            }
        }
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
            state.cache[inode] = (bytes, state.clock)
            state.statistics.cachedBytes += bytes.count
            while state.statistics.cachedBytes > budget, let oldest = state.cache.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                state.cache.removeValue(forKey: oldest.key)
                state.statistics.cachedBytes -= oldest.value.bytes.count
            }
        }
    }
}

public struct ChunkReadError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
