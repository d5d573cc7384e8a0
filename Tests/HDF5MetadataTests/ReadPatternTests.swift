import ByteSource
import Foundation
import HDF5Metadata
import XCTest

/// The read pattern on the workload zarrmount exists for: daily WRF-like netCDF4 files.
/// Rounds are counted, not timed, so these assertions are deterministic.
final class ReadPatternTests: XCTestCase {
    private func archiveFiles() throws -> [URL] {
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.cache/sample-archive").standardized.path
        guard let path = ProcessInfo.processInfo.environment["ZARRMOUNT_SAMPLE_ARCHIVE"]
                ?? (FileManager.default.fileExists(atPath: fallback) ? fallback : nil) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("ZARRMOUNT_SAMPLE_ARCHIVE is not set: run tools/test (CI must not skip)")
            }
            throw XCTSkip("no sample archive: run tools/test, or tools/make-archive DIR --days 2 and set ZARRMOUNT_SAMPLE_ARCHIVE")
        }
        let directory = URL(fileURLWithPath: path)
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".nc") }.sorted()
        XCTAssertFalse(files.isEmpty)
        return files.map { directory.appendingPathComponent($0) }
    }

    func testWRFFileParsesInSixRoundsReadingUnderFivePercent() async throws {
        for file in try archiveFiles() {
            let bytes = try TestData.bytes(file)
            let cache = try await BlockCache.open(InMemorySource(name: file.lastPathComponent, bytes: bytes))
            let (info, rounds) = try await ReadRounds.measure { try await HDF5File.parse(cache) }
            let counters = cache.statistics.snapshot
            XCTAssertEqual(info.datasets.count, 44, "39 variables, 2 coordinates, 3 dimension-only scales")
            XCTAssertEqual(info.datasets.reduce(0) { $0 + ($1.chunks?.count ?? 0) }, 41)
            // superblock → dense-link heap → its indirect block → its direct blocks → object
            // headers → chunk B-trees: six levels that depend on each other in netCDF's layout.
            XCTAssertLessThanOrEqual(rounds, 6, file.lastPathComponent)
            XCTAssertLessThan(Double(counters.bytesFetched), 0.05 * Double(bytes.count), "bytes fetched for \(file.lastPathComponent)")
            XCTAssertLessThan(counters.sourceReads, 90)
        }
    }

    func testSequentialAndConcurrentReadsGiveTheSameResult() async throws {
        let file = try XCTUnwrap(try archiveFiles().first)
        let source = InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file))
        var sequential = ParseLimits()
        sequential.concurrentReads = false
        let a = InspectionReport.json(try await HDF5File.parse(source), file: "f", includeChunks: true)
        let b = InspectionReport.json(try await HDF5File.parse(source, limits: sequential), file: "f", includeChunks: true)
        XCTAssertEqual(a.rendered(), b.rendered())
    }

    /// The remote configuration (concurrent parse, prefetches, batched pages) against the local
    /// one (one read at a time, no cache) on every fixture: the same report, chunks included.
    func testEveryFixtureParsesTheSameThroughTheBlockCache() async throws {
        var sequential = ParseLimits()
        sequential.concurrentReads = false
        var compared = 0
        for file in try TestData.fixtureFiles() {
            let source = InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file))
            let direct: String
            do {
                direct = InspectionReport.json(try await HDF5File.parse(source, limits: sequential), file: "f", includeChunks: true).rendered()
            } catch { continue }
            let cache = try await BlockCache.open(source)
            let cached = InspectionReport.json(try await HDF5File.parse(cache), file: "f", includeChunks: true).rendered()
            XCTAssertEqual(cached, direct, file.lastPathComponent)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 30)
    }
}
