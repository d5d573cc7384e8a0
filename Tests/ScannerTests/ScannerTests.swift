@testable import HDF5Mapping
import ByteSource
import Foundation
import HDF5Metadata
import Logging
import ObjectStore
import TestSupport
@testable import Scanner
@testable import VirtualZarr
import XCTest
import JSONValue

enum VZTestData {
    static func fixtures() throws -> URL {
        guard let directory = FixtureLocation.directory() else {
            if FixtureLocation.isCI { XCTFail(FixtureLocation.missing + " (CI must not skip)") }
            throw XCTSkip(FixtureLocation.missing)
        }
        return directory
    }

    static func archive() throws -> String {
        if let path = ProcessInfo.processInfo.environment["ZARRMOUNT_SAMPLE_ARCHIVE"] { return path }
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("sample archive missing under CI") }
        throw XCTSkip("no sample archive: run tools/test")
    }

    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
}

final class ScanTests: XCTestCase {
    func testDecodedChunksOfEveryHDF5FilterCombinationAgree() async throws {
        let path = try VZTestData.fixtures().appendingPathComponent("filters.h5").path
        let summary = try await Scanner.scan(sources: [path], options: ScanOptions(), logger: VZTestData.logger)
        let file = try FileSource(path: path)
        let fetch: ByteFetcher = { offset, length in try file.readSynchronously(offset: offset, length: length) }
        var decoded: [String: [UInt8]] = [:]
        for name in ["deflate_1", "deflate_9", "fletcher32", "shuffle_deflate", "shuffle_deflate_fletcher32"] {
            let array = try XCTUnwrap(summary.dataset.array(name), name)
            decoded[name] = try await ArrayValues.decoded(array, fetch: fetch, maxBytes: 1 << 20)
        }
        XCTAssertEqual(decoded["deflate_1"]?.count, 64 * 64 * 4)
        for (name, bytes) in decoded { XCTAssertEqual(bytes, decoded["deflate_1"], "\(name) decodes to the same values") }
        // szip has no Zarr codec: zarrmount decodes it (the decoded view serves it).
        let szip = try XCTUnwrap(summary.dataset.array("szip"))
        XCTAssertEqual(Codec.decodedOnly(in: szip.codecs)?.kind, .szip)
        let szipValues = try await ArrayValues.decoded(szip, fetch: fetch, maxBytes: 1 << 20)
        XCTAssertEqual(szipValues, (0..<4096).flatMap { withUnsafeBytes(of: Int32($0).littleEndian, Array.init) }, "what h5py wrote")
        // Chunks written with a filter skipped (mask 1: deflate skipped) are decoded one by one.
        let masked = try XCTUnwrap(summary.dataset.array("filter_mask"))
        XCTAssertEqual(masked.codecs, [])
        guard case .inline(let raw) = masked.manifest[0] else { return XCTFail("filter_mask is not inlined") }
        let values = stride(from: 0, to: raw.count, by: 4).map {
            Int32(bitPattern: UInt32(raw[$0]) | UInt32(raw[$0 + 1]) << 8 | UInt32(raw[$0 + 2]) << 16 | UInt32(raw[$0 + 3]) << 24)
        }
        XCTAssertEqual(
            values, [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31], "what h5py reads")
    }

    func testWRFArchiveCombinesAlongTime() async throws {
        let archive = try VZTestData.archive()
        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        let summary = try await Scanner.scan(sources: [archive + "/*.nc"], options: options, logger: VZTestData.logger)
        let days = try LocalStore.list([archive + "/*.nc"]).count
        XCTAssertEqual(summary.files, days)
        XCTAssertEqual(summary.dataset.warnings, [])
        XCTAssertEqual(summary.dataset.arrays.count, 41, "39 variables and the Time and interp_levels coordinates")
        let t2 = try XCTUnwrap(summary.dataset.array("T2"))
        XCTAssertEqual(t2.shape, [UInt64(days), 250, 320])
        XCTAssertEqual(t2.dimensionNames, ["Time", "south_north", "west_east"])
        XCTAssertEqual(t2.codecs, [.shuffle(elementSize: 4), .zlib(level: 4)])
        XCTAssertEqual(t2.manifest.storedChunkCount, days)
        guard case .reference(let second, _, _) = t2.manifest[1] else { return XCTFail("day 2 of T2 is not a reference") }
        XCTAssertTrue(summary.dataset.objects[Int(second)].url.hasSuffix("WRFDS_2060-01-02.nc"))
        let lat = try XCTUnwrap(summary.dataset.array("lat"))
        XCTAssertEqual(lat.shape, [250, 320], "arrays without the concat dimension are taken from the first file")
        let time = try XCTUnwrap(summary.dataset.array("Time"))
        guard case .inline(let bytes) = time.manifest[0] else { return XCTFail("Time is not inlined") }
        let hours = stride(from: 0, to: bytes.count, by: 4).map {
            Int32(bitPattern: UInt32(bytes[$0]) | UInt32(bytes[$0 + 1]) << 8 | UInt32(bytes[$0 + 2]) << 16 | UInt32(bytes[$0 + 3]) << 24)
        }
        XCTAssertEqual(hours, (0..<days).map { Int32($0 * 24) })
    }

    func testTheArchivesFilesHoldOneCopyOfEveryDescriptionTheyShare() async throws {
        let archive = try VZTestData.archive()
        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        let scanned = try await Scanner.scanParts(sources: [archive + "/*.nc"], options: options, logger: VZTestData.logger)
        XCTAssertGreaterThanOrEqual(scanned.parts.count, 2)
        let first = scanned.parts[0].dataset
        var sharedCount = 0
        for part in scanned.parts.dropFirst() {
            XCTAssertEqual(part.dataset.arrays.map(\.path), first.arrays.map(\.path), part.name)
            for (mine, theirs) in zip(part.dataset.arrays, first.arrays) {
                if mine.described === theirs.described {
                    sharedCount += 1
                } else {
                    XCTAssertFalse(mine.described.isEqual(to: theirs.described), "\(part.name): \(mine.path) is described alike but held twice")
                }
            }
            XCTAssertTrue(part.dataset.groups[0].attributes.elementsEqual(first.groups[0].attributes) { $0.0 == $1.0 && $0.1 == $1.1 })
        }
        XCTAssertEqual(sharedCount, (scanned.parts.count - 1) * first.arrays.count, "every WRF day describes its 41 variables alike")
    }

    func testOrderByCoordinateAndSkippingBadFiles() async throws {
        let archive = try VZTestData.archive()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-scan-\(getpid())")
        try? FileManager.default.removeItem(at: scratch)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let files = try LocalStore.list([archive + "/*.nc"]).map(\.url)
        // Names that sort against time order, and a truncated file.
        for (index, file) in files.enumerated() {
            try FileManager.default.copyItem(atPath: file, toPath: scratch.appendingPathComponent("z\(files.count - index).nc").path)
        }
        let truncated = try Data(contentsOf: URL(fileURLWithPath: files[0])).prefix(5000)
        try truncated.write(to: scratch.appendingPathComponent("broken.nc"))

        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        do {
            _ = try await Scanner.scan(sources: [scratch.path + "/*.nc"], options: options, logger: VZTestData.logger)
            XCTFail("a truncated file must stop the scan by default")
        } catch let error as ScanError {
            XCTAssertTrue(error.description.contains("broken.nc"), error.description)
        }
        options.onError = .skip
        options.order = .coordinate
        let summary = try await Scanner.scan(sources: [scratch.path + "/*.nc"], options: options, logger: VZTestData.logger)
        XCTAssertEqual(summary.skipped.map { ($0.file as NSString).lastPathComponent }, ["broken.nc"])
        let urls =
            summary.dataset.arrays.first { $0.path == "T2" }.map { array in
                (0..<array.manifest.count).compactMap { linear -> String? in
                    if case .reference(let object, _, _) = array.manifest[linear] { return summary.dataset.objects[Int(object)].url }
                    return nil
                }
            } ?? []
        XCTAssertEqual(urls.map { ($0 as NSString).lastPathComponent }, (1...files.count).reversed().map { "z\($0).nc" })
    }
}

final class ReferenceTests: XCTestCase {
    func testKerchunkReferencesRoundTripAndTemplatesExpand() async throws {
        let archive = try VZTestData.archive()
        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        let summary = try await Scanner.scan(sources: [archive + "/*.nc"], options: options, logger: VZTestData.logger)
        let written = try KerchunkReferences.write(summary.dataset)
        let reread = try KerchunkReferences.read(written)
        XCTAssertEqual(try KerchunkReferences.write(reread), written, "write → read → write is the identity")
        XCTAssertEqual(reread.arrays.count, summary.dataset.arrays.count)

        let templated = """
            {"version": 1, "templates": {"u": "s3://bucket/data"},
             "refs": {".zgroup": "{\\"zarr_format\\": 2}", ".zattrs": "{}",
                      "x/.zarray": "{\\"chunks\\":[2],\\"compressor\\":null,\\"dtype\\":\\"<i4\\",\\"fill_value\\":NaN,\\"filters\\":null,\\"order\\":\\"C\\",\\"shape\\":[6],\\"zarr_format\\":2}",
                      "x/.zattrs": "{\\"_ARRAY_DIMENSIONS\\": [\\"x\\"]}",
                      "x/0": "base64:AQAAAAIAAAA="},
             "gen": [{"key": "x/{{i}}", "url": "{{u}}/f{{i}}.bin", "offset": "{{i}}00", "length": "8",
                      "dimensions": {"i": {"start": 1, "stop": 3}}}]}
            """
        let dataset = try KerchunkReferences.read(templated)
        let x = try XCTUnwrap(dataset.array("x"))
        XCTAssertEqual(x.manifest[0], .inline([1, 0, 0, 0, 2, 0, 0, 0]))
        XCTAssertEqual(x.manifest[2], .reference(object: 1, offset: 200, length: 8))
        XCTAssertEqual(dataset.objects.map(\.url), ["s3://bucket/data/f1.bin", "s3://bucket/data/f2.bin"])
        XCTAssertThrowsError(try KerchunkReferences.read("{\"version\": 2}")) { XCTAssertTrue("\($0)".contains("version")) }
    }
}

final class ConfigAndGlobTests: XCTestCase {
    func testAURLListSavedOnWindowsNamesEachSource() {
        // Swift reads "\r\n" as one character: splitting on "\n" alone kept the whole list as one source.
        let text = "\u{FEFF}s3://b/day_1.nc\r\n\r\n# the second day\r\n  s3://b/day_2.nc  \r\ns3://b/day_3.nc\n/data/day 4.nc\r\n"
        XCTAssertEqual(MountConfig.sourceList(text), ["s3://b/day_1.nc", "s3://b/day_2.nc", "s3://b/day_3.nc", "/data/day 4.nc"])
        XCTAssertEqual(MountConfig.sourceList(""), [])
    }

    func testGlobForms() {
        XCTAssertTrue(GlobPattern("/d/*.nc").matches("/d/a.nc"))
        XCTAssertFalse(GlobPattern("/d/*.nc").matches("/d/sub/a.nc"))
        XCTAssertTrue(GlobPattern("/d/**/*.nc").matches("/d/sub/deeper/a.nc"))
        XCTAssertTrue(GlobPattern("/d/**/*.nc").matches("/d/a.nc"))
        XCTAssertTrue(GlobPattern("/d/WRFDS_2060-0[1-3]-??.nc").matches("/d/WRFDS_2060-02-14.nc"))
        XCTAssertFalse(GlobPattern("/d/WRFDS_2060-0[!1-3]-??.nc").matches("/d/WRFDS_2060-02-14.nc"))
        XCTAssertEqual(GlobPattern("/d/2060/*/x.nc").literalPrefix, "/d/2060/")
    }

    func testALocalSourceThatNamesAFileIsThatFileNotTheFilesItMatchesAsAPattern() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("brackets-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/x[1].nc", contents: Data([1])))
        // Alone, `x[1].nc` is that file (as a pattern it matched nothing: "no files match").
        XCTAssertEqual(try LocalStore.list([directory + "/x[1].nc"]).map(\.url), [directory + "/x[1].nc"])
        // Beside x1.nc, which the pattern matches, either could be meant.
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/x1.nc", contents: Data([2])))
        XCTAssertThrowsError(try LocalStore.list([directory + "/x[1].nc"])) { error in
            XCTAssertEqual(error as? ListingError, .literalOrPattern(pattern: directory + "/x[1].nc", others: [directory + "/x1.nc"]))
            XCTAssertTrue("\(error)".contains("(x[[]1].nc)"), "\(error)")
        }
        XCTAssertEqual(try LocalStore.list([directory + "/x[[]1].nc"]).map(\.url), [directory + "/x[1].nc"])
        XCTAssertEqual(try LocalStore.list([directory + "/x[0-9].nc"]).map(\.url), [directory + "/x1.nc"])
    }

    func testALocalGlobSkipsNamesStartingWithADotAsTheShellDoes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dots-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        for sub in ["/2020", "/.snapshot/2020"] {
            try FileManager.default.createDirectory(atPath: directory + sub, withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["/2020/day1.nc", "/2020/._day1.nc", "/.snapshot/2020/day1.nc"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: directory + name, contents: Data([1])))
        }
        // What `ls DIR/**/*.nc` (globstar) and Python's glob name: no AppleDouble copy, no snapshot.
        XCTAssertEqual(try LocalStore.list([directory + "/**/*.nc"]).map(\.url), [directory + "/2020/day1.nc"])
        XCTAssertEqual(try LocalStore.list([directory + "/2020/*"]).map(\.url), [directory + "/2020/day1.nc"])
        // Named with its dot, a hidden name is matched.
        XCTAssertEqual(try LocalStore.list([directory + "/2020/.*.nc"]).map(\.url), [directory + "/2020/._day1.nc"])
        XCTAssertEqual(try LocalStore.list([directory + "/.snapshot/*/*.nc"]).map(\.url), [directory + "/.snapshot/2020/day1.nc"])
        // S3 keys have no hidden names.
        XCTAssertTrue(GlobPattern("b/*.nc").matches("b/._day1.nc"))
    }

    func testAChunkPastTheFilesEndIsATruncatedFile() throws {
        var manifest = ChunkManifest(gridShape: [3])
        manifest[0] = .reference(object: 0, offset: 100, length: 50)
        manifest[1] = .reference(object: 1, offset: 5000, length: 50)  // an external file's: not this file's size
        manifest[2] = .reference(object: 0, offset: 150, length: 51)
        let array = VirtualArray(
            path: "g/v", dtype: .float(size: 4), shape: [3], chunkShape: [1], codecs: [], fillValue: .null, fillBytes: nil,
            dimensionNames: ["t"], attributes: [], manifest: manifest, origin: "v")
        let dataset = VirtualDataset(objects: [ObjectInfo(url: "day.nc", size: 200)], arrays: [array])
        XCTAssertNoThrow(try Scanner.checkChunksWithinFile(dataset, url: "day.nc", size: 201))
        XCTAssertThrowsError(try Scanner.checkChunksWithinFile(dataset, url: "day.nc", size: 200)) { error in
            XCTAssertEqual(
                "\(error)",
                "day.nc is truncated: it is 200 bytes, but chunk 2 of g/v ends at byte 201 (an interrupted download or copy?). Fetch it again"
            )
            // Stopping a scan, the file's error says how to go on without it; once skipped, the
            // dataset's record says why without the advice to skip it.
            XCTAssertEqual(
                "\(ScanError.fileStopsScan(url: "day.nc", reason: "\(error)"))",
                "day.nc is truncated: it is 200 bytes, but chunk 2 of g/v ends at byte 201 (an interrupted download or copy?). Fetch it again. Leave it out of the sources, or scan with --on-error skip to leave out every file that cannot be scanned"
            )
            XCTAssertEqual(
                Scanner.skippedLine(file: "day.nc", reason: "\(error)"),
                "day.nc is truncated: it is 200 bytes, but chunk 2 of g/v ends at byte 201 (an interrupted download or copy?). Fetch it again")
        }
    }

    func testConfigErrorsNameTheLineAndKey() {
        XCTAssertThrowsError(try MountConfig.parse("sources: [a.nc]\nconcat_dim: Time\norder: random\n", file: "m.yaml")) { error in
            XCTAssertEqual("\(error)", "m.yaml:3: order: random is not one of key, coordinate")
        }
        XCTAssertThrowsError(try MountConfig.parse("sources: [a.nc]\nconcat_dimension: Time\n", file: "m.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("m.yaml:2: concat_dimension: unknown key"), "\(error)")
        }
        XCTAssertThrowsError(try MountConfig.parse("concat_dim: Time\n", file: "m.yaml")) { error in
            XCTAssertTrue("\(error)".contains("sources: missing"), "\(error)")
        }
        let config = try? MountConfig.parse(
            "sources:\n  - data/*.nc\nconcat_dim: Time\nzarr_format: 3\nstack: {dimension: m, regex: 'm(\\d+)'}\n",
            file: "/etc/zarrmount/wrf.yaml")
        XCTAssertEqual(config?.sources, ["/etc/zarrmount/data/*.nc"])
        XCTAssertEqual(config?.zarrFormat, .v3)
        XCTAssertEqual(config?.stack?.pattern, "m(\\d+)")
        XCTAssertEqual(try? MountConfig.parse("sources: [a.nc]\nconnections: 16\n", file: "m.yaml").connections, 16)
        XCTAssertThrowsError(try MountConfig.parse("sources: [a.nc]\nconnections: 0\n", file: "m.yaml")) { error in
            XCTAssertEqual("\(error)", "m.yaml:2: connections: expected a whole number of at least 1")
        }
    }
}

final class ExportTests: XCTestCase {
    func testExportedChunkFilesAreTheStoredBytes() async throws {
        let archive = try VZTestData.archive()
        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        let summary = try await Scanner.scan(sources: [archive + "/*.nc"], options: options, logger: VZTestData.logger)
        for format in ZarrFormat.allCases {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-export-\(getpid())-\(format.rawValue)").path
            try? FileManager.default.removeItem(atPath: directory)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await StoreExporter.export(summary.dataset, format: format, to: directory)
            let t2 = try XCTUnwrap(summary.dataset.array("T2"))
            guard case .reference(let object, let offset, let length) = t2.manifest[1] else { return XCTFail("T2 day 2 is not a reference") }
            let key = format == .v2 ? "T2/1.0.0" : "T2/c/1/0/0"
            let exported = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/" + key)))
            let original = try FileSource(path: summary.dataset.objects[Int(object)].url).readSynchronously(offset: offset, length: Int(length))
            XCTAssertEqual(exported, original, "\(key) is the stored chunk, byte for byte")
            let metadata = format == .v2 ? ".zmetadata" : "zarr.json"
            let document = try JSON.parse(String(contentsOfFile: directory + "/" + metadata, encoding: .utf8))
            XCTAssertNotNil(format == .v2 ? document["metadata"]?["T2/.zarray"] : document["consolidated_metadata"]?["metadata"]?["T2"])
            do {
                try await StoreExporter.export(summary.dataset, format: format, to: directory)
                XCTFail("exporting into a non-empty directory must fail")
            } catch {
                XCTAssertTrue("\(error)".contains("not empty"), "\(error)")
            }
        }
    }
}

final class CombineConfigTests: XCTestCase {
    func testCombineKeysAndEveryProblemAtOnce() throws {
        let config = try MountConfig.parse("sources: [a.nc]\ncompat: equals\nvariables: [T2, PSFC]\ndrop_variables: QVAPOR\n", file: "m.yaml")
        XCTAssertEqual(config.compat, .equals)
        XCTAssertEqual(config.variables, ["T2", "PSFC"])
        XCTAssertEqual(config.dropVariables, ["QVAPOR"])
        XCTAssertThrowsError(try MountConfig.parse("sources: [a.nc]\ncompat: same\nconcat_dimm: Time\norder: random\n", file: "m.yaml")) { error in
            XCTAssertEqual(
                "\(error)",
                """
                m.yaml:2: compat: same is not one of override, equals
                m.yaml:3: concat_dimm: unknown key; the keys are \(MountConfig.keys.joined(separator: ", "))
                m.yaml:4: order: random is not one of key, coordinate
                """)
        }
    }

    func testChunkSpecs() {
        XCTAssertEqual(MountConfig.chunkSpec("T2=1,250,320")?.variable, "T2")
        XCTAssertEqual(MountConfig.chunkSpec("grp/T2=1, 250,320")?.extents, [1, 250, 320])
        for bad in ["T2", "=1,2", "T2=", "T2=1,0", "T2=1,,2", "T2=a,2", "T2=-1"] { XCTAssertNil(MountConfig.chunkSpec(bad), bad) }
    }
}

final class ManifestCacheTests: XCTestCase {
    /// Every stored property of a scanned dataset survives the cache, compared by reflection so
    /// that a property added to the model without the cache knowing it fails here (a cached
    /// result would otherwise silently lack it).
    func testEveryPropertyOfEveryFixtureSurvivesTheCache() async throws {
        let directory = try VZTestData.fixtures()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".h5") || $0.hasSuffix(".nc") }.sorted()
        var compared = 0
        for file in files {
            let object = try LocalStore.describe(directory.appendingPathComponent(file).path)
            guard case .scanned(let dataset, _) = await Scanner.scanFile(object, mapping: MappingOptions(), store: nil) else { continue }
            // Through the cache's own files.
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-cache-\(getpid())").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let cache = ManifestCache(directory: directory)
            cache.store(dataset, for: object, options: MappingOptions())
            guard let restored = cache.load(object, options: MappingOptions()) else { return XCTFail("\(file): not cached") }
            var other = MappingOptions()
            other.inlineVariables = ["x"]
            XCTAssertNil(cache.load(object, options: other), "\(file): another key")
            XCTAssertEqual(restored.objects, [ObjectInfo(listed: object)], file)
            XCTAssertEqual(restored.arrays.count, dataset.arrays.count, file)
            for (original, cached) in zip(dataset.arrays, restored.arrays) {
                assertSameProperties(original, cached, "\(file): \(original.path)")
            }
            for (original, cached) in zip(dataset.groups, restored.groups) {
                assertSameProperties(original, cached, "\(file): group \(original.path)")
            }
            var withoutObjects = dataset
            withoutObjects.objects = []
            withoutObjects.arrays = []
            withoutObjects.groups = []
            var restoredWithoutObjects = restored
            restoredWithoutObjects.objects = []
            restoredWithoutObjects.arrays = []
            restoredWithoutObjects.groups = []
            assertSameProperties(withoutObjects, restoredWithoutObjects, file)
            compared += dataset.arrays.count
        }
        XCTAssertGreaterThan(compared, 100, "the fixtures' arrays were compared")
    }

    /// A second scan of the same file versions with the same options is the first scan's
    /// combined dataset, read back whole; a file changed since, or another option, combines again.
    func testACombinedDatasetIsReusedOnlyForTheSameFileVersionsAndOptions() async throws {
        let archive = try VZTestData.archive()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-combined-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: work + "/files", withIntermediateDirectories: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: archive).filter { $0.hasSuffix(".nc") }.sorted()
        XCTAssertEqual(names.count, 2)
        for name in names { try FileManager.default.copyItem(atPath: archive + "/" + name, toPath: work + "/files/" + name) }
        var options = ScanOptions()
        options.combine.concatDimension = "Time"
        options.cache = ManifestCache(directory: work + "/cache")
        func scan(_ options: ScanOptions) async throws -> ScanSummary {
            try await Scanner.scan(sources: [work + "/files/*.nc"], options: options, logger: VZTestData.logger)
        }
        func bytes(_ summary: ScanSummary) throws -> [UInt8] { try ManifestFile.encode(.combined(summary.dataset), writer: "test") }

        let first = try await scan(options)
        XCTAssertFalse(first.combinedFromCache)
        XCTAssertEqual(first.cacheHits, 0)
        let again = try await scan(options)
        XCTAssertTrue(again.combinedFromCache)
        XCTAssertEqual(again.files, 2)
        XCTAssertEqual(again.cacheHits, 2)
        XCTAssertEqual(try bytes(again), try bytes(first), "the cached combined dataset is the one the scan gave")
        XCTAssertEqual(again.dataset.objects.map(\.url), names.map { work + "/files/" + $0 })

        var dropping = options
        dropping.variables.drop = ["T2"]
        let other = try await scan(dropping)
        XCTAssertFalse(other.combinedFromCache, "another option combines again")
        XCTAssertNil(other.dataset.array("T2"))
        XCTAssertEqual(other.cacheHits, 2, "from the files' own cached results")

        // The second file rewritten (a new modification time): its result and the combined one are stale.
        let second = work + "/files/" + names[1]
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: second)
        let changed = try await scan(options)
        XCTAssertFalse(changed.combinedFromCache)
        XCTAssertEqual(changed.cacheHits, 1)
        XCTAssertEqual(changed.dataset.objects[1].identity, try LocalStore.describe(second).identity)
        let cachedAgain = try await scan(options)
        XCTAssertTrue(cachedAgain.combinedFromCache)

        // A damaged entry is not used; the scan combines again and replaces it.
        let entries = try FileManager.default.subpathsOfDirectory(atPath: work + "/cache/combined").filter { $0.hasSuffix(".zmf") }
        XCTAssertEqual(entries.count, 3)
        for entry in entries {
            let path = work + "/cache/combined/" + entry
            var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            data[data.count / 2] ^= 0xFF
            try Data(data).write(to: URL(fileURLWithPath: path))
        }
        let repaired = try await scan(options)
        XCTAssertFalse(repaired.combinedFromCache)
        XCTAssertEqual(try bytes(repaired), try bytes(changed))
        let cachedOnceMore = try await scan(options)
        XCTAssertTrue(cachedOnceMore.combinedFromCache)
    }

    /// Every scan option either goes into the combined dataset's cache key or cannot change the
    /// dataset: an option added without deciding which fails here (a cached combine would
    /// otherwise ignore it and serve the dataset of other options).
    func testEveryScanOptionIsInTheCombinedCacheKeyOrCannotChangeTheDataset() {
        let keyed: Set<String> = ["combine", "order", "stack", "variables", "mapping"]
        // onError: only scans without a failed file are kept; concurrency and provesAhead change
        // how, not what; store and cache are where; allowSources confines external files, whose
        // datasets are not kept; shard and excludedURLs scans are not kept.
        let cannotChange: Set<String> = ["onError", "concurrency", "store", "cache", "allowSources", "shard", "excludedURLs", "provesAhead"]
        let labels = Set(Mirror(reflecting: ScanOptions()).children.compactMap(\.label))
        XCTAssertEqual(labels, keyed.union(cannotChange))
        let combineLabels = Set(Mirror(reflecting: CombineOptions()).children.compactMap(\.label))
        XCTAssertEqual(combineLabels, ["concatDimension", "attributes", "layout", "compat", "orderedByCoordinate", "unpack", "regrid", "chunks"])
        let mappingLabels = Set(Mirror(reflecting: MappingOptions()).children.compactMap(\.label))
        XCTAssertEqual(
            mappingLabels,
            [
                "contiguousSplitThreshold", "inlineVariables", "maxInlineBytes", "maxDecodedInlineBytes", "inlineComparedValues", "maxDimensionCoordinateBytes",
                "timeVariablesAlong",
            ])
        // Each keyed option moves the key.
        let listed = [ListedObject(url: "/a.nc", size: 1, identity: .etag("\"a\""))]
        let base = ManifestCache.combinedKey(listed, options: ScanOptions(), mapping: MappingOptions())
        var variants: [ScanOptions] = []
        for change in 0..<12 {
            var options = ScanOptions()
            switch change {
            case 0: options.combine.concatDimension = "Time"
            case 1: options.combine.attributes = .dropConflicts
            case 2: options.combine.layout = .perFile
            case 3: options.combine.compat = .equals
            case 4: options.combine.orderedByCoordinate = true
            case 5: options.combine.unpack = true
            case 6: options.combine.regrid = true
            case 7: options.combine.chunks = ["T2": [1, 2]]
            case 8: options.order = .coordinate
            case 9: options.stack = StackOptions(dimension: "run", pattern: "(\\d+)")
            case 10: options.variables.keep = ["T2"]
            default: options.variables.drop = ["T2"]
            }
            variants.append(options)
        }
        var keys = Set(variants.map { ManifestCache.combinedKey(listed, options: $0, mapping: MappingOptions()) })
        keys.insert(base)
        var mapping = MappingOptions()
        mapping.inlineVariables = ["x"]
        keys.insert(ManifestCache.combinedKey(listed, options: ScanOptions(), mapping: mapping))
        keys.insert(
            ManifestCache.combinedKey([ListedObject(url: "/a.nc", size: 1, identity: .etag("\"b\""))], options: ScanOptions(), mapping: MappingOptions()))
        XCTAssertEqual(keys.count, variants.count + 3)
    }

    private func assertSameProperties<T>(_ a: T, _ b: T, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let left = Mirror(reflecting: a).children, right = Mirror(reflecting: b).children
        XCTAssertEqual(left.count, right.count, label, file: file, line: line)
        // JSON text does not keep whether a non-negative integer was signed, and JSON's `==` and
        // renderer do not either; everything else must survive as it was.
        func spelled(_ value: Any) -> String { String(reflecting: value).replacingOccurrences(of: "JSON.uint(", with: "JSON.int(") }
        for (x, y) in zip(left, right) {
            XCTAssertEqual(spelled(x.value), spelled(y.value), "\(label): \(x.label ?? "?")", file: file, line: line)
        }
    }
}

/// External raw data: the segments' chunk grid, and where the named files are.
final class ExternalDataTests: XCTestCase {
    private func segment(_ name: String, _ offset: UInt64, _ size: UInt64?) -> ExternalFileSegment {
        ExternalFileSegment(name: name, offset: offset, size: size)
    }

    func testSegmentsOnRowBoundariesGiveChunksOfTheRowsEveryBoundaryDivides() throws {
        // 12 rows of 10 bytes in 4 + 6 + 2 rows: chunks of 2 rows, each inside one segment.
        let (chunkShape, pieces) = try ExternalData.layout(
            shape: [12, 5], itemSize: 2, segments: [segment("a", 0, 40), segment("b", 100, 60), segment("a", 500, 20)])
        XCTAssertEqual(chunkShape, [2, 5])
        XCTAssertEqual(pieces.map(\.segment), [0, 0, 1, 1, 1, 2])
        XCTAssertEqual(pieces.map(\.offset), [0, 20, 100, 120, 140, 500])
        XCTAssertEqual(Set(pieces.map(\.length)), [20])
    }

    func testAnUnlimitedLastSegmentTakesTheRestAndTheSplitBoundsTheRows() throws {
        let (chunkShape, pieces) = try ExternalData.layout(
            shape: [8, 3], itemSize: 4, segments: [segment("x", 16, nil)], splitRows: 4)
        XCTAssertEqual(chunkShape, [4, 3])
        XCTAssertEqual(pieces, [.init(segment: 0, offset: 16, length: 48), .init(segment: 0, offset: 64, length: 48)])
    }

    func testEmptySegmentsAndBytesBeyondTheDataAreIgnored() throws {
        let (chunkShape, pieces) = try ExternalData.layout(
            shape: [2], itemSize: 8, segments: [segment("e", 0, 0), segment("x", 4, 100), segment("y", 0, 50)])
        XCTAssertEqual(chunkShape, [2])
        XCTAssertEqual(pieces, [.init(segment: 1, offset: 4, length: 16)])
    }

    func testSegmentsThatSplitARowOrHoldTooLittleAreRefusedWithTheReason() {
        XCTAssertThrowsError(
            try ExternalData.layout(shape: [4, 3], itemSize: 4, segments: [segment("u", 0, 20), segment("u", 64, 28)])
        ) { error in
            guard case .externalData(let reason)? = error as? MappingError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("inside row 1 of 12-byte rows"), reason)
        }
        XCTAssertThrowsError(try ExternalData.layout(shape: [10], itemSize: 4, segments: [segment("s", 0, 12)])) { error in
            XCTAssertEqual(error as? MappingError, .externalData("the external files hold 12 bytes of the 40 the data needs"))
        }
        XCTAssertThrowsError(try ExternalData.layout(shape: [], itemSize: 8, segments: [segment("s", 0, 4), segment("t", 0, 4)]))
        // A boundary after the first of 2^40 one-byte rows: refused before any allocation.
        XCTAssertThrowsError(
            try ExternalData.layout(shape: [1 << 40], itemSize: 1, segments: [segment("s", 0, 1), segment("t", 0, nil)]))
        XCTAssertThrowsError(try ExternalData.layout(shape: [1 << 62, 1 << 62], itemSize: 8, segments: [segment("s", 0, nil)]))
    }

    func testNamesResolveBesideTheFileLocallyAndAsSiblingURLs() {
        func location(_ name: String, _ url: String) -> String? {
            try? ExternalFiles.location(of: name, besides: url, workingDirectory: "/work").get()
        }
        XCTAssertEqual(location("x.bin", "/data/run/f.h5"), "/data/run/x.bin")
        XCTAssertEqual(location("sub/x.bin", "rel/f.h5"), "/work/rel/sub/x.bin")
        XCTAssertEqual(location("/etc/passwd", "/data/f.h5"), "/etc/passwd", "absolute: confinement decides")
        XCTAssertEqual(location("x y.bin", "https://host/a/b/f.h5?v=1"), "https://host/a/b/x%20y.bin")
        XCTAssertEqual(location("x.bin", "s3://bucket/a/f.h5"), "s3://bucket/a/x.bin")
        XCTAssertNil(location("/etc/passwd", "https://host/a/f.h5"))
        XCTAssertNil(location("http://elsewhere/x.bin", "https://host/a/f.h5"))
    }

    func testTheHostileFixturesNamesAreRefusedAndTheRestIsServed() async throws {
        let file = try VZTestData.fixtures().appendingPathComponent("external/external-raw-data-hostile.h5").path
        let object = try LocalStore.describe(file)
        guard case .scanned(var dataset, _) = await Scanner.scanFile(object, mapping: MappingOptions(), store: nil) else {
            return XCTFail("the file did not scan")
        }
        XCTAssertEqual(dataset.objects.map(\.url), [file, "/etc/passwd", "../outside.bin"])
        try await ExternalFiles.resolve(&dataset, file: object, store: nil, allowSources: [])
        XCTAssertEqual(dataset.arrays.map(\.path), ["inside"])
        XCTAssertEqual(dataset.objects.map(\.url), [file])
        XCTAssertEqual(dataset.warnings.count, 2)
        XCTAssertTrue(dataset.warnings.allSatisfy { $0.contains("is not allowed: it is outside the allowed sources") }, "\(dataset.warnings)")
        XCTAssertTrue(dataset.warnings[0].contains("/absolute left out") && dataset.warnings[0].contains("/etc/passwd"))
        XCTAssertTrue(dataset.warnings[1].contains("/dotdot left out") && dataset.warnings[1].contains("../outside.bin"))
    }
}

final class ManifestFileTests: XCTestCase {
    /// Every fixture's dataset survives a manifest file: arrays' metadata by reflection (a
    /// property added to the model without the file knowing it fails here), chunk tables and
    /// objects by value, and writing the read dataset again gives the same bytes.
    func testEveryFixtureSurvivesAManifestFileByteForByte() async throws {
        let directory = try VZTestData.fixtures()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".h5") || $0.hasSuffix(".nc") }.sorted()
        var compared = 0
        for file in files {
            let object = try LocalStore.describe(directory.appendingPathComponent(file).path)
            guard case .scanned(let dataset, _) = await Scanner.scanFile(object, mapping: MappingOptions(), store: nil) else { continue }
            let bytes = try ManifestFile.encode(dataset, writer: "test")
            let (restored, info) = try ManifestFile.decode(bytes, name: file)
            XCTAssertEqual(info, ManifestFile.Info(version: 1, writer: "test", bytes: bytes.count))
            XCTAssertEqual(restored.objects, dataset.objects, file)
            XCTAssertEqual(restored.arrays.count, dataset.arrays.count, file)
            for (original, read) in zip(dataset.arrays, restored.arrays) {
                XCTAssertEqual(read.manifest, original.manifest, "\(file): \(original.path)")
                var (left, right) = (original, read)
                left.manifest = ChunkManifest(gridShape: [])
                right.manifest = ChunkManifest(gridShape: [])
                // JSON text does not keep whether a non-negative integer was signed (as in the cache).
                func spelled(_ value: Any) -> String { String(reflecting: value).replacingOccurrences(of: "JSON.uint(", with: "JSON.int(") }
                XCTAssertEqual(spelled(left), spelled(right), "\(file): \(original.path)")
            }
            XCTAssertEqual(restored.groups.map(\.path), dataset.groups.map(\.path), file)
            XCTAssertEqual(restored.warnings, dataset.warnings, file)
            XCTAssertEqual(restored.unlimitedDimensions, dataset.unlimitedDimensions, file)
            XCTAssertEqual(try ManifestFile.encode(restored, writer: "test"), bytes, "\(file): written again")
            compared += dataset.arrays.count
        }
        XCTAssertGreaterThan(compared, 100, "the fixtures' arrays were compared")
    }

    private func dataset(gridShape: [Int], entries: [(Int, ChunkEntry)], fill: [UInt8]? = nil, objectSize: UInt64 = 1 << 20) -> VirtualDataset {
        var manifest = ChunkManifest(gridShape: gridShape)
        if let fill { manifest.fillMissing(with: fill) }
        for (linear, entry) in entries { manifest[linear] = entry }
        let array = VirtualArray(
            path: "v", dtype: .float(size: 4), shape: gridShape.map { UInt64($0) * 2 }, chunkShape: gridShape.map { _ in 2 }, codecs: [],
            fillValue: .null, fillBytes: nil, dimensionNames: gridShape.indices.map { "d\($0)" }, attributes: [("units", .string("K"))],
            manifest: manifest, origin: "v")
        return VirtualDataset(
            objects: [ObjectInfo(url: "http://example.org/a.nc", size: objectSize, identity: .etag("\"abc\""), lastModified: 1_700_000_000)],
            arrays: [array])
    }

    func testSparseDenseInlineAndFillEntriesSurviveAndFullGridsNeedNoIndexColumn() throws {
        let full = dataset(gridShape: [4, 5], entries: (0..<20).map { ($0, .reference(object: 0, offset: UInt64($0) * 100, length: 100)) })
        let sparse = dataset(
            gridShape: [1000, 1000],
            entries: [(7, .reference(object: 0, offset: 9, length: 3)), (999_999, .inline([1, 2, 3])), (500, .inline([]))], fill: [0, 0, 0, 0])
        for (label, original) in [("full", full), ("sparse", sparse)] {
            let bytes = try ManifestFile.encode(original, writer: "test")
            let read = try ManifestFile.decode(bytes, name: label).dataset
            XCTAssertEqual(read.arrays[0].manifest, original.arrays[0].manifest, label)
            XCTAssertEqual(
                read.arrays[0].manifest[999_999 % read.arrays[0].manifest.count], original.arrays[0].manifest[999_999 % original.arrays[0].manifest.count],
                label)
            XCTAssertEqual(read.objects, original.objects, label)
        }
        let header = try ManifestFile.rewritingHeader(try ManifestFile.encode(full, writer: "test")) { $0 }
        XCTAssertEqual(try ManifestFile.decode(header, name: "full").dataset.arrays[0].manifest, full.arrays[0].manifest)
        var sawIndices: JSON?
        _ = try ManifestFile.rewritingHeader(try ManifestFile.encode(full, writer: "test")) { header in
            sawIndices = header["arrays"]?.arrayValue?.first?["indices"]
            return header
        }
        XCTAssertEqual(sawIndices, .null, "a full grid stores no index column")
    }

    /// Damage anywhere is caught by the checksum; contents that lie under a good checksum are
    /// refused by name, before anything is allocated for them; nothing crashes.
    func testDamagedOrLyingManifestsAreRefusedWithTheReason() throws {
        let good = try ManifestFile.encode(
            dataset(gridShape: [3, 3], entries: (0..<9).map { ($0, .reference(object: 0, offset: UInt64($0) * 10, length: 10)) }), writer: "test")
        for position in stride(from: 0, to: good.count, by: 3) {
            var damaged = good
            damaged[position] ^= 0x40
            XCTAssertThrowsError(try ManifestFile.decode(damaged, name: "m.zmf"), "byte \(position)") { error in
                guard let error = error as? ManifestFileError else { return XCTFail("\(error)") }
                XCTAssertTrue(error.description.hasPrefix("m.zmf: "), error.description)
            }
        }
        for length in [0, 7, 8, 40, good.count / 2, good.count - 1] {
            XCTAssertThrowsError(try ManifestFile.decode(Array(good.prefix(length)), name: "m.zmf"), "first \(length) bytes")
        }
        XCTAssertEqual(kind(Array("{\"version\":1}".utf8)), .notAManifest)
        var newer = good
        newer[8] = 2
        XCTAssertEqual(kind(newer), .unsupportedVersion(2))

        func lying(_ edit: @escaping (inout [(String, JSON)]) -> Void) throws -> [UInt8] {
            try ManifestFile.rewritingHeader(good) { header in
                guard case .object(var fields) = header, let index = fields.firstIndex(where: { $0.0 == "arrays" }),
                    case .array(var arrays) = fields[index].1, case .object(var array) = arrays[0]
                else { return header }
                edit(&array)
                arrays[0] = .object(array)
                fields[index].1 = .array(arrays)
                return .object(fields)
            }
        }
        func set(_ key: String, _ value: JSON) -> (inout [(String, JSON)]) -> Void {
            { fields in fields = fields.map { $0.0 == key ? (key, value) : $0 } }
        }
        // A raw size of 2^40 bytes is refused before it is allocated.
        let huge = try lying { fields in
            set("grid", .array([.int(1 << 19), .int(1 << 19)]))(&fields)
            set("set", .uint(1 << 38))(&fields)
            set("objects", .array([.uint(0), .uint(10), .uint(4 << 38)]))(&fields)
        }
        guard case .tooLarge(let what, _)? = kind(huge) else { return XCTFail("a huge raw size is refused: \(String(describing: kind(huge)))") }
        XCTAssertEqual(what, "v objects")
        guard case .corrupt(let detail)? = kind(try lying(set("grid", .array([.int(2), .int(2)])))) else { return XCTFail("grid") }
        XCTAssertTrue(detail.contains("more entries than the grid has"), detail)
        guard case .corrupt(let unindexed)? = kind(try lying(set("grid", .array([.int(3), .int(4)])))) else { return XCTFail("grid") }
        XCTAssertTrue(unindexed.contains("9 entries for a grid of 12 chunks, without indices"), unindexed)
        guard case .corrupt(let beyond)? = kind(try lying(set("objects", .array([.uint(1 << 40), .uint(10), .uint(36)])))) else {
            return XCTFail("a blob beyond the file")
        }
        XCTAssertTrue(beyond.contains("beyond the end"), beyond)

        // Under a good checksum: a chunk past its object's end, an object id with no object.
        let short = try ManifestFile.encode(
            dataset(gridShape: [2], entries: [(0, .reference(object: 0, offset: 90, length: 20))], objectSize: 100), writer: "test")
        guard case .corrupt(let past)? = kind(short) else { return XCTFail("a chunk past the end") }
        XCTAssertTrue(past.contains("bytes 90..<110 of http://example.org/a.nc, which has 100 bytes"), past)
        let orphan = try ManifestFile.encode(dataset(gridShape: [2], entries: [(1, .reference(object: 3, offset: 0, length: 1))]), writer: "test")
        guard case .corrupt(let missing)? = kind(orphan) else { return XCTFail("an object id with no object") }
        XCTAssertTrue(missing.contains("names object 3, but there are 1 objects"), missing)
    }

    private func kind(_ bytes: [UInt8]) -> ManifestFileError.Kind? {
        do {
            _ = try ManifestFile.decode(bytes, name: "m.zmf")
            return nil
        } catch let error as ManifestFileError {
            return error.kind
        } catch {
            return .corrupt("unexpected \(error)")
        }
    }
}
