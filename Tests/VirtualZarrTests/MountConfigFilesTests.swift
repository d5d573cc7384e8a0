@testable import Scanner
import XCTest

/// Every config shipped in mount-configs/ parses (so the examples stay true).
final class MountConfigFilesTests: XCTestCase {
    func testShippedConfigsParse() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../mount-configs").standardized
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 3)
        for name in names {
            let config = try MountConfig.load(path: directory.appendingPathComponent(name).path)
            XCTAssertFalse(config.sources.isEmpty, name)
        }
        let seed = try MountConfig.load(path: directory.appendingPathComponent("wrf-se-ak-ar5-2060.yaml").path)
        XCTAssertEqual(seed.sources, ["s3://wrf-se-ak-ar5/ccsm/rcp85/daily/2060/*.nc"])
        XCTAssertTrue(seed.anonymous)
        XCTAssertEqual(seed.concatDim, "Time")
        XCTAssertEqual(seed.concurrency, 128)
    }
}
