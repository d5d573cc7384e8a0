/// The one rule for handling a large stored chunk in parts, which the chunk cache (parts cached
/// and read ahead one by one) and the fetcher (parts fetched in parallel) share: a chunk longer
/// than two parts is cut into `partSize` pieces, the last one shorter.
public enum ChunkParts {
    /// The parts a chunk of `length` bytes is handled in (1: whole).
    public static func count(length: UInt64, partSize: UInt64) -> UInt64 {
        let size = max(1, partSize)
        return length > 2 * size ? (length + size - 1) / size : 1
    }

    /// The byte ranges of those parts, for a chunk at `offset`.
    public static func ranges(offset: UInt64, length: UInt64, partSize: UInt64) -> [Range<UInt64>] {
        let size = max(1, partSize)
        let parts = count(length: length, partSize: size)
        guard parts > 1 else { return [offset..<(offset + length)] }
        return (0..<parts).map { part in (offset + part * size)..<min(offset + (part + 1) * size, offset + length) }
    }
}
