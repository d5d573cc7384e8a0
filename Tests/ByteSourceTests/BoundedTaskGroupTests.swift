import Synchronization
import XCTest

@testable import ByteSource

final class BoundedTaskGroupTests: XCTestCase {
    func testEveryIndexRunsOnceWithAtMostWidthAtATime() async throws {
        let running = Mutex((now: 0, most: 0))
        var consumed: [Int: Int] = [:]
        try await BoundedTaskGroup.forEach(count: 50, width: 4) { index in
            running.withLock {
                $0.now += 1; $0.most = max($0.most, $0.now)
            }
            try await Task.sleep(for: .milliseconds(2))
            running.withLock { $0.now -= 1 }
            return index * 10
        } consume: { index, result in
            XCTAssertNil(consumed[index], "index \(index) twice")
            consumed[index] = result
        }
        XCTAssertEqual(consumed, Dictionary(uniqueKeysWithValues: (0..<50).map { ($0, $0 * 10) }))
        // Never more than the width; more than one, or the work ran one at a time.
        XCTAssertLessThanOrEqual(running.withLock { $0.most }, 4)
        XCTAssertGreaterThan(running.withLock { $0.most }, 1)
    }

    func testAThrowFromConsumeStopsLaunchingAndIsRethrown() async {
        struct Refused: Error {}
        let started = Mutex(0)
        do {
            try await BoundedTaskGroup.forEach(count: 1000, width: 2) { index in
                started.withLock { $0 += 1 }
                return index
            } consume: { index, _ in
                if index == 3 { throw Refused() }
            }
            XCTFail("the throw from consume must come out")
        } catch {
            XCTAssertTrue(error is Refused, "\(error)")
        }
        XCTAssertLessThan(started.withLock { $0 }, 1000, "work after the throw is not started")
    }
}
