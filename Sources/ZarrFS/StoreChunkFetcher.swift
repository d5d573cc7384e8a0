import ObjectStore
import VirtualZarr

/// Chunk bytes from where the scan found them, through `ObjectReader` (identity-checked).
public final class StoreChunkFetcher: ChunkFetching {
    private let reader: ObjectReader

    public init(store: RemoteStore?) {
        reader = ObjectReader(store: store)
    }

    public func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        try await reader.read(object.url, identity: object.etag, range: offset..<(offset + length))
    }
}
