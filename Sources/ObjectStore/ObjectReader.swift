import ByteSource
import Synchronization

/// Reads byte ranges of objects found by a scan, wherever they live, and refuses bytes of an
/// object that changed since: ranged GETs with the recorded ETag for remote objects, and for
/// local files a check that size and mtime are still the scan's before `pread`.
public final class ObjectReader: Sendable {
    private let store: RemoteStore?
    private let files = Mutex<[String: FileSource]>([:])

    public init(store: RemoteStore?) {
        self.store = store
    }

    public func read(_ url: String, identity: ObjectIdentity?, range: Range<UInt64>) async throws -> [UInt8] {
        try await read(url, location: try Location(parsing: url), identity: identity, range: range)
    }

    /// A read of an object whose location is already parsed (`ObjectInfo.location`).
    public func read(_ url: String, location: Location, identity: ObjectIdentity?, range: Range<UInt64>) async throws -> [UInt8] {
        switch location {
        case .local(let path):
            if let identity, try LocalStore.describe(path).identity != identity { throw ObjectStoreError(.changed, url: url) }
            let source = try files.withLock { open -> FileSource in
                if let existing = open[path] { return existing }
                let source = try FileSource(path: path)
                open[path] = source
                return source
            }
            return try source.readSynchronously(offset: range.lowerBound, length: range.count)
        case .s3, .http:
            guard let store else { throw ObjectStoreError(.invalidLocation("no object store for remote objects"), url: url) }
            return try await store.get(url, location: location, range: range, identity: identity)
        }
    }

    /// Several ranges of one object, in the order asked: one multi-range request over HTTP
    /// where the server takes them (see `RemoteStore.get(_:ranges:identity:)`).
    public func read(_ url: String, identity: ObjectIdentity?, ranges: [Range<UInt64>]) async throws -> [[UInt8]] {
        if case .local = try Location(parsing: url) {
            var result: [[UInt8]] = []
            for range in ranges { result.append(try await read(url, identity: identity, range: range)) }
            return result
        }
        guard let store else { throw ObjectStoreError(.invalidLocation("no object store for remote objects"), url: url) }
        return try await store.get(url, ranges: ranges, identity: identity)
    }
}
