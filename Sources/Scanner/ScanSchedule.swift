import ByteSource
import VirtualZarr

/// How one file's scan ended.
enum FileOutcome: Sendable {
    /// Taken from the manifest cache: no metadata was read.
    case cached(VirtualDataset)
    /// Parsed and mapped, with what reading it cost.
    case scanned(VirtualDataset, ReadCounters)
    case failed(ScanError)

    /// The dataset with what it has in common with the files before it shared with them.
    mutating func compact(sharing shared: inout SharedDescriptions) {
        switch self {
        case .cached(var dataset):
            shared.compact(&dataset)
            self = .cached(dataset)
        case .scanned(var dataset, let counters):
            shared.compact(&dataset)
            self = .scanned(dataset, counters)
        case .failed: break
        }
    }

    var dataset: VirtualDataset? {
        switch self {
        case .cached(let dataset), .scanned(let dataset, _): return dataset
        case .failed: return nil
        }
    }
}

/// The scan's scheduling decisions, apart from the tasks that carry them out (as
/// async-http-client's connection pool state machine is apart from its channels): which files
/// start, in what order, how many at once, and when the scan stops. Files enter as they are
/// listed, wait for one of `concurrency` places, and leave with an outcome; under
/// `ErrorPolicy.fail` the first failure stops the scan. Pure: tested without files or tasks.
struct ScanSchedule {
    enum Action: Equatable {
        /// Start scanning these files (indices into the listing), in this order.
        case start([Int])
        /// Cancel what runs and end the scan with this file's failure.
        case stop(failedFile: Int)
    }

    let fileCount: Int
    let concurrency: Int
    let policy: ErrorPolicy
    /// Listed files waiting for a place, in listing order of arrival.
    private var ready: [Int] = []
    private var nextReady = 0
    private(set) var running = 0
    private(set) var finished = 0
    private(set) var failures = 0
    private(set) var stopped = false

    /// `listed`: whether every file is listed before the scan starts (otherwise each enters
    /// with `listed(_:)`).
    init(fileCount: Int, concurrency: Int, policy: ErrorPolicy, listed: Bool) {
        self.fileCount = fileCount
        self.concurrency = max(1, concurrency)
        self.policy = policy
        if listed { ready = Array(0..<fileCount) }
    }

    var isDone: Bool { stopped || finished == fileCount }

    /// The files to start first.
    mutating func start() -> Action { .start(fillPlaces()) }

    /// A file's listing arrived: it may start.
    mutating func listed(_ file: Int) -> Action {
        guard !stopped else { return .start([]) }
        ready.append(file)
        return .start(fillPlaces())
    }

    /// A file's scan ended.
    mutating func finished(_ file: Int, failed: Bool) -> Action {
        running -= 1
        finished += 1
        if failed {
            failures += 1
            if policy == .fail {
                stopped = true
                return .stop(failedFile: file)
            }
        }
        return .start(stopped ? [] : fillPlaces())
    }

    private mutating func fillPlaces() -> [Int] {
        var starting: [Int] = []
        while running < concurrency, nextReady < ready.count {
            starting.append(ready[nextReady])
            nextReady += 1
            running += 1
        }
        return starting
    }
}

/// What the scan has read so far, for progress and the summary.
struct ScanTally {
    var done = 0
    var errors = 0
    var requests = 0
    var bytes: UInt64 = 0
    var cacheHits = 0
    /// The most dependent read rounds any scanned file needed.
    var maxRounds = 0

    mutating func record(_ outcome: FileOutcome) {
        done += 1
        switch outcome {
        case .cached: cacheHits += 1
        case .scanned(_, let counters):
            maxRounds = max(maxRounds, counters.rounds)
            requests += counters.requests
            bytes += counters.bytesFetched
        case .failed: errors += 1
        }
    }
}
