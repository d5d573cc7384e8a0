/// A local file read with `pread`; safe to share between tasks (the descriptor is never moved).
public final class FileSource: RandomAccessSource {
    public let name: String
    private let descriptor: Int32
    private let fileSize: UInt64

    public init(path: String) throws {
        name = path
        let (fd, openErrno) = SystemCalls.openReadOnly(path)
        guard fd >= 0 else { throw ByteSourceError(.cannotOpen(errno: openErrno), source: path) }
        let (size, statErrno) = SystemCalls.fileSize(fd)
        guard statErrno == 0 else {
            SystemCalls.closeDescriptor(fd)
            throw ByteSourceError(.cannotOpen(errno: statErrno), source: path)
        }
        descriptor = fd
        fileSize = size
    }

    deinit { SystemCalls.closeDescriptor(descriptor) }

    public func size() async throws -> UInt64 { fileSize }

    public func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        try readSynchronously(offset: offset, length: length)
    }

    /// The same read without suspension, for callers that are already off the cooperative pool.
    public func readSynchronously(offset: UInt64, length: Int) throws -> [UInt8] {
        guard length >= 0 else { throw ByteSourceError(.invalidRange, source: name, offset: offset, length: length) }
        guard offset < fileSize, length > 0 else { return [] }
        let count = Int(min(UInt64(length), fileSize - offset))
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let (n, code) = SystemCalls.preadFully(descriptor, into: UnsafeMutableRawBufferPointer(buffer), at: offset)
            initialized = n
            failure = code
        }
        if failure != 0 { throw ByteSourceError(.readFailed(errno: failure), source: name, offset: offset, length: length) }
        return bytes
    }
}

/// Bytes held in memory: fixtures, fuzzing, and benchmarks that must exclude the disk.
public struct InMemorySource: RandomAccessSource {
    public let name: String
    public let bytes: [UInt8]

    public init(name: String = "<memory>", bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    public func size() async throws -> UInt64 { UInt64(bytes.count) }

    public func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        guard length >= 0 else { throw ByteSourceError(.invalidRange, source: name, offset: offset, length: length) }
        guard offset < UInt64(bytes.count), length > 0 else { return [] }
        let start = Int(offset)
        let end = start + min(length, bytes.count - start)
        return Array(bytes[start..<end])
    }
}

/// Wraps a source and sleeps before every read: simulated round-trip latency for benchmarks and
/// for tests of the read pattern (how many dependent rounds a parse needs).
public struct LatencySource<Base: RandomAccessSource>: RandomAccessSource {
    public let base: Base
    public let latency: Duration

    public init(_ base: Base, latency: Duration) {
        self.base = base
        self.latency = latency
    }

    public var name: String { base.name }

    public func size() async throws -> UInt64 { try await base.size() }

    public func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        try await Task.sleep(for: latency)
        return try await base.read(offset: offset, length: length)
    }
}
