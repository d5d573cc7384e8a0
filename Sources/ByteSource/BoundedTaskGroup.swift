/// Work on many items with a bounded number of child tasks: a year of files or a chunk's
/// hundreds of source pieces would otherwise start that many requests at once.
public enum BoundedTaskGroup {
    /// Runs `work` for each index in `0..<count`, at most `width` at once, and hands each result
    /// to `consume` as it finishes (in completion order, on the caller's task, so `consume` may
    /// touch the caller's state). A throw from either cancels the work still running.
    public static func forEach<Result: Sendable>(
        count: Int, width: Int, _ work: @escaping @Sendable (Int) async throws -> Result,
        consume: (Int, Result) throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var next = 0
            func launch() {
                let index = next
                next += 1
                group.addTask { (index, try await work(index)) }
            }
            while next < min(max(width, 1), count) { launch() }
            while let (index, result) = try await group.next() {
                try consume(index, result)
                if next < count { launch() }
            }
        }
    }
}
