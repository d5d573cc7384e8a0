import ByteSource
import Foundation
import HDF5Metadata
import XCTest

/// The read pattern on the workload zarrmount exists for: daily WRF-like netCDF4 files.
/// Rounds are counted, not timed. Each read takes a few milliseconds, as over a network: with
/// instant reads, a batch of one round could still be open when the next round starts, and
/// then be counted in it.
final class ReadPatternTests: XCTestCase {
    private func remoteLike(_ file: URL) throws -> LatencySource<InMemorySource> {
        LatencySource(InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file)), latency: .milliseconds(3))
    }

    private func archiveFiles() throws -> [URL] {
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.cache/sample-archive").standardized.path
        guard
            let path = ProcessInfo.processInfo.environment["ZARRMOUNT_SAMPLE_ARCHIVE"]
                ?? (FileManager.default.fileExists(atPath: fallback) ? fallback : nil)
        else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                XCTFail("ZARRMOUNT_SAMPLE_ARCHIVE is not set: run tools/test (CI must not skip)")
            }
            throw XCTSkip("no sample archive: run tools/test, or tools/make-archive.py DIR --days 2 and set ZARRMOUNT_SAMPLE_ARCHIVE")
        }
        let directory = URL(fileURLWithPath: path)
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".nc") }.sorted()
        XCTAssertFalse(files.isEmpty)
        return files.map { directory.appendingPathComponent($0) }
    }

    /// On Swift's global executor, and on a serial executor of its own as the scanner parses a
    /// remote file: one file's tasks one at a time must not cost rounds.
    ///
    /// Which fetch a page joins depends on which of two independent reads of it comes first: a
    /// read joining a fetch a later round started waits for that round. On a loaded machine a
    /// parse can so take a round more; up to three parses of each file are made, and the fewest
    /// rounds any took must be four.
    func testWRFFileParsesInFourRoundsReadingUnderFivePercent() async throws {
        for file in try archiveFiles() {
            for serial in [false, true] {
                var fewest = Int.max
                for _ in 0..<3 where fewest > 4 {
                    let bytes = try TestData.bytes(file)
                    let cache = try await BlockCache.open(try remoteLike(file))
                    let (info, rounds) = try await Self.onExecutor(serial: serial) {
                        try await ReadRounds.measure { try await HDF5File.parse(cache) }
                    }
                    let counters = cache.statistics.snapshot
                    XCTAssertEqual(info.datasets.count, 44, "39 variables, 2 coordinates, 3 dimension-only scales")
                    XCTAssertEqual(info.datasets.reduce(0) { $0 + ($1.chunks?.count ?? 0) }, 41)
                    XCTAssertLessThan(Double(counters.bytesFetched), 0.05 * Double(bytes.count), "bytes fetched for \(file.lastPathComponent)")
                    XCTAssertLessThan(counters.sourceReads, 90)
                    XCTAssertLessThanOrEqual(rounds, 6, "never more than the links' depth: \(file.lastPathComponent)")
                    fewest = min(fewest, rounds)
                }
                // The links are six dependent levels deep (superblock → dense-link heap → its
                // indirect block → its direct blocks → object headers → chunk B-trees); the early
                // parse of the variables the dimension scales reference takes two off.
                XCTAssertLessThanOrEqual(fewest, 4, file.lastPathComponent)
            }
        }
    }

    static func onExecutor<T: Sendable>(serial: Bool, _ body: () async throws -> T) async rethrows -> T {
        serial ? try await SerialTaskExecutor.run(body) : try await body()
    }

    /// The two rounds come from the early parse of the variables the dimension scales
    /// reference, and taking them changes nothing in the result.
    func testEarlyParseTakesTwoRoundsOffAndChangesNothing() async throws {
        let file = try XCTUnwrap(try archiveFiles().first)
        let source = try remoteLike(file)
        var withoutEarlyParse = ReadPolicy.concurrent
        withoutEarlyParse.earlyScanBytes = 0
        // The fewest rounds of up to three parses each, as above: a loaded machine can add one.
        var earlyRounds = Int.max, lateRounds = Int.max
        var earlyInfo: HDF5FileInfo?, lateInfo: HDF5FileInfo?
        for _ in 0..<3 where earlyRounds > 4 || lateRounds > 6 {
            let (withEarly, withRounds) = try await ReadRounds.measure { try await HDF5File.parse(try await BlockCache.open(source)) }
            let (without, withoutRounds) = try await ReadRounds.measure {
                try await HDF5File.parse(try await BlockCache.open(source), policy: withoutEarlyParse)
            }
            (earlyInfo, lateInfo) = (withEarly, without)
            earlyRounds = min(earlyRounds, withRounds)
            lateRounds = min(lateRounds, withoutRounds)
        }
        let (early, late) = (try XCTUnwrap(earlyInfo), try XCTUnwrap(lateInfo))
        XCTAssertEqual(earlyRounds, 4)
        XCTAssertEqual(lateRounds, 6)
        XCTAssertEqual(
            InspectionReport.json(early, file: "f", includeChunks: true).rendered(),
            InspectionReport.json(late, file: "f", includeChunks: true).rendered())
    }

    /// A file whose first bytes hold a valid dataset header no link leads to (a copy of
    /// plain_00's), and a dataset whose attribute references a group, a deleted object and a
    /// dataset two groups down: none of the guesses may add, drop or alter an object, whatever
    /// the size of the first fetch.
    func testWrongGuessesNeverReachTheResult() async throws {
        let file = try TestData.fixtureDirectory().appendingPathComponent("early-parse-decoys.h5")
        let bytes = try TestData.bytes(file)
        let source = InMemorySource(name: file.lastPathComponent, bytes: bytes)
        let direct = try await HDF5File.parse(source, policy: .sequential)
        let reachable = Set(direct.datasets.map(\.address) + direct.groups.map(\.address))
        let signature = Array("OHDR".utf8)
        let unreachable = (0..<(bytes.count - 3)).filter { Array(bytes[$0..<($0 + 4)]) == signature && !reachable.contains(UInt64($0)) }
        XCTAssertEqual(unreachable.count, 1, "the fixture's stale header")
        XCTAssertEqual(direct.datasets.count, 12)
        XCTAssertEqual(direct.groups.map(\.path), ["/", "/outer", "/outer/inner"])
        for firstFetch in [512, 2048, 16 * 1024] {
            let cache = try await BlockCache.open(source, policy: .init(firstFetchSize: firstFetch))
            let guessed = try await HDF5File.parse(cache)
            XCTAssertFalse(guessed.datasets.contains { $0.address == UInt64(unreachable[0]) })
            XCTAssertEqual(
                InspectionReport.json(guessed, file: "f", includeChunks: true).rendered(),
                InspectionReport.json(direct, file: "f", includeChunks: true).rendered(), "first fetch \(firstFetch)")
        }
    }

    func testSequentialAndConcurrentReadsGiveTheSameResult() async throws {
        let file = try XCTUnwrap(try archiveFiles().first)
        let source = InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file))
        let a = InspectionReport.json(try await HDF5File.parse(source), file: "f", includeChunks: true)
        let b = InspectionReport.json(try await HDF5File.parse(source, policy: .sequential), file: "f", includeChunks: true)
        XCTAssertEqual(a.rendered(), b.rendered())
    }

    /// The first-read guesses are the caller's: guesses too small for every header and node
    /// cost more reads, and change nothing in the result.
    func testSmallerFirstReadsCostReadsAndChangeNothing() async throws {
        let file = try XCTUnwrap(try archiveFiles().first)
        let source = InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file))
        var stingy = ReadPolicy.sequential
        stingy.objectHeaderFirstRead = 32
        stingy.btreeNodeFirstRead = 64
        let usual = try await BlockCache.open(source, policy: .init(pageSize: 1, firstFetchSize: 1, batchingTurns: 0))
        let small = try await BlockCache.open(source, policy: .init(pageSize: 1, firstFetchSize: 1, batchingTurns: 0))
        let a = InspectionReport.json(try await HDF5File.parse(usual, policy: .sequential), file: "f", includeChunks: true)
        let b = InspectionReport.json(try await HDF5File.parse(small, policy: stingy), file: "f", includeChunks: true)
        XCTAssertEqual(a.rendered(), b.rendered())
        XCTAssertGreaterThan(small.statistics.snapshot.sourceReads, usual.statistics.snapshot.sourceReads)
    }

    /// The remote configuration (concurrent parse, prefetches, batched pages) against the local
    /// one (one read at a time, no cache) on every fixture: the same report, chunks included.
    func testEveryFixtureParsesTheSameThroughTheBlockCache() async throws {
        var compared = 0
        for file in try TestData.fixtureFiles() {
            let source = InMemorySource(name: file.lastPathComponent, bytes: try TestData.bytes(file))
            let direct: String
            do {
                direct = InspectionReport.json(try await HDF5File.parse(source, policy: .sequential), file: "f", includeChunks: true).rendered()
            } catch { continue }
            for serial in [false, true] {
                let cache = try await BlockCache.open(source)
                let info = try await Self.onExecutor(serial: serial) { try await HDF5File.parse(cache) }
                XCTAssertEqual(
                    InspectionReport.json(info, file: "f", includeChunks: true).rendered(), direct,
                    "\(file.lastPathComponent), serial executor: \(serial)")
            }
            compared += 1
        }
        XCTAssertGreaterThan(compared, 30)
    }
}
