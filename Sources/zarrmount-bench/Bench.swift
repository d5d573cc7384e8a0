import ArgumentParser
import ByteSource
import Foundation
import HDF5Metadata
import Logging
import ObjectStore

/// Benchmarks that print tables; `tools/bench` builds this in release mode and runs it.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zarrmount-bench",
        abstract: "zarrmount benchmarks (run through tools/bench).",
        subcommands: [ParseLatency.self, ParseCPU.self, Enumerate.self, Transport.self, ManifestScale.self]
    )
}

struct ParseLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse-latency",
        abstract: "Parse files from memory behind a fixed per-read latency, for several cache policies."
    )

    @Argument(help: "HDF5/netCDF files (read into memory first).")
    var files: [String]

    @Option(help: "Simulated latency of every read, in milliseconds.")
    var latencyMs = 20

    func run() async throws {
        let sources = try files.map { path in
            InMemorySource(name: path, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        let latency = Duration.milliseconds(latencyMs)
        let totalBytes = sources.reduce(0) { $0 + $1.bytes.count }
        print("parse of \(sources.count) file(s), \(totalBytes / sources.count) bytes each on average, \(latencyMs) ms per read")
        print("policy                          wall/file  rounds  reads/file  requests/file  KiB/file  % of file")
        print("------------------------------  ---------  ------  ----------  -------------  --------  ---------")

        // Baseline: the same concurrent parser with no cache, every parser read a request.
        var baselineWall = 0.0
        do {
            var rounds = 0, requests = 0, bytes = 0
            let start = ContinuousClock.now
            for source in sources {
                let counting = CountingSource(LatencySource(source, latency: latency))
                let (_, r) = try await ReadRounds.measure { try await HDF5File.parse(counting) }
                rounds = max(rounds, r)
                requests += counting.requests
                bytes += counting.bytes
            }
            baselineWall = seconds(ContinuousClock.now - start) / Double(sources.count)
            row(
                "no cache (baseline)", baselineWall, rounds, requests / sources.count, requests / sources.count,
                bytes / sources.count, totalBytes / sources.count)
        }
        let policies: [(String, BlockCache<LatencySource<InMemorySource>>.Policy)] = [
            ("page 512, first 8K", .init(pageSize: 512, firstFetchSize: 8 * 1024)),
            ("page 512, first 16K (default)", .init()),
            ("page 512, first 32K", .init(pageSize: 512, firstFetchSize: 32 * 1024)),
            ("page 512, first 16K, gap 16K", .init(pageSize: 512, firstFetchSize: 16 * 1024, mergeGapPages: 32)),
            ("page 512, first 32K, gap 32K", .init(pageSize: 512, firstFetchSize: 32 * 1024, mergeGapPages: 64)),
            ("page 1K, first 32K, gap 16K", .init(pageSize: 1024, firstFetchSize: 32 * 1024, mergeGapPages: 16)),
            ("page 1K, first 16K", .init(pageSize: 1024, firstFetchSize: 16 * 1024)),
            ("page 1K, first 32K", .init(pageSize: 1024, firstFetchSize: 32 * 1024)),
            ("page 2K, first 64K", .init(pageSize: 2048, firstFetchSize: 64 * 1024)),
            ("page 4K, first 64K", .init(pageSize: 4096, firstFetchSize: 64 * 1024)),
            ("page 16K, first 128K", .init(pageSize: 16 * 1024, firstFetchSize: 128 * 1024)),
            ("page 64K, first 256K", .init(pageSize: 64 * 1024, firstFetchSize: 256 * 1024)),
        ]
        for (label, policy) in policies {
            var rounds = 0
            var counters = ReadCounters()
            let start = ContinuousClock.now
            for source in sources {
                let cache = try await BlockCache.open(LatencySource(source, latency: latency), policy: policy)
                let (_, r) = try await ReadRounds.measure { try await HDF5File.parse(cache) }
                rounds = max(rounds, r)
                counters = counters + cache.statistics.snapshot
            }
            let wall = seconds(ContinuousClock.now - start) / Double(sources.count)
            row(
                label, wall, rounds, counters.sourceReads / sources.count, counters.requests / sources.count,
                Int(counters.bytesFetched) / sources.count, totalBytes / sources.count, baseline: baselineWall)
        }
    }

    private func row(
        _ label: String, _ wall: Double, _ rounds: Int, _ reads: Int, _ requests: Int, _ bytes: Int, _ fileBytes: Int,
        baseline: Double? = nil
    ) {
        let ratio = baseline.map { String(format: "  (%.1fx faster than baseline)", $0 / wall) } ?? ""
        print(
            pad(label, 30) + "  " + lpad(String(format: "%.0f ms", wall * 1000), 9) + "  " + lpad("\(rounds)", 6) + "  "
                + lpad("\(reads)", 10) + "  " + lpad("\(requests)", 13) + "  " + lpad("\(bytes / 1024)", 8) + "  "
                + lpad(String(format: "%.1f %%", Double(bytes) * 100 / Double(max(fileBytes, 1))), 9) + ratio)
    }
}

struct ParseCPU: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse-cpu",
        abstract: "CPU time to parse a file whose bytes are already in memory."
    )

    @Argument(help: "HDF5/netCDF file.")
    var file: String

    @Option(help: "Parses to average over.")
    var iterations = 200

    @Option(help: "Only the block-cache rows whose label contains this (for profiling one of them).")
    var only: String?

    func run() async throws {
        let source = InMemorySource(name: file, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))))
        print("parse of bytes in memory: \(iterations) iterations of \((file as NSString).lastPathComponent)")
        print("reads                                   CPU per file   wall per file")
        for concurrent in [true, false] where only == nil {
            let policy: ReadPolicy = concurrent ? .concurrent : .sequential
            for _ in 0..<5 { _ = try await HDF5File.parse(source, policy: policy) }
            let cpuStart = processCPUSeconds()
            let start = ContinuousClock.now
            for _ in 0..<iterations { _ = try await HDF5File.parse(source, policy: policy) }
            let cpu = (processCPUSeconds() - cpuStart) / Double(iterations)
            let wall = seconds(ContinuousClock.now - start) / Double(iterations)
            print(
                pad(concurrent ? "concurrent" : "sequential", 40)
                    + lpad(String(format: "%.3f ms", cpu * 1000), 12) + lpad(String(format: "%.3f ms", wall * 1000), 16))
        }
        // The same parses through the block cache as the scanner configures it, with the bytes
        // still in memory: the cache's own cost.
        // (label, policy, concurrent reads, on a serial executor of its own as the scanner parses)
        let configurations: [(String, BlockCache<InMemorySource>.Policy, Bool, Bool)] = [
            ("block cache, remote policy, concurrent", .init(), true, false),
            ("block cache, remote policy, serial executor", .init(), true, true),
            ("block cache, remote policy, no yields", .init(batchingTurns: 0), true, false),
            ("block cache, remote policy, sequential", .init(batchingTurns: 0), false, false),
            ("block cache, local policy, sequential", .init(pageSize: 4096, firstFetchSize: 64 * 1024), false, false),
            ("block cache, local policy, no yields", .init(pageSize: 4096, firstFetchSize: 64 * 1024, batchingTurns: 0), false, false),
        ]
        for (label, policy, concurrent, serial) in configurations where only.map({ label.contains($0) }) ?? true {
            let readPolicy: ReadPolicy = concurrent ? .concurrent : .sequential
            let cpuStart = processCPUSeconds()
            let start = ContinuousClock.now
            var counters = ReadCounters()
            for _ in 0..<iterations {
                let cache = BlockCache(source, size: UInt64(source.bytes.count), policy: policy)
                if serial {
                    _ = try await SerialTaskExecutor.run { try await HDF5File.parse(cache, policy: readPolicy) }
                } else {
                    _ = try await HDF5File.parse(cache, policy: readPolicy)
                }
                counters = cache.statistics.snapshot
            }
            print("  \(counters.requests) reads, \(counters.sourceReads) source reads")
            let cpu = (processCPUSeconds() - cpuStart) / Double(iterations)
            let wall = seconds(ContinuousClock.now - start) / Double(iterations)
            print(pad(label, 40) + lpad(String(format: "%.3f ms", cpu * 1000), 12) + lpad(String(format: "%.3f ms", wall * 1000), 16))
        }
    }
}

struct Enumerate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chunk enumeration speed: parse files with one very large chunked dataset."
    )

    @Argument(help: "HDF5 files, each with a dataset of many chunks.")
    var files: [String]

    func run() async throws {
        print("chunk enumeration (file in memory, whole parse timed)")
        print("file                                      chunks     seconds   chunks/s")
        for file in files {
            let source = InMemorySource(name: file, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))))
            let start = ContinuousClock.now
            let info = try await HDF5File.parse(source)
            let elapsed = seconds(ContinuousClock.now - start)
            let chunks = info.datasets.reduce(0) { $0 + ($1.chunks?.count ?? 0) }
            print(
                pad((file as NSString).lastPathComponent, 40) + "  " + lpad("\(chunks)", 8) + "  "
                    + lpad(String(format: "%.3f", elapsed), 10) + "  " + lpad(String(format: "%.2fM", Double(chunks) / elapsed / 1e6), 9))
        }
    }
}

/// Counts what reaches a source (the no-cache baseline has no statistics of its own).
final class CountingSource<Base: RandomAccessSource>: RandomAccessSource, @unchecked Sendable {
    let base: Base
    private let lock = NSLock()
    private var _requests = 0
    private var _bytes = 0
    init(_ base: Base) { self.base = base }
    var name: String { base.name }
    var requests: Int { lock.withLock { _requests } }
    var bytes: Int { lock.withLock { _bytes } }
    func size() async throws -> UInt64 { try await base.size() }
    func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        let clock = ReadRounds.clock
        let issued = clock?.current ?? 0
        let result = try await base.read(offset: offset, length: length)
        clock?.advance(to: issued + 1)
        lock.withLock {
            _requests += 1
            _bytes += result.count
        }
        return result
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func processCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
func lpad(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }

struct Transport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transport",
        abstract: "Ranged GETs through the object store alone (no parsing): wall and CPU per request."
    )

    @Argument(help: "http(s) URLs of objects to read ranges of.")
    var urls: [String]

    @Option(help: "Requests in all.")
    var requests = 20_000

    @Option(help: "Requests in flight at once.")
    var concurrency = 128

    @Option(help: "Bytes per request.")
    var length = 2048

    func run() async throws {
        let logger = Logger(label: "bench")
        let engine = CurlEngine(logger: logger)
        defer { engine.shutdown() }
        let store = RemoteStore(transport: engine, s3: S3Options(), credentials: nil, logger: logger)
        let objects = try await store.list(urls)
        print("transport: \(requests) ranged GETs of \(length) bytes, \(concurrency) in flight, over \(objects.count) object(s)")
        print("wall        requests/s   CPU per request")
        let cpuStart = processCPUSeconds()
        let start = ContinuousClock.now
        try await BoundedTaskGroup.forEach(count: requests, width: concurrency) { issued in
            let object = objects[issued % objects.count]
            let offset = UInt64(issued * 4096) % max(object.size - UInt64(length), 1)
            let bytes = try await store.get(object.url, range: offset..<(offset + UInt64(length)), identity: object.identity)
            precondition(bytes.count == length)
        } consume: { _, _ in
        }
        let wall = seconds(ContinuousClock.now - start)
        let cpu = processCPUSeconds() - cpuStart
        print(
            pad(String(format: "%.2f s", wall), 12) + lpad(String(format: "%.0f", Double(requests) / wall), 10)
                + lpad(String(format: "%.1f µs", cpu / Double(requests) * 1e6), 18))
    }
}
