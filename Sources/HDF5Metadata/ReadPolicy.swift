/// How the parser schedules its reads: whether independent structures are read concurrently,
/// how much it reads on a guess before it knows a structure's size, and how far it searches
/// ahead for dataset headers. The caller chooses it for its byte layer (the scanner: one
/// policy for remote objects behind a page cache, another for local files); the parser only
/// follows it. Results never depend on the policy, only the number and order of reads do.
public struct ReadPolicy: Sendable, Equatable {
    /// Issue independent reads concurrently (the right choice for remote sources, where latency
    /// dominates). For bytes already in memory or on a local disk, `false` parses one read at a
    /// time and saves the scheduling cost; many files are then parsed in parallel instead.
    public var concurrentReads: Bool
    /// With concurrent reads, this many of the file's first bytes are searched for dataset
    /// headers to parse before the links that name them are read (the dimension scales of a
    /// netCDF-4 file, which reference every variable). Best no larger than the block cache's
    /// first fetch, so the search reads nothing new. 0 turns it off.
    public var earlyScanBytes: Int
    /// Bytes read at an object header's address before its size is known: most headers fit,
    /// and a larger one costs one more read.
    public var objectHeaderFirstRead: Int
    /// Bytes read at a v1 B-tree node's address before its entry count is known.
    public var btreeNodeFirstRead: Int

    public init(concurrentReads: Bool, earlyScanBytes: Int, objectHeaderFirstRead: Int = 1024, btreeNodeFirstRead: Int = 4096) {
        self.concurrentReads = concurrentReads
        self.earlyScanBytes = earlyScanBytes
        self.objectHeaderFirstRead = objectHeaderFirstRead
        self.btreeNodeFirstRead = btreeNodeFirstRead
    }

    /// For a source where each read waits on the network: everything independent at once, and
    /// dataset headers searched for in the first 16 KiB (what the block cache fetches first).
    public static let concurrent = ReadPolicy(concurrentReads: true, earlyScanBytes: 16 * 1024)
    /// For bytes in memory or on a local disk: one read after another, no search ahead.
    public static let sequential = ReadPolicy(concurrentReads: false, earlyScanBytes: 0)
}
