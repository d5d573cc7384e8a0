/// How many byte ranges one multi-range GET to an origin asks for, learned from that origin's
/// answers. A pure state machine: `RemoteStore` asks it how to split a batch of ranges into
/// requests and tells it how each request was answered.
///
/// A server asked for more ranges than it allows (nginx `max_ranges`, Apache `MaxRanges`) sends
/// the whole object instead, which the client cuts off and asks again in smaller requests. At
/// the start of a scan every file in flight asks at once, so the limit starts at `initial`,
/// which hardened servers allow. Stock servers allow far more (nginx has no limit, Apache 200),
/// and each request a batch is split into costs the server, the network and the client. So one
/// request at a time (a probe) asks for twice as many ranges: an answer raises the limit; a
/// refusal costs that one request (cut off and asked again), and an origin that has refused any
/// request is never probed again.
struct MultiRangeLimit: Sendable, Equatable {
    /// The ranges per request before the origin has answered any.
    static let initial = 16
    /// Upper bound of the learned limit: 128 ranges of 11-digit offsets make a `Range` header of
    /// about 3 KB, well below the 8 KB header-line limits of nginx and Apache.
    static let ceiling = 128

    /// Ranges per request for requests that are not probes.
    private(set) var perRequest = initial
    /// The most ranges the origin has answered in one multipart body. A lowered limit never
    /// goes below it (unless the origin later refuses that many).
    private(set) var mostAnswered = 1
    /// The fewest ranges the origin answered in some other way than asked.
    private(set) var fewestRefused: Int?
    /// One probe at a time: if it is refused, only its own request has to be asked again.
    private(set) var probeInFlight = false

    /// How to split a batch: the first request asks for `first` ranges (a probe if
    /// `firstIsProbe`), the others for up to `perRequest` each.
    struct Plan: Equatable {
        var first: Int
        var perRequest: Int
        var firstIsProbe: Bool
    }

    mutating func plan(rangeCount: Int) -> Plan {
        let probe = min(rangeCount, 2 * perRequest, Self.ceiling)
        if probe > perRequest, !probeInFlight, fewestRefused == nil {
            probeInFlight = true
            return Plan(first: probe, perRequest: perRequest, firstIsProbe: true)
        }
        return Plan(first: min(rangeCount, perRequest), perRequest: perRequest, firstIsProbe: false)
    }

    /// The origin answered a request for `count` ranges with all of them.
    mutating func answered(_ count: Int, probe: Bool) {
        if probe { probeInFlight = false }
        mostAnswered = max(mostAnswered, count)
        // Never back up to a count the origin has refused: every request that is asked again
        // after a refusal then asks for fewer ranges, whatever the origin answers meanwhile.
        perRequest = max(perRequest, min(count, Self.ceiling, (fewestRefused ?? .max) - 1))
    }

    /// The origin answered a request for `count` ranges some other way: with the whole object
    /// (`wholeObject`), or with a status or body that did not hold the ranges. Returns the
    /// lowered limit, or nil if the limit stays.
    ///
    /// After a whole object the next limit is half the refused count; after anything else it is
    /// one range per request. Either way it never falls below what the origin already answered
    /// in one body, as long as that is fewer ranges than it just refused. A refused probe leaves
    /// the limit as it was.
    mutating func refused(_ count: Int, wholeObject: Bool, probe: Bool) -> Int? {
        fewestRefused = min(fewestRefused ?? .max, count)
        if probe {
            // A probe asks for more than the limit; its refusal says nothing about the limit,
            // even when it comes back before any request at the limit was answered.
            probeInFlight = false
            return nil
        }
        let answeredBefore = min(mostAnswered, count - 1)
        let next = max(1, min(perRequest, wholeObject ? max(count / 2, answeredBefore) : answeredBefore))
        defer { perRequest = next }
        return next < perRequest ? next : nil
    }

    /// The request failed without an answer about its ranges (the transfer failed after its
    /// retries): nothing is learned, and another probe may go out.
    mutating func abandoned(probe: Bool) {
        if probe { probeInFlight = false }
    }
}
