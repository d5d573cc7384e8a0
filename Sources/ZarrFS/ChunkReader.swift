import ByteSource
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
    typealias Key = ChunkCachePlan.Key
    typealias Unit = ChunkCachePlan.Unit

    private let objects: [ObjectInfo]
    private let fetcher: any ChunkFetching
    /// The plan's decisions and, for each key in flight, the result its readers wait for.
    private let state: Mutex<State>
    /// Where the next chunk files are (for readahead).
    private let neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)?
    /// The inodes of the chunk files of the array an inode's chunk file belongs to (for
    /// sweeping an array a reader goes through).
    private let chunkFiles: (@Sendable (UInt64) -> ClosedRange<UInt64>?)?
    /// Stored chunks longer than twice this are handled in parts of this size.
    private let partSize: UInt64
    /// The check of a stored chunk file before it is served, by inode (nil: none).
    private let verification: (@Sendable (UInt64) -> ZarrTree.Decoding?)?
    /// How an assembled chunk file (array, linear index) is put together (`ZarrTree.assembly`).
    private let assembly: (@Sendable (Int, Int) -> ZarrTree.Assembly?)?
    /// Source chunks fetched at once for one assembled chunk.
    static let assemblyWidth = 32

    private struct State {
        var plan: ChunkCachePlan
        var results: [Key: PendingResult] = [:]
    }

    /// `neighbour` finds the file of an inode (the chunk files of an array have consecutive
    /// inodes in row-major order), for readahead; `chunkFiles` the inodes of its array's chunk
    /// files (`ZarrTree.chunkFiles(containing:)`).
    public init(
        objects: [ObjectInfo], fetcher: any ChunkFetching, cacheBytes: Int, readahead: Int = 0,
        neighbour: (@Sendable (UInt64) -> ZarrTree.Entry?)? = nil,
        chunkFiles: (@Sendable (UInt64) -> ClosedRange<UInt64>?)? = nil, partSize: UInt64 = 8 << 20,
        verification: (@Sendable (UInt64) -> ZarrTree.Decoding?)? = nil,
        assembly: (@Sendable (Int, Int) -> ZarrTree.Assembly?)? = nil
    ) {
        self.verification = verification
        self.assembly = assembly
        self.objects = objects
        self.neighbour = neighbour
        self.chunkFiles = chunkFiles
        self.fetcher = fetcher
        self.partSize = max(1, partSize)
        state = Mutex(State(plan: ChunkCachePlan(budget: cacheBytes, readahead: readahead, partSize: partSize)))
    }

    public var statistics: ChunkReaderStatistics { state.withLock { $0.plan.statistics } }

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
                let unit = Unit(
                    key: Key(inode: entry.inode, part: 0), object: object, offset: chunkOffset, length: length, decoding: decoding,
                    chunkLength: length, verification: check)
                let whole = try await bytes(of: unit, parts: 1)
                return whole[Int(offset)..<Int(end)]
            }
            var result: ArraySlice<UInt8> = []
            for part in (offset / partSize)...((end - 1) / partSize) {
                let start = part * partSize
                let unit = Unit(
                    key: Key(inode: entry.inode, part: UInt32(part)), object: object, offset: chunkOffset + start,
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
        let fileSize: UInt64
        let readAhead: Bool
        switch entry.content {
        case .directory:
            return []
        case .bytes(let bytes):
            return Self.slice(bytes, offset: offset, size: size)
        case .chunk(_, _, let length, let decoding):
            guard partCount(length: length, decoding: decoding) == nil || verification?(entry.inode) != nil else { return nil }
            fileSize = decoding?.servedSize ?? length
            readAhead = true
        case .assembled(_, _, let size):
            fileSize = size
            readAhead = false
        }
        guard offset < fileSize, size > 0 else { return [] }
        let (whole, starts) = state.withLock { state in
            let (whole, units) = state.plan.cachedRequest(
                Key(inode: entry.inode, part: 0), readAhead: readAhead, firstUnit: firstUnit, chunkFiles: arrayChunkFiles)
            return (whole, expect(units, in: &state))
        }
        launch(starts)
        return whole.map { $0[Int(offset)..<Int(min(fileSize, offset + UInt64(size)))] }
    }

    /// An assembled chunk file: cached whole once put together; concurrent readers share the work.
    private func assembledBytes(_ inode: UInt64, array: Int, linear: Int, size: UInt64) async throws -> [UInt8] {
        let key = Key(inode: inode, part: 0)
        let (answer, pending, start) = state.withLock { state in
            let (answer, start) = state.plan.requestAssembled(key)
            if start { state.results[key] = PendingResult() }
            return (answer, state.results[key], start)
        }
        if start, let pending {
            Task {
                do {
                    guard let plan = self.assembly?(array, linear) else {
                        throw ChunkReadError.assembly("chunk file \(inode) has no assembly plan")
                    }
                    let bytes = try await self.assemble(plan, size: size)
                    self.finish(key, bytes: bytes)
                    pending.resolve(.success(bytes))
                } catch {
                    self.finish(key, bytes: nil)
                    pending.resolve(.failure(error))
                }
            }
        }
        switch answer {
        case .cached(let bytes): return bytes
        case .wait: return try await pending!.value
        }
    }

    /// Puts a served chunk together: its fill, then every source chunk's region, each source
    /// chunk fetched and decoded once through the cache (it may serve several chunk files).
    private func assemble(_ plan: ZarrTree.Assembly, size: UInt64) async throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(size))
        for _ in 0..<(Int(size) / max(plan.itemSize, 1)) { out += plan.fill }
        let pieces = plan.pieces
        try await BoundedTaskGroup.forEach(count: pieces.count, width: Self.assemblyWidth) { index -> [UInt8]? in
            let piece = pieces[index]
            let decodedSize = piece.chunkShape.reduce(plan.sourceItemSize) { $0 * Int($1) }
            switch piece.content {
            case .stored(let object, let offset, let length):
                let unit = Unit(
                    key: .source(object: object, offset: offset), object: object, offset: offset, length: length,
                    decoding: ZarrTree.Decoding(pipeline: piece.codecs, size: UInt64(decodedSize)), chunkLength: length)
                var decoded = try await self.bytes(of: unit, parts: 1)
                // A copy: the cache keeps the chunk in its file's byte order.
                piece.byteSwap?.apply(&decoded)
                guard let unpacking = plan.unpacking else { return decoded }
                do { return try unpacking.unpack(decoded, object: object) } catch {
                    throw ChunkReadError.assembly("a source chunk cannot be unpacked: \(error)")
                }
            case .inline(let bytes):
                // Unpacked grids hold no inline source chunks (Regridding.unpacked).
                guard plan.unpacking == nil else { throw ChunkReadError.assembly("an inline source chunk of an unpacked variable") }
                do {
                    var decoded = try ChunkDecoder.decode(bytes, pipeline: piece.codecs, decodedSize: decodedSize)
                    piece.byteSwap?.apply(&decoded)
                    return decoded
                } catch {
                    throw ChunkReadError.assembly("an inline source chunk does not decode: \(error)")
                }
            case .fill:
                return nil
            }
        } consume: { index, decoded in
            let piece = pieces[index]
            if let decoded {
                let needed = piece.chunkShape.reduce(plan.itemSize) { $0 * Int($1) }
                guard decoded.count >= needed else {
                    throw ChunkReadError.assembly("a source chunk decodes to \(decoded.count) bytes, expected \(needed)")
                }
                Regridding.copy(piece, from: decoded, into: &out, servedChunkShape: plan.chunkShape, itemSize: plan.itemSize)
            } else if case .fill(let element) = piece.content, element != plan.fill {
                Regridding.fill(piece, element: element, into: &out, servedChunkShape: plan.chunkShape)
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
        let parts = ChunkParts.count(length: length, partSize: partSize)
        guard decoding == nil, parts > 1 else { return nil }
        return UInt32(parts)
    }

    private func bytes(of unit: Unit, parts: UInt32) async throws -> [UInt8] {
        let (answer, pending, starts) = state.withLock { state in
            let (answer, units) = state.plan.request(unit, parts: parts, firstUnit: firstUnit, chunkFiles: arrayChunkFiles)
            let starts = expect(units, in: &state)
            if case .wait(let key) = answer { return (answer, state.results[key], starts) }
            return (answer, nil, starts)
        }
        launch(starts)
        switch answer {
        case .cached(let bytes): return bytes
        case .wait: return try await pending!.value
        }
    }

    private func arrayChunkFiles(_ inode: UInt64) -> ClosedRange<UInt64>? { chunkFiles?(inode) }

    /// The first unit of the chunk file `inode`, for readahead: nil unless it is a stored chunk.
    private func firstUnit(_ inode: UInt64) -> Unit? {
        guard let entry = neighbour?(inode), case .chunk(let object, let offset, let length, let decoding) = entry.content else { return nil }
        let check = decoding == nil ? verification?(inode) : nil
        let firstLength = partCount(length: length, decoding: decoding) == nil || check != nil ? length : partSize
        return Unit(
            key: Key(inode: inode, part: 0), object: object, offset: offset, length: firstLength, decoding: decoding,
            chunkLength: length, verification: check)
    }

    /// A result for each fetch the plan starts, made under the lock so a reader that joins the
    /// fetch before its task runs finds something to wait for.
    private func expect(_ units: [Unit], in state: inout State) -> [(Unit, PendingResult)] {
        units.map { unit in
            let pending = PendingResult()
            state.results[unit.key] = pending
            return (unit, pending)
        }
    }

    /// Starts the fetches (outside the lock); each files its result in the cache, so fetches
    /// nobody waits for (readahead) finish the same way.
    private func launch(_ starts: [(Unit, PendingResult)]) {
        for (unit, pending) in starts {
            let info = objects[Int(unit.object)]
            let fetcher = self.fetcher
            Task {
                do {
                    let bytes = try await Self.fetchAndDecode(
                        fetcher, info, object: unit.object, offset: unit.offset, length: unit.length,
                        decoding: unit.decoding, verification: unit.verification)
                    self.finish(unit.key, bytes: bytes)
                    pending.resolve(.success(bytes))
                } catch {
                    self.finish(unit.key, bytes: nil, failedCheck: (error as? ChunkReadError)?.isFailedCheck ?? false)
                    pending.resolve(.failure(error))
                }
            }
        }
    }

    private static func fetchAndDecode(
        _ fetcher: any ChunkFetching, _ info: ObjectInfo, object: UInt32, offset: UInt64, length: UInt64,
        decoding: ZarrTree.Decoding?, verification: ZarrTree.Decoding? = nil
    ) async throws -> [UInt8] {
        let stored = try await fetcher.fetch(info, offset: offset, length: length)
        guard stored.count == Int(length) else {
            throw ChunkReadError.wrongLength(url: info.url, offset: offset, expected: length, received: stored.count)
        }
        if let verification {
            // The stored bytes are served only once they decode, checks included, to the
            // chunk's size: a body of the right length with other bytes is an error.
            let failure: String?
            do {
                let decoded = try ChunkDecoder.decode(stored, pipeline: verification.pipeline, decodedSize: Int(verification.size))
                failure = decoded.count == Int(verification.size) ? nil : "decodes to \(decoded.count) bytes, expected \(verification.size)"
            } catch {
                failure = "\(error)"
            }
            if let failure { throw ChunkReadError.failedCheck(url: info.url, offset: offset, length: length, reason: failure) }
            return stored
        }
        guard let decoding else { return stored }
        // Decoding runs once per fetch, off the FUSE thread; a failure (bad checksum, corrupt
        // stream) is an error, never wrong bytes.
        var decoded: [UInt8]
        do {
            decoded = try ChunkDecoder.decode(stored, pipeline: decoding.pipeline, decodedSize: Int(decoding.size))
        } catch {
            throw ChunkReadError.undecodable(url: info.url, offset: offset, length: length, reason: "\(error)")
        }
        guard decoded.count == Int(decoding.size) else {
            throw ChunkReadError.decodedSize(url: info.url, offset: offset, expected: decoding.size, decoded: decoded.count)
        }
        if let swap = decoding.byteSwap {
            swap.apply(&decoded)
            return decoded
        }
        if let unpacking = decoding.unpacking {
            do { return try unpacking.unpack(decoded, object: object) } catch {
                throw ChunkReadError.notUnpackable(url: info.url, offset: offset, reason: "\(error)")
            }
        }
        return decoded
    }

    /// Files a finished fetch in the plan (nil: it failed, with `failedCheck` when the bytes
    /// came but failed `--verify-chunks`); its readers are answered by its `PendingResult`.
    private func finish(_ key: Key, bytes: [UInt8]?, failedCheck: Bool = false) {
        state.withLock { state in
            state.plan.finished(key, bytes: bytes, failedCheck: failedCheck)
            state.results.removeValue(forKey: key)
        }
    }
}

/// The result of one fetch, for every reader waiting on it: made under the reader's lock when
/// the plan starts the fetch, resolved once by the task that runs it.
final class PendingResult: Sendable {
    private let slot = Mutex<(result: Result<[UInt8], any Error>?, waiters: [CheckedContinuation<[UInt8], any Error>])>((nil, []))

    var value: [UInt8] {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<[UInt8], any Error>? = slot.withLock { slot in
                    if let result = slot.result { return result }
                    slot.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }

    func resolve(_ result: Result<[UInt8], any Error>) {
        let waiters = slot.withLock { slot -> [CheckedContinuation<[UInt8], any Error>] in
            guard slot.result == nil else { return [] }
            slot.result = result
            defer { slot.waiters = [] }
            return slot.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}

/// Why a chunk file's bytes could not be produced; the filesystem answers EIO for every case.
public enum ChunkReadError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The store answered a range with another number of bytes.
    case wrongLength(url: String, offset: UInt64, expected: UInt64, received: Int)
    /// The stored bytes do not decode with the variable's codecs (`reason`: the codec's error).
    case undecodable(url: String, offset: UInt64, length: UInt64, reason: String)
    case decodedSize(url: String, offset: UInt64, expected: UInt64, decoded: Int)
    case notUnpackable(url: String, offset: UInt64, reason: String)
    /// `--verify-chunks`: the stored bytes fail their check and are not served.
    case failedCheck(url: String, offset: UInt64, length: UInt64, reason: String)
    /// An assembled chunk file (`--decoded` re-gridding) could not be put together.
    case assembly(String)

    public var description: String {
        switch self {
        case .wrongLength(let url, let offset, let expected, let received):
            return "\(url): chunk at \(offset) came back with \(received) of \(expected) bytes"
        case .undecodable(let url, let offset, let length, let reason):
            return "\(url): chunk at \(offset) (\(length) bytes) does not decode: \(reason)"
        case .decodedSize(let url, let offset, let expected, let decoded):
            return "\(url): chunk at \(offset) decodes to \(decoded) bytes, expected \(expected)"
        case .notUnpackable(let url, let offset, let reason): return "\(url): chunk at \(offset) cannot be unpacked: \(reason)"
        case .failedCheck(let url, let offset, let length, let reason):
            return "\(url): chunk at \(offset) (\(length) bytes) fails its check: \(reason)"
        case .assembly(let problem): return problem
        }
    }

    /// Whether the bytes came but failed `--verify-chunks` (counted apart in `status`).
    public var isFailedCheck: Bool {
        if case .failedCheck = self { return true }
        return false
    }
}
