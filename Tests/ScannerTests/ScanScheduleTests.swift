import ByteSource
import TestSupport
import VirtualZarr
import XCTest

@testable import Scanner

/// The scan's scheduling, driven without files or tasks: a reference run checks every
/// invariant after each event of random event orders.
final class ScanScheduleTests: XCTestCase {
    func testListedFilesStartInOrderUpToTheConcurrency() {
        var schedule = ScanSchedule(fileCount: 5, concurrency: 2, policy: .fail, listed: true)
        XCTAssertEqual(schedule.start(), .start([0, 1]))
        XCTAssertEqual(schedule.finished(1, failed: false), .start([2]))
        XCTAssertEqual(schedule.finished(0, failed: false), .start([3]))
        XCTAssertEqual(schedule.finished(2, failed: false), .start([4]))
        XCTAssertEqual(schedule.finished(3, failed: false), .start([]))
        XCTAssertFalse(schedule.isDone)
        XCTAssertEqual(schedule.finished(4, failed: false), .start([]))
        XCTAssertTrue(schedule.isDone)
    }

    func testUnlistedFilesStartAsTheirListingsArrive() {
        var schedule = ScanSchedule(fileCount: 3, concurrency: 2, policy: .skip, listed: false)
        XCTAssertEqual(schedule.start(), .start([]))
        XCTAssertEqual(schedule.listed(2), .start([2]))
        XCTAssertEqual(schedule.listed(0), .start([0]))
        XCTAssertEqual(schedule.listed(1), .start([]), "both places are taken")
        XCTAssertEqual(schedule.finished(0, failed: false), .start([1]))
    }

    func testTheFirstFailureStopsAFailScanAndASkipScanGoesOn() {
        var failing = ScanSchedule(fileCount: 4, concurrency: 2, policy: .fail, listed: true)
        _ = failing.start()
        XCTAssertEqual(failing.finished(1, failed: true), .stop(failedFile: 1))
        XCTAssertTrue(failing.isDone)
        XCTAssertEqual(failing.listed(3), .start([]), "nothing starts after a stop")

        var skipping = ScanSchedule(fileCount: 4, concurrency: 2, policy: .skip, listed: true)
        _ = skipping.start()
        XCTAssertEqual(skipping.finished(1, failed: true), .start([2]))
        XCTAssertEqual(skipping.failures, 1)
    }

    func testRandomEventOrdersKeepEveryInvariant() {
        var random = SplitMix64(seed: 18)
        for run in 0..<300 {
            let files = Int(random.next() % 40) + 1
            let concurrency = Int(random.next() % 6) + 1
            let listedUpFront = random.next() % 2 == 0
            let policy: ErrorPolicy = random.next() % 2 == 0 ? .fail : .skip
            var schedule = ScanSchedule(fileCount: files, concurrency: concurrency, policy: policy, listed: listedUpFront)
            var unlisted = listedUpFront ? [] : Array(0..<files)
            var running: Set<Int> = [], started: [Int] = [], ended: Set<Int> = []
            var stoppedOn: Int?
            func apply(_ action: ScanSchedule.Action) {
                switch action {
                case .start(let batch):
                    for file in batch {
                        XCTAssertFalse(started.contains(file), "run \(run): file \(file) started twice")
                        running.insert(file)
                        started.append(file)
                    }
                case .stop(let file): stoppedOn = file
                }
                XCTAssertLessThanOrEqual(running.count, concurrency, "run \(run): over the concurrency")
            }
            apply(schedule.start())
            while stoppedOn == nil, !schedule.isDone {
                // Either a listing arrives or a running file ends.
                if !unlisted.isEmpty, running.isEmpty || random.next() % 2 == 0 {
                    let file = unlisted.remove(at: Int(random.next() % UInt64(unlisted.count)))
                    apply(schedule.listed(file))
                } else {
                    XCTAssertFalse(running.isEmpty, "run \(run): nothing runs and nothing is left to list, yet not done")
                    guard let file = running.randomElement(using: &random) else { break }
                    running.remove(file)
                    ended.insert(file)
                    apply(schedule.finished(file, failed: random.next() % 7 == 0))
                }
                // A place is never left empty while a listed file waits.
                if stoppedOn == nil {
                    let waiting = started.count < files - unlisted.count
                    XCTAssertFalse(waiting && running.count < concurrency, "run \(run): a listed file waits beside a free place")
                }
            }
            if let stoppedOn {
                XCTAssertEqual(policy, .fail, "run \(run): only a fail scan stops")
                XCTAssertTrue(ended.contains(stoppedOn))
            } else {
                XCTAssertEqual(Set(started), Set(0..<files), "run \(run): every file started")
                XCTAssertEqual(ended.count, files)
                if listedUpFront { XCTAssertEqual(started, Array(0..<files), "run \(run): listed files start in order") }
            }
        }
    }

    func testTheTallyCountsCacheHitsApartFromReads() {
        var tally = ScanTally()
        var counters = ReadCounters()
        counters.requests = 11
        counters.bytesFetched = 4096
        counters.rounds = 3
        tally.record(.scanned(VirtualDataset(), counters))
        tally.record(.cached(VirtualDataset()))
        counters.rounds = 5
        tally.record(.scanned(VirtualDataset(), counters))
        tally.record(.failed(ScanError.file(url: "a.nc", reason: "bad")))
        XCTAssertEqual(tally.done, 4)
        XCTAssertEqual(tally.cacheHits, 1)
        XCTAssertEqual(tally.errors, 1)
        XCTAssertEqual(tally.requests, 22)
        XCTAssertEqual(tally.bytes, 8192)
        XCTAssertEqual(tally.maxRounds, 5)
    }
}
