import ByteSource
import Synchronization

/// Safety limits that keep a hostile file from exhausting memory, stack or time.
public struct ParseLimits: Sendable, Equatable {
    /// Largest single metadata structure read in one piece (object header chunk, heap, node).
    public var maxStructureBytes: Int = 64 << 20
    /// Largest attribute value decoded.
    public var maxAttributeBytes: Int = 64 << 20
    /// Chunks listed per dataset before the dataset is reported as too large.
    public var maxChunksPerDataset: Int = 100_000_000
    /// Objects (groups, datasets, datatypes) visited per file.
    public var maxObjects: Int = 1_000_000
    /// Depth of B-trees, heaps and group nesting.
    public var maxDepth: Int = 64
    /// Messages in one object header, continuation blocks included.
    public var maxMessagesPerHeader: Int = 65_536
    public init() {}
}

/// Addresses already visited within one tree or list: a node reached twice means the file
/// links it into a cycle or a diamond, which would multiply the work without bound.
final class VisitedNodes: Sendable {
    private let seen = Mutex<Set<UInt64>>([])
    let structure: String

    init(_ structure: String) { self.structure = structure }

    func claim(_ address: UInt64, in context: FileContext) throws {
        let fresh = seen.withLock { $0.insert(address).inserted }
        guard fresh else {
            throw HDF5Error(.cycle, structure, at: context.absolute(address), "node referenced twice")
        }
    }
}

/// What every structure parser needs: the source, the file's address arithmetic and limits.
/// Shared by all concurrent tasks parsing one file.
final class FileContext: Sendable {
    let source: any RandomAccessSource
    let name: String
    /// Absolute file position that relative addresses count from (the superblock's position,
    /// or the stored base address).
    let base: UInt64
    let fileSize: UInt64
    let offsetSize: Int
    let lengthSize: Int
    let limits: ParseLimits
    let policy: ReadPolicy
    let sharedMessageHeaps: [(typeMask: UInt16, heapAddress: UInt64)]
    private let globalHeapCollections = Mutex<[UInt64: GlobalHeapCollectionEntry]>([:])

    init(
        source: any RandomAccessSource, fileSize: UInt64, base: UInt64, offsetSize: Int, lengthSize: Int,
        limits: ParseLimits, policy: ReadPolicy, sharedMessageHeaps: [(typeMask: UInt16, heapAddress: UInt64)] = []
    ) {
        self.source = source
        self.name = source.name
        self.fileSize = fileSize
        self.base = base
        self.offsetSize = offsetSize
        self.lengthSize = lengthSize
        self.limits = limits
        self.policy = policy
        self.sharedMessageHeaps = sharedMessageHeaps
    }

    func with(sharedMessageHeaps heaps: [(typeMask: UInt16, heapAddress: UInt64)]) -> FileContext {
        FileContext(
            source: source, fileSize: fileSize, base: base, offsetSize: offsetSize, lengthSize: lengthSize,
            limits: limits, policy: policy, sharedMessageHeaps: heaps)
    }

    func absolute(_ address: UInt64) -> UInt64 { base &+ address }

    /// Reads `length` bytes at relative `address`. Lengths beyond the file end give a short
    /// cursor (parsing then fails with `truncated` at the exact field); absurd lengths fail early.
    func read(_ address: UInt64, _ length: Int, _ structure: String) async throws -> ByteCursor {
        let position = absolute(address)
        guard address != ByteCursor.undefined(offsetSize) else {
            throw HDF5Error(.corrupt, structure, at: 0, "undefined address")
        }
        guard position >= base, position < fileSize else {
            throw HDF5Error(.truncated, structure, at: position, "address lies beyond the end of the file (\(fileSize) bytes)")
        }
        guard length >= 0, length <= limits.maxStructureBytes else {
            throw HDF5Error(.limitExceeded, structure, at: position, "structure claims \(length) bytes")
        }
        let available = Int(min(UInt64(length), fileSize - position))
        if let bytes = source.readWithoutWaiting(offset: position, length: available) { return cursor(bytes, at: position, structure) }
        let bytes: [UInt8]
        do {
            bytes = try await source.read(offset: position, length: available)
        } catch let error as HDF5Error {
            throw error
        } catch {
            throw HDF5Error(.io, structure, at: position, "\(error)")
        }
        return cursor(bytes, at: position, structure)
    }

    func cursor(_ bytes: [UInt8], at absolutePosition: UInt64, _ structure: String) -> ByteCursor {
        ByteCursor(bytes, origin: absolutePosition, structure: structure, offsetSize: offsetSize, lengthSize: lengthSize)
    }

    var undefinedAddress: UInt64 { ByteCursor.undefined(offsetSize) }

    /// `ReadRounds.concurrentMap`, or a plain loop when concurrent reads are off.
    func map<Item: Sendable, Result: Sendable>(_ items: [Item], _ transform: @escaping @Sendable (Item) async throws -> Result) async throws -> [Result] {
        if policy.concurrentReads { return try await ReadRounds.concurrentMap(items, transform) }
        var results: [Result] = []
        results.reserveCapacity(items.count)
        for item in items { results.append(try await transform(item)) }
        return results
    }

    /// `ReadRounds.concurrently`, or one after the other when concurrent reads are off.
    func both<A: Sendable, B: Sendable>(
        _ first: @escaping @Sendable () async throws -> A,
        _ second: @escaping @Sendable () async throws -> B
    ) async throws -> (A, B) {
        if policy.concurrentReads { return try await ReadRounds.concurrently(first, second) }
        let a = try await first()
        return (a, try await second())
    }

    /// Announces structures about to be read concurrently, so their reads are coalesced.
    func prefetch(_ addresses: [UInt64], length: Int) {
        guard addresses.count > 1 else { return }
        prefetch(addresses.map { ByteRange(offset: $0, length: length) })
    }

    /// Announces structures (relative addresses) about to be read one after another, so their
    /// reads are fetched in the round of the first.
    func prefetch(_ ranges: [ByteRange]) {
        guard policy.concurrentReads, !ranges.isEmpty else { return }
        source.prefetch(
            ranges.compactMap { range in
                let position = absolute(range.offset)
                guard range.offset != undefinedAddress, position < fileSize, range.length > 0 else { return nil }
                return ByteRange(offset: position, length: Int(min(UInt64(range.length), fileSize - position)))
            })
    }

    /// A global heap collection, read once per file. One that is already read is returned
    /// without an `await`: a file's vlen strings and references share a few collections, and
    /// each value would otherwise wait on the same finished task.
    func globalHeapCollection(at address: UInt64) async throws -> GlobalHeapCollection {
        let entry = globalHeapCollections.withLock { cache -> GlobalHeapCollectionEntry in
            if let existing = cache[address] { return existing }
            let task = Task(executorPreference: SerialTaskExecutor.current) { [self] in
                let collection = try await GlobalHeapCollection.read(at: address, in: self)
                globalHeapCollections.withLock { $0[address] = .read(collection) }
                return collection
            }
            cache[address] = .reading(task)
            return .reading(task)
        }
        switch entry {
        case .read(let collection): return collection
        case .reading(let task): return try await task.value
        }
    }
}

private enum GlobalHeapCollectionEntry {
    case reading(Task<GlobalHeapCollection, any Error>)
    case read(GlobalHeapCollection)
}
