import ByteSource
import ObjectStore
import Synchronization
import VirtualZarr

/// Chunk bytes from where the scan found them: ranged GETs with `If-Match` for remote objects,
/// `pread` for local files after checking that size and mtime are still those of the scan.
public final class StoreChunkFetcher: ChunkFetching {
    private let store: RemoteStore?
    private let files = Mutex<[String: FileSource]>([:])

    public init(store: RemoteStore?) {
        self.store = store
    }

    public func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        switch try Location(parsing: object.url) {
        case .local(let path):
            let current = try LocalStore.describe(path)
            guard current.etag == object.etag || object.etag == nil else {
                throw ObjectStoreError(.changed, url: object.url)
            }
            let source = try files.withLock { open -> FileSource in
                if let existing = open[path] { return existing }
                let source = try FileSource(path: path)
                open[path] = source
                return source
            }
            return try source.readSynchronously(offset: offset, length: Int(length))
        case .s3, .http:
            guard let store else { throw ObjectStoreError(.invalidLocation("no object store for remote chunks"), url: object.url) }
            return try await store.get(object.url, range: offset..<(offset + length), identity: object.etag)
        }
    }
}
