import Synchronization
import ObjectStore
import VirtualZarr
import ZarrFS

/// Chunk bytes from where the scan found them, through `ObjectReader` (identity-checked).
/// Large chunks are fetched as parallel parts: one TCP stream behind a long round trip cannot
/// fill the link, several can. Every part carries the same identity check, so the parts cannot
/// come from different versions of the object.
public final class StoreChunkFetcher: ChunkFetching {
    private let reader: ObjectReader
    public let partSize: UInt64
    /// How long one fetch may take, retries included (nil: no bound).
    public let timeout: Duration?

    /// Chunks longer than `2 × partSize` are split into parts of `partSize` bytes.
    public init(store: RemoteStore?, partSize: UInt64 = 2 << 20, timeout: Duration? = nil) {
        reader = ObjectReader(store: store)
        self.partSize = max(1, partSize)
        self.timeout = timeout
    }

    /// The chunk's bytes, or `ChunkFetchError` of kind `.timedOut` once `timeout` has passed: a stalled
    /// server makes a reader wait that long at most, and the transfer is cancelled.
    public func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        do {
            return try await fetchWithinTimeout(object, offset: offset, length: length)
        } catch let error as ObjectStoreError {
            // An object rewritten or gone is never served: the filesystem answers ESTALE.
            throw ChunkFetchError(error.kind == .changed || error.kind == .notFound ? .changed : .failed, error.description)
        } catch let error as ChunkTimeout {
            throw ChunkFetchError(.timedOut, error.description)
        }
    }

    private func fetchWithinTimeout(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        guard let timeout else { return try await fetchParts(object, offset: offset, length: length) }
        // A race of two unstructured tasks: a task group would wait for the fetch to end even
        // after the deadline, and a transfer stuck in libcurl ends only at its own timeouts.
        let answer = FirstAnswer()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
            let fetch = Task {
                do {
                    let bytes = try await self.fetchParts(object, offset: offset, length: length)
                    if answer.claim() { continuation.resume(returning: bytes) }
                } catch {
                    if answer.claim() { continuation.resume(throwing: error) }
                }
                answer.cancelTimer()
            }
            answer.setTimer(
                Task {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled, answer.claim() else { return }
                    // Cancelling ends the fetch's retries; a transfer under way ends at libcurl's
                    // low-speed limit.
                    fetch.cancel()
                    continuation.resume(throwing: ChunkTimeout(url: object.url, offset: offset, length: length, timeout: timeout))
                })
        }
    }

    /// One range of the object, through its location parsed at scan time.
    private func read(_ object: ObjectInfo, range: Range<UInt64>) async throws -> [UInt8] {
        guard let location = object.location else { return try await reader.read(object.url, identity: object.identity, range: range) }
        return try await reader.read(object.url, location: location, identity: object.identity, range: range)
    }

    private func fetchParts(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        let parts = Self.parts(offset: offset, length: length, partSize: partSize)
        if parts.count == 1 {
            return try await read(object, range: offset..<(offset + length))
        }

        return try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, range) in parts.enumerated() {
                group.addTask { (index, try await self.read(object, range: range)) }
            }
            // Each part is copied into its place as it arrives, so the whole chunk is allocated
            // once and no part waits for the slowest.
            var whole = [UInt8](repeating: 0, count: Int(length))
            for try await (index, bytes) in group {
                guard bytes.count == parts[index].count else {
                    throw ChunkReadError.wrongLength(
                        url: object.url, offset: parts[index].lowerBound, expected: UInt64(parts[index].count), received: bytes.count)
                }
                let start = Int(parts[index].lowerBound - offset)
                whole.replaceSubrange(start..<(start + bytes.count), with: bytes)
            }
            return whole
        }
    }

    /// The byte ranges a chunk is fetched as: one range, or equal parts when it is large.
    public static func parts(offset: UInt64, length: UInt64, partSize: UInt64) -> [Range<UInt64>] {
        ChunkParts.ranges(offset: offset, length: length, partSize: partSize)
    }
}

/// A chunk fetch that did not finish within the mount's `--timeout`.
public struct ChunkTimeout: Error, CustomStringConvertible, Sendable {
    public var url: String
    public var offset: UInt64
    public var length: UInt64
    public var timeout: Duration

    public var description: String {
        "\(url): \(length) bytes at \(offset) did not arrive within \(timeout.components.seconds) s (--timeout); the server is stalled or too slow"
    }
}

/// True for the first caller of `claim` only: who may resume a continuation raced by two tasks.
final class FirstAnswer: Sendable {
    private let answered = Mutex(false)
    private let timer = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))

    func setTimer(_ task: Task<Void, Never>) {
        let cancelled = timer.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    func cancelTimer() {
        let task = timer.withLock { state in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }

    func claim() -> Bool {
        answered.withLock { done in
            defer { done = true }
            return !done
        }
    }
}
