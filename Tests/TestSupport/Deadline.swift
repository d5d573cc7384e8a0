/// Runs `body` with a deadline; a hang becomes a test failure instead of a stuck suite.
public func withDeadline<T: Sendable>(
    _ seconds: Double, _ label: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let value = first else { throw Hang(description: "\(label) did not finish within \(seconds) s") }
        return value
    }
}

/// What `withDeadline` throws when the body outlives it.
public struct Hang: Error, CustomStringConvertible {
    public var description: String
}
