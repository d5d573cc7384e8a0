import ObjectStore
import VirtualZarr

/// Chunk bytes from where the scan found them, through `ObjectReader` (identity-checked).
/// Large chunks are fetched as parallel parts: one TCP stream behind a long round trip cannot
/// fill the link, several can. Every part carries the same identity check, so the parts cannot
/// come from different versions of the object.
public final class StoreChunkFetcher: ChunkFetching {
    private let reader: ObjectReader
    public let partSize: UInt64

    /// Chunks longer than `2 × partSize` are split into parts of `partSize` bytes.
    public init(store: RemoteStore?, partSize: UInt64 = 2 << 20) {
        reader = ObjectReader(store: store)
        self.partSize = max(1, partSize)
    }

    public func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        let parts = Self.parts(offset: offset, length: length, partSize: partSize)
        if parts.count == 1 {
            return try await reader.read(object.url, identity: object.etag, range: offset..<(offset + length))
        }
        let reader = self.reader
        return try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, range) in parts.enumerated() {
                group.addTask { (index, try await reader.read(object.url, identity: object.etag, range: range)) }
            }
            // Each part is copied into its place as it arrives, so the whole chunk is allocated
            // once and no part waits for the slowest.
            var whole = [UInt8](repeating: 0, count: Int(length))
            for try await (index, bytes) in group {
                guard bytes.count == parts[index].count else {
                    throw ChunkReadError(description: "\(object.url): part \(parts[index]) came back with \(bytes.count) bytes")
                }
                let start = Int(parts[index].lowerBound - offset)
                whole.replaceSubrange(start..<(start + bytes.count), with: bytes)
            }
            return whole
        }
    }

    /// The byte ranges a chunk is fetched as: one range, or equal parts when it is large.
    static func parts(offset: UInt64, length: UInt64, partSize: UInt64) -> [Range<UInt64>] {
        guard length > 2 * partSize else { return [offset..<(offset + length)] }
        return stride(from: offset, to: offset + length, by: Int(partSize)).map { $0..<min($0 + partSize, offset + length) }
    }
}
