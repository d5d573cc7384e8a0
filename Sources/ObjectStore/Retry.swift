/// When to try a request again: a pure decision, tested without sockets.
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(10)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// What happened on one attempt.
    public enum Outcome: Sendable, Equatable {
        case success
        /// An HTTP status that is not success, with `Retry-After` (seconds) and S3's error code.
        case status(Int, retryAfter: Duration?, s3Code: String?)
        /// The body was shorter than Content-Length / Content-Range promised.
        case shortBody
        case transport(retryable: Bool)
    }

    public enum Decision: Sendable, Equatable {
        case done
        case retry(after: Duration)
        case fail
    }

    /// `attempt` counts from 1. `jitter` in [0, 1) spreads retries of many clients apart
    /// ("full jitter": a uniform delay up to the exponential bound).
    public func decide(attempt: Int, outcome: Outcome, jitter: Double) -> Decision {
        let retryable: Bool
        var floor: Duration = .zero
        switch outcome {
        case .success:
            return .done
        case .status(let status, let retryAfter, let code):
            retryable =
                [429, 500, 502, 503, 504].contains(status) || code == "SlowDown" || code == "RequestTimeout"
                || code == "InternalError"
            floor = retryAfter.map { min($0, maxDelay) } ?? .zero
        case .shortBody:
            retryable = true
        case .transport(let canRetry):
            retryable = canRetry
        }
        guard retryable, attempt < maxAttempts else { return .fail }
        let exponent = min(attempt - 1, 20)
        let bound = min(baseDelay * (1 << exponent), maxDelay)
        return .retry(after: max(bound * max(0, min(jitter, 1)), floor))
    }
}

/// A small deterministic generator for jitter, so tests and replays are reproducible.
public struct JitterSource: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}
