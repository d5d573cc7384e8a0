import Synchronization

/// Counts dependent read rounds: the length of the longest chain of reads in which each read
/// could only be issued after the previous one returned. Over a network this chain, times the
/// round-trip time, is the floor of a file's scan time, so it is the number the parser is
/// optimised for.
///
/// Every task carries a clock (a task-local). A read issued at round `r` completes at `r + 1`;
/// code after the read continues at that round. Concurrent children start from their parent's
/// round and the parent resumes at the latest child's round (`forkJoin`).
public final class RoundClock: Sendable {
    private let round: Atomic<Int>

    public init(startingAt start: Int = 0) {
        round = Atomic(start)
    }

    public var current: Int { round.load(ordering: .relaxed) }

    public func advance(to value: Int) {
        _ = round.max(value, ordering: .relaxed)
    }
}

public enum ReadRounds {
    @TaskLocal public static var clock: RoundClock?

    /// Runs `body` with a fresh clock and returns its result with the rounds it took.
    public static func measure<T>(_ body: () async throws -> T) async rethrows -> (T, rounds: Int) {
        let clock = RoundClock()
        let value = try await $clock.withValue(clock) { try await body() }
        return (value, clock.current)
    }

    /// Maps `items` concurrently, each child on its own clock started at the caller's round, and
    /// moves the caller's clock to the slowest child's. Results keep the order of `items`.
    public static func concurrentMap<Item: Sendable, Result: Sendable>(
        _ items: [Item],
        _ transform: @escaping @Sendable (Item) async throws -> Result
    ) async throws -> [Result] {
        if items.isEmpty { return [] }
        let parent = clock
        let start = parent?.current ?? 0
        if items.count == 1 { return [try await transform(items[0])] }
        let results = try await withThrowingTaskGroup(of: (Int, Result, Int).self) { group in
            for (index, item) in items.enumerated() {
                group.addTask {
                    let child = RoundClock(startingAt: start)
                    let value = try await $clock.withValue(child) { try await transform(item) }
                    return (index, value, child.current)
                }
            }
            var slots = [Result?](repeating: nil, count: items.count)
            var latest = start
            for try await (index, value, round) in group {
                slots[index] = value
                latest = max(latest, round)
            }
            parent?.advance(to: latest)
            return slots.map { $0! }
        }
        return results
    }

    /// Runs two pieces of work concurrently, each on its own clock started at the caller's
    /// round; the caller resumes at the later of the two.
    public static func concurrently<A: Sendable, B: Sendable>(
        _ first: @escaping @Sendable () async throws -> A,
        _ second: @escaping @Sendable () async throws -> B
    ) async throws -> (A, B) {
        let parent = clock
        let start = parent?.current ?? 0
        let firstClock = RoundClock(startingAt: start)
        let secondClock = RoundClock(startingAt: start)
        async let a = $clock.withValue(firstClock) { try await first() }
        async let b = $clock.withValue(secondClock) { try await second() }
        let result = try await (a, b)
        parent?.advance(to: max(firstClock.current, secondClock.current))
        return result
    }
}
