/// Something that can hand out byte ranges: a local file, a remote object, an in-memory buffer.
///
/// Reads are async because the interesting implementations are remote; the HDF5 parser and the
/// chunk read path only ever see this protocol, never the transport.
public protocol RandomAccessSource: Sendable {
    /// Names the source in errors and logs (a path or a URL, never credentials).
    var name: String { get }
    /// The total size in bytes.
    func size() async throws -> UInt64
    /// Up to `length` bytes starting at `offset`. Fewer bytes come back only at the end of the
    /// source; a read starting at or past the end returns an empty array.
    func read(offset: UInt64, length: Int) async throws -> [UInt8]
    /// A hint that these ranges will be read soon; caching sources start fetching them
    /// together. The default does nothing.
    func prefetch(_ ranges: [ByteRange])
    /// Several ranges at once, in the order given (`read(offset:length:)` for each). Sources
    /// that can fetch many ranges in one request (HTTP multi-range) override it; the default
    /// reads them concurrently.
    func read(ranges: [ByteRange]) async throws -> [[UInt8]]
    /// `read(offset:length:)` when it can be answered without waiting (counted and timed like a
    /// read: statistics and the round clock see it); `nil` otherwise. Most of a parse's reads
    /// land on bytes already cached; answered here, they spare the caller an async call and a
    /// task switch, which checks the task's executor preference under a lock. The default
    /// answers nothing.
    func readWithoutWaiting(offset: UInt64, length: Int) -> [UInt8]?
}

extension RandomAccessSource {
    public func prefetch(_ ranges: [ByteRange]) {}

    public func readWithoutWaiting(offset: UInt64, length: Int) -> [UInt8]? { nil }

    public func read(ranges: [ByteRange]) async throws -> [[UInt8]] {
        if ranges.count == 1 { return [try await read(offset: ranges[0].offset, length: ranges[0].length)] }
        return try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for (index, range) in ranges.enumerated() {
                group.addTask { (index, try await self.read(offset: range.offset, length: range.length)) }
            }
            var results = [[UInt8]](repeating: [], count: ranges.count)
            for try await (index, bytes) in group { results[index] = bytes }
            return results
        }
    }
}

public struct ByteRange: Sendable, Equatable {
    public var offset: UInt64
    public var length: Int

    public init(offset: UInt64, length: Int) {
        self.offset = offset
        self.length = length
    }
}

/// Why a byte range could not be read.
public struct ByteSourceError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case cannotOpen(errno: Int32)
        case readFailed(errno: Int32)
        case outOfRange
        case invalidRange
    }

    public var kind: Kind
    public var source: String
    public var offset: UInt64
    public var length: Int

    public init(_ kind: Kind, source: String, offset: UInt64 = 0, length: Int = 0) {
        self.kind = kind
        self.source = source
        self.offset = offset
        self.length = length
    }

    public var description: String {
        switch kind {
        case .cannotOpen(let code):
            return "\(source): cannot open (\(SystemErrorText.describe(code))); check that the path exists and is readable"
        case .readFailed(let code):
            return "\(source): read of \(length) bytes at offset \(offset) failed (\(SystemErrorText.describe(code)))"
        case .outOfRange:
            return "\(source): range \(offset)+\(length) lies beyond the end of the object"
        case .invalidRange:
            return "\(source): invalid range \(offset)+\(length)"
        }
    }
}
