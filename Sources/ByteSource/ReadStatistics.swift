import Synchronization

/// What a reader asked of its source: how often, how much, and in how many dependent rounds.
public struct ReadCounters: Sendable, Equatable, Codable {
    /// Reads the parser (or any client) made against the cache.
    public var requests: Int = 0
    /// Reads that reached the underlying source (after caching and coalescing).
    public var sourceReads: Int = 0
    /// Bytes fetched from the underlying source.
    public var bytesFetched: UInt64 = 0
    /// The longest chain of dependent source reads (see `ReadRounds`).
    public var rounds: Int = 0

    public init() {}

    public static func + (lhs: ReadCounters, rhs: ReadCounters) -> ReadCounters {
        var sum = lhs
        sum.requests += rhs.requests
        sum.sourceReads += rhs.sourceReads
        sum.bytesFetched += rhs.bytesFetched
        sum.rounds = max(lhs.rounds, rhs.rounds)
        return sum
    }
}

public final class ReadStatistics: Sendable {
    private let counters = Mutex(ReadCounters())

    public init() {}

    public var snapshot: ReadCounters { counters.withLock { $0 } }

    func record(_ update: (inout ReadCounters) -> Void) {
        counters.withLock { update(&$0) }
    }
}
